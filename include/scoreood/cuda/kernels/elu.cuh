/** @file elu.cuh
 *  @brief ELU activation, forward and backward:
 *  y = x for x > 0, alpha * expm1(x) otherwise (torch.nn.ELU). The backward
 *  comes from the input x, or, as nn::Elu computes it, from the output y:
 *  dy/dx = 1 for y > 0, else y + alpha (so the ELU may run in place). */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

namespace scoreood::gpu {
namespace kernels {

template <typename T>
__global__ void elu_forward(const T* x, T* y, std::size_t n, T alpha) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const T v = x[i];
    y[i] = v > T(0) ? v : alpha * expm1(v);
  }
}

template <typename T>
__global__ void elu_backward(const T* x, const T* dy, T* dx, std::size_t n, T alpha, bool accumulate) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const T v = x[i];
    const T g = dy[i] * (v > T(0) ? T(1) : alpha * exp(v));
    dx[i] = accumulate ? dx[i] + g : g;
  }
}

template <typename T>
__global__ void elu_backward_from_output(const T* y, const T* dy, T* dx, std::size_t n, T alpha) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const T v = y[i];
    dx[i] = dy[i] * (v > T(0) ? T(1) : v + alpha);
  }
}

}  // namespace kernels

/// y = elu(x) elementwise (y may alias x).
template <typename T>
void elu_forward(const T* x, T* y, std::size_t n, T alpha = T(1), cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::elu_forward<<<detail::grid_for(n), kBlock, 0, stream>>>(x, y, n, alpha);
  SCOREOOD_CUDA_CHECK_LAUNCH("elu_forward");
}

/// dx = (or +=, when accumulate) dy * elu'(x), from the forward pass's input x.
template <typename T>
void elu_backward(const T* x, const T* dy, T* dx, std::size_t n, T alpha = T(1), bool accumulate = false,
                  cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::elu_backward<<<detail::grid_for(n), kBlock, 0, stream>>>(x, dy, dx, n, alpha, accumulate);
  SCOREOOD_CUDA_CHECK_LAUNCH("elu_backward");
}

/// dx = dy * elu'(x) from the forward's OUTPUT y (dx may alias dy or y).
template <typename T>
void elu_backward_from_output(const T* y, const T* dy, T* dx, std::size_t n, T alpha = T(1),
                              cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::elu_backward_from_output<<<detail::grid_for(n), kBlock, 0, stream>>>(y, dy, dx, n, alpha);
  SCOREOOD_CUDA_CHECK_LAUNCH("elu_backward_from_output");
}

}  // namespace scoreood::gpu
