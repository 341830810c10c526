/** @file backend.hpp
 *  @brief ops<backend::cpu>: the CPU's side of the seam (core/backend.hpp).
 *
 *  Each member forwards to the CPU kernels of this folder, unchanged (the same
 *  kernels, the same thread split, the same summation order as before the
 *  seam): tensors are host Tensor4<T>, the context is empty, to_backend and
 *  to_host return their argument itself (nothing is copied). This is also the
 *  reference every CUDA operation is tested against. The convolution, norm,
 *  ELU and resizing kernels run on the ISA tier isa::active() names
 *  (cpu/kernels.hpp); the rest are portable loops. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/dsm.hpp>
#include <scoreood/cpu/elementwise.hpp>
#include <scoreood/cpu/features.hpp>
#include <scoreood/cpu/instance_norm_cache.hpp>
#include <scoreood/cpu/kernels.hpp>
#include <scoreood/cpu/pooling.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace scoreood {

/// The CPU's context: empty, shared by every caller (the CPU kernels keep their scratch per thread).
inline backend::context_t<backend::cpu>& cpu_context() {
  static backend::context_t<backend::cpu> ctx;
  return ctx;
}

namespace backend {

template <>
struct ops<cpu> {
  using context = context_t<cpu>;
  template <class T>
  using tensor = Tensor4<T>;

  // ---------------------------------------------------------------- tensors
  template <class T>
  static void resize(Tensor4<T>& t, const Shape4& s) {
    scoreood::cpu::detail::resize_like(t, s);
  }
  template <class T>
  static void zeros(context&, Tensor4<T>& y, const Shape4& s) {
    scoreood::cpu::zeros(y, s);
  }
  template <class T>
  static void copy(context&, const Tensor4<T>& x, Tensor4<T>& y) {
    scoreood::cpu::copy(x, y);
  }
  template <class T>
  static void add_inplace(context&, Tensor4<T>& y, const Tensor4<T>& x) {
    scoreood::cpu::add_inplace(y, x);
  }
  /// y = a x + b (y resized; may be x).
  template <class T>
  static void affine(context&, const Tensor4<T>& x, Tensor4<T>& y, T a, T b) {
    if (&x != &y) resize(y, shape_of(x));
    const T* s = x.data();
    T* d = y.data();
    const std::size_t n = x.size();
    for (std::size_t i = 0; i < n; ++i) d[i] = a * s[i] + b;
  }
  /// Host images as this backend's tensor: on the CPU the images themselves.
  template <class T>
  static const Tensor4<T>& to_backend(context&, const Tensor4<T>& host, Tensor4<T>& /*staging*/) {
    return host;
  }
  /// This backend's tensor on the host: on the CPU the tensor itself.
  template <class T>
  static const Tensor4<T>& to_host(context&, const Tensor4<T>& x, Tensor4<T>& /*staging*/) {
    return x;
  }

  // ---------------------------------------------------------------- convolution (cpu/tiered/conv2d.hpp)
  template <class T>
  static void conv2d_forward(context&, const ConvParams& p, const T* w, const T* b, const Tensor4<T>& x, Tensor4<T>& y,
                             const Tensor4<T>* residual) {
    SCOREOOD_CPU_DISPATCH(k::conv::forward(p, w, b, x, y, residual));
  }
  template <class T>
  static void conv2d_backward(context&, const ConvParams& p, const T* w, const Tensor4<T>& x, const Tensor4<T>& dy,
                              Tensor4<T>* dx, T* gw, T* gb) {
    SCOREOOD_CPU_DISPATCH(k::conv::backward(p, w, x, dy, dx, gw, gb));
  }

  // ---------------------------------------------------------------- instance norm++ (cpu/tiered/instance_norm.hpp)
  /// What a norm's forward keeps for its backward: valid(), shape(), check_input(name).
  template <class T>
  using norm_cache = scoreood::cpu::norm::Cache<T>;

  /// y = norm(x) (then elu(y) with `elu_alpha`); with a cache, what backward needs (with
  /// `keep_input` a reference to x instead of a normalised copy).
  template <class T>
  static void norm_forward(context&, const NormParams<T>& p, const Tensor4<T>& x, Tensor4<T>& y,
                           norm_cache<T>* cache, const T* elu_alpha, bool keep_input) {
    SCOREOOD_CPU_DISPATCH(k::norm::forward(x, y, scoreood::cpu::norm::rows_of(p), cache, elu_alpha, keep_input));
  }
  /// dx from dy (through the ELU whose output is `elu_y`, when given; plus `residual`), and the
  /// parameter gradients accumulated into `g`.
  template <class T>
  static void norm_backward(context&, const NormParams<T>& p, const norm_cache<T>& cache, const Tensor4<T>& dy,
                            Tensor4<T>& dx, const T* elu_y, T elu_alpha, const Tensor4<T>* residual,
                            const NormGrads<T>& g) {
    std::vector<double> S, Tx;
    SCOREOOD_CPU_DISPATCH(k::norm::backward(cache, dy, dx, scoreood::cpu::norm::rows_of(p), S, Tx, elu_y, elu_alpha,
                                  residual ? residual->data() : nullptr));
    scoreood::cpu::norm::parameter_grads(p, cache, S, Tx, g);
  }

  // ---------------------------------------------------------------- ELU (cpu/tiered/elu.hpp)
  template <class T>
  static void elu_forward(context&, const Tensor4<T>& x, Tensor4<T>& y, T alpha) {
    SCOREOOD_CPU_DISPATCH(k::elu::forward(x, y, alpha));
  }
  /// dx = dy * elu' from the forward's output y (dx may be dy).
  template <class T>
  static void elu_backward(context&, const T* y, const Tensor4<T>& dy, Tensor4<T>& dx, T alpha) {
    SCOREOOD_CPU_DISPATCH(k::elu::backward(y, dy, dx, alpha));
  }

  // ---------------------------------------------------------------- pooling (cpu/pooling.hpp)
  template <class T>
  static void avg_pool_forward(context&, const PoolParams& p, const Tensor4<T>& x, Tensor4<T>& y) {
    scoreood::cpu::pool::avg_forward(p, x, y);
  }
  template <class T>
  static void avg_pool_backward(context&, const PoolParams& p, const Tensor4<T>& dy, Tensor4<T>& dx) {
    scoreood::cpu::pool::avg_backward(p, dy, dx);
  }
  template <class T>
  static void mean_pool2_forward(context&, const Tensor4<T>& x, Tensor4<T>& y) {
    scoreood::cpu::pool::mean2_forward(x, y);
  }
  template <class T>
  static void mean_pool2_backward(context&, const Tensor4<T>& dy, Tensor4<T>& dx) {
    scoreood::cpu::pool::mean2_backward(dy, dx);
  }

  // ---------------------------------------------------------------- resizing (cpu/tiered/upsample.hpp)
  /// y = nearest(x) to y's size (+ residual).
  template <class T>
  static void nearest_forward(context&, const Tensor4<T>& x, Tensor4<T>& y, const Tensor4<T>* residual) {
    SCOREOOD_CPU_DISPATCH(k::resize::nearest_forward(x, y, residual));
  }
  template <class T>
  static void nearest_backward(context&, const Tensor4<T>& dy, Tensor4<T>& dx) {
    SCOREOOD_CPU_DISPATCH(k::resize::nearest_backward(dy, dx));
  }
  template <class T>
  static void bilinear_forward(context&, const Tensor4<T>& x, Tensor4<T>& y, bool align_corners) {
    SCOREOOD_CPU_DISPATCH(k::resize::bilinear_forward(x, y, align_corners));
  }
  template <class T>
  static void bilinear_backward(context&, const Tensor4<T>& dy, Tensor4<T>& dx, bool align_corners) {
    SCOREOOD_CPU_DISPATCH(k::resize::bilinear_backward(dy, dx, align_corners));
  }

  // ---------------------------------------------------------------- training (cpu/dsm.hpp)
  /// input[b] = aug_{elements[b]}(data[image[b]] + sigma[b] z_b) and z (both already of the batch's shape),
  /// z_b from `noise` at b * P + p (score::make_dsm_batch draws the rest).
  template <class Aug, class T>
  static void dsm_inputs(context&, const Tensor4<T>& data, std::span<const std::uint32_t> image,
                         std::span<const float> sigma, std::span<const int> elements, const Aug& aug,
                         const CounterRng& noise, Tensor4<T>& input, Tensor4<T>& z) {
    scoreood::cpu::dsm::noisy_inputs(data, image, sigma, elements, aug, noise, input, z);
  }
  /// Mean over the batch of 0.5 || sigma_b s_b + z_b ||^2; dLoss/ds into `grad` (already of s's shape).
  template <class T>
  static double dsm_loss(context&, const Tensor4<T>& s, const Tensor4<T>& z, std::span<const float> sigma,
                         Tensor4<T>& grad) {
    return scoreood::cpu::dsm::loss(s, z, sigma, grad);
  }

  // ---------------------------------------------------------------- flat arrays (optimisers)
  template <class T>
  static double sum_squares(context&, const T* x, std::size_t n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(n); ++i) s += double(x[i]) * double(x[i]);
    return s;
  }
  template <class T>
  static void scale(context&, T* x, std::size_t n, T a) {
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(n); ++i) x[i] *= a;
  }
  template <class T>
  static void fill(context&, T* x, std::size_t n, T v) {
    std::fill(x, x + n, v);
  }
  template <class T>
  static void copy_n(context&, const T* src, T* dst, std::size_t n) {
    std::copy(src, src + n, dst);
  }
  /// One Adam update (PyTorch's semantics, nn/optim/adam.hpp) of n parameters.
  template <class T>
  static void adam_step(context&, T* p, const T* g, T* m, T* v, std::size_t n, const AdamStep& a) {
    const T step_size = T(a.lr / a.bias1), inv_sqrt_bc2 = T(1.0 / std::sqrt(a.bias2));
    const T b1 = T(a.beta1), b2 = T(a.beta2), a1 = T(1.0 - a.beta1), a2 = T(1.0 - a.beta2);
    const T eps = T(a.eps), wd = T(a.weight_decay);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(n); ++i) {
      const T gi = g[i] + wd * p[i];
      m[i] = b1 * m[i] + a1 * gi;
      v[i] = b2 * v[i] + a2 * gi * gi;
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
  /// avg = rate avg + (1 - rate) p.
  template <class T>
  static void ema_update(context&, T* avg, const T* p, std::size_t n, double rate) {
    const T a = T(rate), b = T(1.0 - rate);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(n); ++i) avg[i] = a * avg[i] + b * p[i];
  }

  // ---------------------------------------------------------------- features (cpu/features.hpp)
  /// z (B images) from rng at (first + b) * P + p, in[g * B + b] = aug_g(x_b + sigma z_b) for g < groups.
  template <class Aug, class T>
  static void noisy_copies(context&, const Tensor4<T>& x, std::size_t first, float sigma, const CounterRng& rng,
                           std::size_t groups, const Aug& aug, Tensor4<T>& in, Tensor4<T>& z) {
    scoreood::cpu::features::noisy_copies(x, first, sigma, rng, groups, aug, in, z);
  }
  /// out[b] = || sigma s_b ||.
  template <class T>
  static void scaled_norms(context&, const Tensor4<T>& s, float sigma, std::span<double> out) {
    scoreood::cpu::features::scaled_norms(s, sigma, out);
  }
  /// out[g * B + b] = || s_{gB+b} + z_b / sigma ||.
  template <class T>
  static void residual_norms(context&, const Tensor4<T>& s, const Tensor4<T>& z, float sigma, std::size_t groups,
                             std::span<double> out) {
    scoreood::cpu::features::residual_norms(s, z, sigma, groups, out);
  }
  /// map[b, p] += sum_c (sigma s_b)^2.
  template <class T>
  static void clean_map_add(context&, const Tensor4<T>& s, float sigma, std::span<double> map) {
    scoreood::cpu::features::clean_map_add(s, sigma, map);
  }
  /// map[b, p] += weight * sum_g sum_c (s_{gB+b} + z_b / sigma)^2.
  template <class T>
  static void residual_map_add(context&, const Tensor4<T>& s, const Tensor4<T>& z, float sigma, std::size_t groups,
                               double weight, std::span<double> map) {
    scoreood::cpu::features::residual_map_add(s, z, sigma, groups, weight, map);
  }
};

}  // namespace backend
}  // namespace scoreood
