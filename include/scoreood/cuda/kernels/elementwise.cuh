/** @file elementwise.cuh
 *  @brief Elementwise kernels (fill, scale, axpy, add) and the per-channel bias
 *  add / bias-gradient reductions used around cuDNN convolutions. */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

namespace scoreood::gpu {
namespace kernels {

template <typename T>
__global__ void fill(T* x, std::size_t n, T value) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) x[i] = value;
}

template <typename T>
__global__ void scale(T* x, std::size_t n, T a) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) x[i] *= a;
}

template <typename T>
__global__ void axpy(T a, const T* x, T* y, std::size_t n) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) y[i] += a * x[i];
}

template <typename T>
__global__ void add(const T* a, const T* b, T* out, std::size_t n) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) out[i] = a[i] + b[i];
}

template <typename T>
__global__ void add_channel_bias(T* y, const T* bias, std::size_t n_planes, int channels, std::size_t plane) {
  const std::size_t n = n_planes * plane;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride())
    y[i] += bias[(i / plane) % channels];
}

/// One block per channel c: db[c] (+)= sum over samples and pixels of dy[:, c].
template <typename T>
__global__ void channel_sum(const T* dy, T* db, int batch, int channels, std::size_t plane, bool accumulate) {
  const int c = blockIdx.x;
  T acc = 0;
  for (int n = 0; n < batch; ++n) {
    const T* p = dy + (std::size_t(n) * channels + c) * plane;
    for (std::size_t i = threadIdx.x; i < plane; i += blockDim.x) acc += p[i];
  }
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) db[c] = accumulate ? db[c] + acc : acc;
}

}  // namespace kernels

/// x[i] = value for i < n.
template <typename T>
void fill(T* x, std::size_t n, T value, cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::fill<<<detail::grid_for(n), kBlock, 0, stream>>>(x, n, value);
  SCOREOOD_CUDA_CHECK_LAUNCH("fill");
}

/// x[i] *= a.
template <typename T>
void scale(T* x, std::size_t n, T a, cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::scale<<<detail::grid_for(n), kBlock, 0, stream>>>(x, n, a);
  SCOREOOD_CUDA_CHECK_LAUNCH("scale");
}

/// y[i] += a * x[i].
template <typename T>
void axpy(T a, const T* x, T* y, std::size_t n, cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::axpy<<<detail::grid_for(n), kBlock, 0, stream>>>(a, x, y, n);
  SCOREOOD_CUDA_CHECK_LAUNCH("axpy");
}

/// out[i] = a[i] + b[i] (out may alias a or b).
template <typename T>
void add(const T* a, const T* b, T* out, std::size_t n, cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::add<<<detail::grid_for(n), kBlock, 0, stream>>>(a, b, out, n);
  SCOREOOD_CUDA_CHECK_LAUNCH("add");
}

/// y[n, c, :, :] += bias[c] for an (batch, channels, plane = H*W) tensor.
template <typename T>
void add_channel_bias(T* y, const T* bias, int batch, int channels, std::size_t plane, cudaStream_t stream = nullptr) {
  detail::require(batch >= 0 && channels > 0, "add_channel_bias", "batch must be >= 0 and channels > 0");
  const std::size_t n = std::size_t(batch) * channels * plane;
  if (n == 0) return;
  kernels::add_channel_bias<<<detail::grid_for(n), kBlock, 0, stream>>>(y, bias, std::size_t(batch) * channels,
                                                                        channels, plane);
  SCOREOOD_CUDA_CHECK_LAUNCH("add_channel_bias");
}

/// db[c] = (or +=, when accumulate) sum of dy[:, c, :, :]: the gradient of a
/// per-channel bias. Deterministic (no atomics).
template <typename T>
void channel_sum(const T* dy, T* db, int batch, int channels, std::size_t plane, bool accumulate,
                 cudaStream_t stream = nullptr) {
  detail::require(batch >= 0 && channels > 0, "channel_sum", "batch must be >= 0 and channels > 0");
  kernels::channel_sum<<<channels, kBlock, 0, stream>>>(dy, db, batch, channels, plane, accumulate);
  SCOREOOD_CUDA_CHECK_LAUNCH("channel_sum");
}

}  // namespace scoreood::gpu
