/** @file instance_norm.hpp
 *  @brief Instance normalisation++ (NCSN), conditional on the noise level and plain.
 *
 *  For one sample and channel c with plane values x (P = H*W of them):
 *    mu_c = mean(x), var_c = mean((x - mu_c)^2)  (biased, as nn.InstanceNorm2d),
 *    xhat = (x - mu_c) / sqrt(var_c + 1e-5),
 *    z_c  = (mu_c - mean_k mu_k) / sqrt(var_k(mu_k) + 1e-5), where var_k is the
 *           UNBIASED variance over the C channel means (torch.var's default,
 *           which NCSN uses: a layer needs C >= 2, else torch yields NaN),
 *    out  = gamma_c * (xhat + alpha_c * z_c) + beta_c.
 *  The "++" term z puts back the colour shift between channels that instance
 *  normalisation removes. CondInstanceNormPlusPlus picks (gamma, alpha, beta)
 *  per sample from an embedding row (L, 3C) laid out like NCSN's nn.Embedding
 *  weight [gamma | alpha | beta]; InstanceNormPlusPlus has one set (alpha,
 *  gamma, beta registered in NCSN's order). Both hand the backend one
 *  backend::NormParams (per-sample rows) and their cache (ops<B>::norm_forward,
 *  norm_backward; on the CPU cpu/tiered/instance_norm.hpp). */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/backend.hpp>
#include <scoreood/nn/layers/elu.hpp>
#include <scoreood/nn/parameter.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace scoreood::nn {

namespace detail {

inline void check_norm_input(const std::string& name, std::size_t channels, const Shape4& s) {
  if (s[1] != channels)
    throw ShapeError(name + ": input has " + std::to_string(s[1]) + " channels, layer expects " +
                     std::to_string(channels) + " (input shape " + to_string(s) + ")");
  if (s[0] == 0 || s[2] == 0 || s[3] == 0) throw ShapeError(name + ": empty input " + to_string(s));
}

inline void check_norm_channels(const std::string& name, std::size_t channels) {
  if (channels < 2)
    throw ValueError(name + ": instance norm++ needs at least 2 channels (the channel-mean term uses an "
                            "unbiased variance over channels), got " + std::to_string(channels));
}


}  // namespace detail

/// NCSN's ConditionalInstanceNorm2dPlus. Parameter "<name>.embed" of shape
/// (num_levels, 3C) = [gamma | alpha | beta] per level ((L, 2C) without bias).
/// @tparam T float for training, double for gradient checks.
/// @tparam B backend tag (core/backend.hpp).
template <class T, class B = backend::cpu>
class CondInstanceNormPlusPlus {
  using Ops = backend::ops<B>;

 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;

  CondInstanceNormPlusPlus(ParameterStore<T, B>& store, std::string name, std::size_t channels,
                           std::size_t num_levels, CounterRng init, bool bias = true)
      : name_(std::move(name)), C_(channels), L_(num_levels), bias_(bias) {
    detail::check_norm_channels(name_, C_);
    if (L_ == 0) throw ValueError(name_ + ": number of noise levels must be positive");
    embed_ = store.add(name_ + ".embed", {L_, (bias_ ? 3 : 2) * C_});
    T* e = embed_.host();
    const std::size_t row = (bias_ ? 3 : 2) * C_;
    for (std::size_t l = 0; l < L_; ++l)
      for (std::size_t j = 0; j < row; ++j) {
        const std::size_t i = l * row + j;
        e[i] = j < 2 * C_ ? T(1.0 + 0.02 * double(init.normal(i))) : T(0);  // gamma, alpha ~ N(1, 0.02); beta = 0
      }
  }

  void forward(Context& ctx, const Tensor& x, std::span<const int> levels, Tensor& y) {
    check(x, levels);
    levels_.assign(levels.begin(), levels.end());
    Ops::resize(y, shape_of(x));
    Ops::norm_forward(ctx, params(levels_), x, y, &cache_, static_cast<const T*>(nullptr), false);
  }

  void infer(Context& ctx, const Tensor& x, std::span<const int> levels, Tensor& y) const {
    check(x, levels);
    Ops::resize(y, shape_of(x));
    Ops::norm_forward(ctx, params(levels), x, y, static_cast<Cache*>(nullptr), static_cast<const T*>(nullptr),
                      false);
  }

  /// forward() then elu.forward(y, y) in one pass over memory: same values,
  /// same backward (elu.backward, then this layer's backward).
  /// With `keep_input_reference` the layer keeps a pointer to x instead of a
  /// normalised copy (one tensor write less per forward, the same backward
  /// results): x must then stay alive and unchanged until backward(), as a
  /// Conv2d's input (a resized or reallocated x is detected and reported).
  void forward_elu(Context& ctx, const Tensor& x, std::span<const int> levels, Tensor& y, Elu<T, B>& elu,
                   bool keep_input_reference = false) {
    check(x, levels);
    levels_.assign(levels.begin(), levels.end());
    Ops::resize(y, shape_of(x));
    const T alpha = elu.alpha();
    Ops::norm_forward(ctx, params(levels_), x, y, &cache_, &alpha, keep_input_reference);
    elu.attach_output(y);
  }

  /// infer() then elu.infer(y, y) in one pass over memory.
  void infer_elu(Context& ctx, const Tensor& x, std::span<const int> levels, Tensor& y, const Elu<T, B>& elu) const {
    check(x, levels);
    Ops::resize(y, shape_of(x));
    const T alpha = elu.alpha();
    Ops::norm_forward(ctx, params(levels), x, y, static_cast<Cache*>(nullptr), &alpha, false);
  }

  void backward(Context& ctx, const Tensor& dy, Tensor& dx) { backward_impl(ctx, dy, dx, nullptr, T(1)); }

  /// elu.backward(dy, dy) then backward(dy, dx) for the ELU that forward_elu()
  /// fused, in one memory pass less; dy (the gradient of the ELU's output) is
  /// left unchanged. dx must be a separate tensor. With a `residual` (the
  /// input's shape, not dx) dx += residual in the same pass (a skip's gradient).
  void backward_elu(Context& ctx, const Tensor& dy, Tensor& dx, const Elu<T, B>& elu,
                    const Tensor* residual = nullptr) {
    if (&dx == &dy) throw Error(name_ + ": backward_elu needs dx distinct from dy");
    if (residual && (residual == &dx || shape_of(*residual) != cache_.shape()))
      throw ShapeError(name_ + ": the residual gradient must be a separate tensor of the input's shape " +
                       to_string(cache_.shape()));
    backward_impl(ctx, dy, dx, elu.output_for_backward(shape_of(dy)), elu.alpha(), residual);
  }

  // The CPU needs no context: the same calls without one.
  void forward(const Tensor& x, std::span<const int> levels, Tensor& y)
    requires std::is_same_v<B, backend::cpu>
  { forward(cpu_context(), x, levels, y); }
  void infer(const Tensor& x, std::span<const int> levels, Tensor& y) const
    requires std::is_same_v<B, backend::cpu>
  { infer(cpu_context(), x, levels, y); }
  void forward_elu(const Tensor& x, std::span<const int> levels, Tensor& y, Elu<T, B>& elu,
                   bool keep_input_reference = false)
    requires std::is_same_v<B, backend::cpu>
  { forward_elu(cpu_context(), x, levels, y, elu, keep_input_reference); }
  void infer_elu(const Tensor& x, std::span<const int> levels, Tensor& y, const Elu<T, B>& elu) const
    requires std::is_same_v<B, backend::cpu>
  { infer_elu(cpu_context(), x, levels, y, elu); }
  void backward(const Tensor& dy, Tensor& dx)
    requires std::is_same_v<B, backend::cpu>
  { backward(cpu_context(), dy, dx); }
  void backward_elu(const Tensor& dy, Tensor& dx, const Elu<T, B>& elu, const Tensor* residual = nullptr)
    requires std::is_same_v<B, backend::cpu>
  { backward_elu(cpu_context(), dy, dx, elu, residual); }

  std::size_t channels() const { return C_; }
  std::size_t num_levels() const { return L_; }
  const std::string& name() const { return name_; }
  ParamRef<T, B> embed() const { return embed_; }

 private:
  using Cache = typename Ops::template norm_cache<T>;

  /// Sample n reads embedding row levels[n]: [gamma | alpha | beta].
  backend::NormParams<T> params(std::span<const int> levels) const {
    const std::size_t row = (bias_ ? 3 : 2) * C_;
    const T* e = embed_.value();  // resolved now: the store is complete by the time layers run
    return {.channels = C_, .gamma = e, .alpha = e + C_, .beta = bias_ ? e + 2 * C_ : nullptr, .stride = row,
            .levels = levels};
  }

  void backward_impl(Context& ctx, const Tensor& dy, Tensor& dx, const T* elu_y, T elu_alpha,
                     const Tensor* residual = nullptr) {
    if (!cache_.valid()) throw Error(name_ + ": backward called before forward");
    cache_.check_input(name_);
    if (shape_of(dy) != cache_.shape())
      throw ShapeError(name_ + ": gradient shape " + to_string(shape_of(dy)) + " differs from the forward output " +
                       to_string(cache_.shape()));
    Ops::resize(dx, cache_.shape());
    T* ge = embed_.grad();
    const backend::NormGrads<T> g{ge, ge + C_, bias_ ? ge + 2 * C_ : nullptr};
    Ops::norm_backward(ctx, params(levels_), cache_, dy, dx, elu_y, elu_alpha, residual, g);
  }

  void check(const Tensor& x, std::span<const int> levels) const {
    detail::check_norm_input(name_, C_, shape_of(x));
    if (levels.size() != shape_of(x)[0])
      throw ShapeError(name_ + ": " + std::to_string(levels.size()) + " noise-level indices for a batch of " +
                       std::to_string(shape_of(x)[0]));
    for (std::size_t n = 0; n < levels.size(); ++n)
      if (levels[n] < 0 || std::size_t(levels[n]) >= L_)
        throw ValueError(name_ + ": noise-level index " + std::to_string(levels[n]) + " of sample " +
                         std::to_string(n) + " is outside [0, " + std::to_string(L_) + ")");
  }

  std::string name_;
  std::size_t C_, L_;
  bool bias_;
  ParamRef<T, B> embed_;
  std::vector<int> levels_;
  Cache cache_;
};

/// NCSN's (unconditional) InstanceNorm2dPlus: parameters "<name>.alpha",
/// "<name>.gamma" (both ~ N(1, 0.02)) and "<name>.beta" (0, only with bias),
/// each of shape (C). `levels` is accepted for a uniform layer interface and ignored.
/// @tparam T float for training, double for gradient checks.
/// @tparam B backend tag (core/backend.hpp).
template <class T, class B = backend::cpu>
class InstanceNormPlusPlus {
  using Ops = backend::ops<B>;

 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;

  InstanceNormPlusPlus(ParameterStore<T, B>& store, std::string name, std::size_t channels, CounterRng init,
                       bool bias = true)
      : name_(std::move(name)), C_(channels), bias_(bias) {
    detail::check_norm_channels(name_, C_);
    alpha_ = store.add(name_ + ".alpha", {C_});
    gamma_ = store.add(name_ + ".gamma", {C_});
    if (bias_) beta_ = store.add(name_ + ".beta", {C_});
    for (std::size_t c = 0; c < C_; ++c) {
      alpha_.host()[c] = T(1.0 + 0.02 * double(init.normal(c)));
      gamma_.host()[c] = T(1.0 + 0.02 * double(init.normal(C_ + c)));
    }
  }

  void forward(Context& ctx, const Tensor& x, std::span<const int> /*levels*/, Tensor& y) {
    detail::check_norm_input(name_, C_, shape_of(x));
    Ops::resize(y, shape_of(x));
    Ops::norm_forward(ctx, params(), x, y, &cache_, static_cast<const T*>(nullptr), false);
  }
  void infer(Context& ctx, const Tensor& x, std::span<const int> /*levels*/, Tensor& y) const {
    detail::check_norm_input(name_, C_, shape_of(x));
    Ops::resize(y, shape_of(x));
    Ops::norm_forward(ctx, params(), x, y, static_cast<Cache*>(nullptr), static_cast<const T*>(nullptr), false);
  }

  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    if (!cache_.valid()) throw Error(name_ + ": backward called before forward");
    cache_.check_input(name_);
    if (shape_of(dy) != cache_.shape())
      throw ShapeError(name_ + ": gradient shape " + to_string(shape_of(dy)) + " differs from the forward output " +
                       to_string(cache_.shape()));
    Ops::resize(dx, cache_.shape());
    const backend::NormGrads<T> g{gamma_.grad(), alpha_.grad(), bias_ ? beta_.grad() : nullptr};
    Ops::norm_backward(ctx, params(), cache_, dy, dx, static_cast<const T*>(nullptr), T(1),
                       static_cast<const Tensor*>(nullptr), g);
  }

  // The CPU needs no context: the same calls without one.
  void forward(const Tensor& x, std::span<const int> levels, Tensor& y)
    requires std::is_same_v<B, backend::cpu>
  { forward(cpu_context(), x, levels, y); }
  void forward(const Tensor& x, Tensor& y)
    requires std::is_same_v<B, backend::cpu>
  { forward(cpu_context(), x, {}, y); }
  void infer(const Tensor& x, std::span<const int> levels, Tensor& y) const
    requires std::is_same_v<B, backend::cpu>
  { infer(cpu_context(), x, levels, y); }
  void infer(const Tensor& x, Tensor& y) const
    requires std::is_same_v<B, backend::cpu>
  { infer(cpu_context(), x, {}, y); }
  void backward(const Tensor& dy, Tensor& dx)
    requires std::is_same_v<B, backend::cpu>
  { backward(cpu_context(), dy, dx); }

  std::size_t channels() const { return C_; }
  const std::string& name() const { return name_; }

 private:
  using Cache = typename Ops::template norm_cache<T>;

  /// Every sample reads the same (gamma, alpha, beta): stride 0.
  backend::NormParams<T> params() const {
    return {.channels = C_, .gamma = gamma_.value(), .alpha = alpha_.value(),
            .beta = bias_ ? beta_.value() : nullptr, .stride = 0, .levels = {}};
  }

  std::string name_;
  std::size_t C_;
  bool bias_;
  ParamRef<T, B> alpha_, gamma_, beta_;
  Cache cache_;
};

}  // namespace scoreood::nn
