/** @file elementwise.cuh
 *  @brief Elementwise kernels (fill, scale, axpy, add, affine), the per-channel
 *  bias add (with an optional residual) / bias-gradient reductions used around
 *  cuDNN convolutions, and the sum of squares in double (gradient norms). */
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
__global__ void affine(const T* x, T* y, std::size_t n, T a, T b) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) y[i] = a * x[i] + b;
}

/// y[i] += bias[channel] (bias nullable) + residual[i] (residual nullable).
template <typename T>
__global__ void bias_residual(T* y, const T* bias, const T* residual, std::size_t n, int channels,
                              std::size_t plane) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    T v = y[i];
    if (bias) v += bias[(i / plane) % channels];
    if (residual) v += residual[i];
    y[i] = v;
  }
}

/// Block partials of sum x[i]^2 in double (grid-stride; partial[blockIdx.x]).
template <typename T>
__global__ void sum_squares_partials(const T* x, std::size_t n, double* partial) {
  double acc = 0;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) acc += double(x[i]) * double(x[i]);
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

/// One block: *out = sum of the n partials (fixed order: deterministic).
template <typename D>
__global__ void sum_partials(const D* partial, std::size_t n, D* out) {
  D acc = 0;
  for (std::size_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
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

/// y[i] = a * x[i] + b (y may alias x).
template <typename T>
void affine(const T* x, T* y, std::size_t n, T a, T b, cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::affine<<<detail::grid_for(n), kBlock, 0, stream>>>(x, y, n, a, b);
  SCOREOOD_CUDA_CHECK_LAUNCH("affine");
}

/// y[n, c, :, :] += bias[c] (nullable) + residual (nullable, y's shape) for an (batch, channels, plane) tensor.
template <typename T>
void bias_residual(T* y, const T* bias, const T* residual, int batch, int channels, std::size_t plane,
                   cudaStream_t stream = nullptr) {
  detail::require(batch >= 0 && channels > 0, "bias_residual", "batch must be >= 0 and channels > 0");
  const std::size_t n = std::size_t(batch) * channels * plane;
  if (n == 0 || (!bias && !residual)) return;
  kernels::bias_residual<<<detail::grid_for(n), kBlock, 0, stream>>>(y, bias, residual, n, channels, plane);
  SCOREOOD_CUDA_CHECK_LAUNCH("bias_residual");
}

/// Blocks of sum_squares(): a fixed grid, so the result does not depend on the launch.
inline constexpr unsigned kSumSquaresBlocks = 512;

/// *out = sum x[i]^2 in double on the device; partial: kSumSquaresBlocks doubles of scratch.
/// Deterministic (fixed grid, fixed reduction order).
template <typename T>
void sum_squares(const T* x, std::size_t n, double* partial, double* out, cudaStream_t stream = nullptr) {
  const unsigned blocks = n == 0 ? 1u : std::min<unsigned>(kSumSquaresBlocks, detail::grid_for(n));
  kernels::sum_squares_partials<<<blocks, kBlock, 0, stream>>>(x, n, partial);
  SCOREOOD_CUDA_CHECK_LAUNCH("sum_squares_partials");
  kernels::sum_partials<double><<<1, kBlock, 0, stream>>>(partial, blocks, out);
  SCOREOOD_CUDA_CHECK_LAUNCH("sum_partials");
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
