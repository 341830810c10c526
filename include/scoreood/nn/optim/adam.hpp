/** @file adam.hpp
 *  @brief Adam with PyTorch's semantics, one fused loop over a ParameterStore.
 *
 *  Per parameter, at step t (as torch.optim.Adam, amsgrad off):
 *    g  = grad + weight_decay * p            (L2 penalty, not AdamW)
 *    m  = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
 *    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *  Optional clipping of the global L2 gradient norm before the update
 *  matches torch.nn.utils.clip_grad_norm_ (scale max_norm / (norm + 1e-6)
 *  when that is below one). Because every parameter lives in one flat array,
 *  the whole update is a single OpenMP loop. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/nn/parameter.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace scoreood::nn {

/// Global L2 norm of all gradients in the store (accumulated in double).
template <class T>
double grad_norm(const ParameterStore<T, backend::cpu>& store) {
  const T* g = store.grad_data();
  const std::ptrdiff_t n = std::ptrdiff_t(store.count());
  double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
  for (std::ptrdiff_t i = 0; i < n; ++i) s += double(g[i]) * double(g[i]);
  return std::sqrt(s);
}

/// Scales all gradients so their global L2 norm is at most `max_norm`, like
/// torch.nn.utils.clip_grad_norm_ (norm_type 2). Returns the norm before clipping.
template <class T>
double clip_grad_norm(ParameterStore<T, backend::cpu>& store, double max_norm) {
  if (!(max_norm > 0)) throw ValueError("clip_grad_norm: max_norm must be positive, got " + std::to_string(max_norm));
  const double norm = grad_norm(store);
  if (!std::isfinite(norm)) return norm;  // leave NaN/inf visible to the caller instead of spreading it
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    T* g = store.grad_data();
    const std::ptrdiff_t n = std::ptrdiff_t(store.count());
    const T c = T(coef);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < n; ++i) g[i] *= c;
  }
  return norm;
}

/// The same on any backend, in its context.
template <class T, class B>
double grad_norm(backend::context_t<B>& ctx, const ParameterStore<T, B>& store) {
  if constexpr (std::is_same_v<B, backend::cpu>) return grad_norm(store);
  else return std::sqrt(backend::ops<B>::sum_squares(ctx, store.grad_data(), store.count()));
}
template <class T, class B>
double clip_grad_norm(backend::context_t<B>& ctx, ParameterStore<T, B>& store, double max_norm) {
  if constexpr (std::is_same_v<B, backend::cpu>) {
    return clip_grad_norm(store, max_norm);
  } else {
    if (!(max_norm > 0)) throw ValueError("clip_grad_norm: max_norm must be positive, got " + std::to_string(max_norm));
    const double norm = grad_norm(ctx, store);
    if (!std::isfinite(norm)) return norm;
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) backend::ops<B>::scale(ctx, store.grad_data(), store.count(), T(coef));
    return norm;
  }
}

/// Hyper-parameters of Adam; defaults are PyTorch's (and NCSN's lr 1e-3).
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;           ///< added after sqrt(v_hat)
  double weight_decay = 0.0;   ///< L2 penalty added to the gradient (0 = off)
  double max_grad_norm = 0.0;  ///< clip the global gradient norm to this before each step (0 = off)
};

/// Adam over every parameter of a ParameterStore.
/// @tparam T value type of the store (float for training, double for tests).
/// @tparam B backend tag: the moments live in its memory, the update is ops<B>::adam_step.
template <class T, class B = backend::cpu>
class Adam {
  static constexpr bool on_host = std::is_same_v<B, backend::cpu>;

 public:
  using Context = backend::context_t<B>;

  explicit Adam(ParameterStore<T, B>& store, AdamOptions opt = {}) : store_(&store), opt_(opt) {
    validate(opt_);
    const std::vector<T> zero(store.count(), T(0));
    set_moments(zero, zero);
  }

  /// One update from the gradients currently in the store (they are left in
  /// place, clipped if clipping is on; zero them before the next backward).
  void step()
    requires on_host
  {
    if (store_->count() != m_.size())
      throw ShapeError("Adam: the store has " + std::to_string(store_->count()) + " values, the optimiser " +
                       std::to_string(m_.size()) + " (parameters added after the optimiser was made?)");
    last_grad_norm_ = opt_.max_grad_norm > 0 ? clip_grad_norm(*store_, opt_.max_grad_norm) : -1.0;
    ++t_;
    const double bc1 = 1.0 - std::pow(opt_.beta1, double(t_));
    const double bc2 = 1.0 - std::pow(opt_.beta2, double(t_));
    const T step_size = T(opt_.lr / bc1);
    const T inv_sqrt_bc2 = T(1.0 / std::sqrt(bc2));
    const T b1 = T(opt_.beta1), b2 = T(opt_.beta2), a1 = T(1.0 - opt_.beta1), a2 = T(1.0 - opt_.beta2);
    const T eps = T(opt_.eps), wd = T(opt_.weight_decay);
    T* p = store_->value_data();
    const T* g = store_->grad_data();
    T* m = m_.data();
    T* v = v_.data();
    const std::ptrdiff_t n = std::ptrdiff_t(m_.size());
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      const T gi = g[i] + wd * p[i];
      m[i] = b1 * m[i] + a1 * gi;
      v[i] = b2 * v[i] + a2 * gi * gi;
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
  /// The same in the backend's context (on the CPU exactly step()).
  void step(Context& ctx) {
    if constexpr (on_host) {
      step();
    } else {
      if (store_->count() != m_.size())
        throw ShapeError("Adam: the store has " + std::to_string(store_->count()) + " values, the optimiser " +
                         std::to_string(m_.size()));
      last_grad_norm_ = opt_.max_grad_norm > 0 ? clip_grad_norm(ctx, *store_, opt_.max_grad_norm) : -1.0;
      ++t_;
      const backend::AdamStep st{.lr = opt_.lr, .beta1 = opt_.beta1, .beta2 = opt_.beta2, .eps = opt_.eps,
                                 .weight_decay = opt_.weight_decay,
                                 .bias1 = 1.0 - std::pow(opt_.beta1, double(t_)),
                                 .bias2 = 1.0 - std::pow(opt_.beta2, double(t_))};
      backend::ops<B>::adam_step(ctx, store_->value_data(), store_->grad_data(), m_.data(), v_.data(), m_.size(), st);
    }
  }

  /// Number of steps taken (torch's state["step"]).
  std::uint64_t steps() const { return t_; }
  /// Global gradient norm before clipping at the last step (-1 when clipping is off).
  double last_grad_norm() const { return last_grad_norm_; }
  const AdamOptions& options() const { return opt_; }
  void set_options(const AdamOptions& o) {
    validate(o);
    opt_ = o;
  }
  void set_lr(double lr) {
    AdamOptions o = opt_;
    o.lr = lr;
    set_options(o);
  }
  std::span<const T> first_moment() const
    requires on_host
  { return m_; }
  std::span<const T> second_moment() const
    requires on_host
  { return v_; }

  /// Forgets the moments and the step count.
  void reset() {
    const std::vector<T> zero(m_.size(), T(0));
    set_moments(zero, zero);
    t_ = 0;
  }

  /// Writes options, step count and both moments.
  void save(io::ByteWriter& w) const {
    w.put_string("adam");
    w.put<std::uint32_t>(sizeof(T));
    for (double x : {opt_.lr, opt_.beta1, opt_.beta2, opt_.eps, opt_.weight_decay, opt_.max_grad_norm}) w.put(x);
    w.put<std::uint64_t>(t_);
    if constexpr (on_host) {
      w.put_vector(m_);
      w.put_vector(v_);
    } else {
      w.put_vector(m_.to_host());
      w.put_vector(v_.to_host());
    }
  }

  /// Reads what save() wrote; the moment arrays must fit this store exactly.
  /// The stored options replace the current ones (call set_lr() after to change them).
  void load(io::ByteReader& r) {
    const std::string tag = r.get_string(64);
    r.expect(tag == "adam", "expected Adam optimiser state, found '" + tag + "'");
    const auto width = r.get<std::uint32_t>();
    r.expect(width == sizeof(T), "Adam state stored with " + std::to_string(width) + "-byte values, this optimiser uses " +
                                     std::to_string(sizeof(T)));
    AdamOptions o;
    o.lr = r.get<double>();
    o.beta1 = r.get<double>();
    o.beta2 = r.get<double>();
    o.eps = r.get<double>();
    o.weight_decay = r.get<double>();
    o.max_grad_norm = r.get<double>();
    try {
      validate(o);
    } catch (const ValueError& e) {
      r.fail(std::string("Adam state: ") + e.what());
    }
    const auto t = r.get<std::uint64_t>();
    std::vector<T> m(m_.size()), v(v_.size());
    r.get_into(std::span<T>(m), "Adam first moment");
    r.get_into(std::span<T>(v), "Adam second moment");
    opt_ = o;
    t_ = t;
    set_moments(m, v);
  }

 private:
  void set_moments(const std::vector<T>& m, const std::vector<T>& v) {
    if constexpr (on_host) {
      m_ = m;
      v_ = v;
    } else {
      m_ = backend::storage_t<B, T>(std::span<const T>(m));
      v_ = backend::storage_t<B, T>(std::span<const T>(v));
    }
  }

  static void validate(const AdamOptions& o) {
    auto bad = [](const std::string& what, double x) {
      throw ValueError("Adam: " + what + " is out of range: " + std::to_string(x));
    };
    if (!(o.lr >= 0) || !std::isfinite(o.lr)) bad("lr", o.lr);
    if (!(o.beta1 >= 0 && o.beta1 < 1)) bad("beta1 (needs [0, 1))", o.beta1);
    if (!(o.beta2 >= 0 && o.beta2 < 1)) bad("beta2 (needs [0, 1))", o.beta2);
    if (!(o.eps >= 0) || !std::isfinite(o.eps)) bad("eps", o.eps);
    if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay)) bad("weight_decay", o.weight_decay);
    if (!(o.max_grad_norm >= 0) || !std::isfinite(o.max_grad_norm)) bad("max_grad_norm", o.max_grad_norm);
  }

  ParameterStore<T, B>* store_;
  AdamOptions opt_;
  backend::storage_t<B, T> m_, v_;
  std::uint64_t t_ = 0;
  double last_grad_norm_ = -1.0;
};

}  // namespace scoreood::nn
