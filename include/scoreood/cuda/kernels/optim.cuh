/** @file optim.cuh
 *  @brief Adam (torch.optim.Adam semantics, L2 weight decay added to the
 *  gradient, no AMSGrad) and an exponential moving average of the weights,
 *  each one launch over the flat parameter buffer of nn::ParameterStore. */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

#include <cmath>

namespace scoreood::gpu {

/// Adam hyper-parameters (PyTorch's defaults; NCSN uses lr 1e-3).
struct AdamConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

namespace kernels {

/// p -= step_size * m / (sqrt(v) / bc2_sqrt + eps), the operation order of
/// PyTorch's single-tensor Adam.
template <typename T>
__global__ void adam_step(T* param, const T* grad, T* m, T* v, std::size_t n, T beta1, T beta2, T eps, T weight_decay,
                          T step_size, T bc2_sqrt) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    T g = grad[i];
    if (weight_decay != T(0)) g += weight_decay * param[i];
    const T mi = beta1 * m[i] + (T(1) - beta1) * g;
    const T vi = beta2 * v[i] + (T(1) - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
  }
}

/// nn::Adam's loop, float for float: g' = g + wd p; m = b1 m + a1 g'; v = b2 v + a2 g'^2;
/// p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps).
template <typename T>
__global__ void adam_update(T* param, const T* grad, T* m, T* v, std::size_t n, T b1, T b2, T a1, T a2, T eps, T wd,
                            T step_size, T inv_sqrt_bc2) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const T gi = grad[i] + wd * param[i];
    const T mi = b1 * m[i] + a1 * gi;
    const T vi = b2 * v[i] + a2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (sqrt(vi) * inv_sqrt_bc2 + eps);
  }
}

/// shadow = a * shadow + b * param (nn::Ema: a = rate, b = 1 - rate, each rounded once).
template <typename T>
__global__ void ema_blend(T* shadow, const T* param, std::size_t n, T a, T b) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) shadow[i] = a * shadow[i] + b * param[i];
}

template <typename T>
__global__ void ema_update(T* shadow, const T* param, std::size_t n, T mu) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride())
    shadow[i] = (T(1) - mu) * param[i] + mu * shadow[i];
}

}  // namespace kernels

/// One Adam step over n parameters. step: 1 for the first update (bias
/// correction 1 - beta^step, computed in double on the host). m and v start at 0.
template <typename T>
void adam_step(T* param, const T* grad, T* m, T* v, std::size_t n, const AdamConfig& c, long step,
               cudaStream_t stream = nullptr) {
  detail::require(step >= 1, "adam_step", "step counts from 1, got " + std::to_string(step));
  detail::require(c.lr >= 0 && c.eps > 0 && c.beta1 >= 0 && c.beta1 < 1 && c.beta2 >= 0 && c.beta2 < 1 &&
                      c.weight_decay >= 0,
                  "adam_step", "hyper-parameters out of range (lr >= 0, eps > 0, 0 <= beta < 1, weight_decay >= 0)");
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(c.beta1, double(step));
  const double bc2 = 1.0 - std::pow(c.beta2, double(step));
  kernels::adam_step<<<detail::grid_for(n), kBlock, 0, stream>>>(param, grad, m, v, n, T(c.beta1), T(c.beta2), T(c.eps),
                                                                 T(c.weight_decay), T(c.lr / bc1), T(std::sqrt(bc2)));
  SCOREOOD_CUDA_CHECK_LAUNCH("adam_step");
}

/// The constants of one Adam step in the order nn::Adam rounds them (from double, once each).
struct AdamCoefficients {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  double step_size = 1e-3;     ///< lr / (1 - beta1^t)
  double inv_sqrt_bc2 = 1;     ///< 1 / sqrt(1 - beta2^t)
};

/// One Adam step with nn::Adam's float arithmetic (ops<cuda>::adam_step).
template <typename T>
void adam_update(T* param, const T* grad, T* m, T* v, std::size_t n, const AdamCoefficients& c,
                 cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::adam_update<<<detail::grid_for(n), kBlock, 0, stream>>>(
      param, grad, m, v, n, T(c.beta1), T(c.beta2), T(1.0 - c.beta1), T(1.0 - c.beta2), T(c.eps), T(c.weight_decay),
      T(c.step_size), T(c.inv_sqrt_bc2));
  SCOREOOD_CUDA_CHECK_LAUNCH("adam_update");
}

/// shadow = rate * shadow + (1 - rate) * param with nn::Ema's rounding (ops<cuda>::ema_update).
template <typename T>
void ema_blend(T* shadow, const T* param, std::size_t n, double rate, cudaStream_t stream = nullptr) {
  detail::require(rate >= 0 && rate <= 1, "ema_blend", "rate must be in [0, 1]");
  if (n == 0) return;
  kernels::ema_blend<<<detail::grid_for(n), kBlock, 0, stream>>>(shadow, param, n, T(rate), T(1.0 - rate));
  SCOREOOD_CUDA_CHECK_LAUNCH("ema_blend");
}

/// shadow = (1 - mu) * param + mu * shadow (NCSN's EMAHelper; mu = 0.999 in NCSNv2).
template <typename T>
void ema_update(T* shadow, const T* param, std::size_t n, T mu, cudaStream_t stream = nullptr) {
  detail::require(mu >= T(0) && mu <= T(1), "ema_update", "mu must be in [0, 1]");
  if (n == 0) return;
  kernels::ema_update<<<detail::grid_for(n), kBlock, 0, stream>>>(shadow, param, n, mu);
  SCOREOOD_CUDA_CHECK_LAUNCH("ema_update");
}

}  // namespace scoreood::gpu
