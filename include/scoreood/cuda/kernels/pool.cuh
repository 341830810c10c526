/** @file pool.cuh
 *  @brief Average pooling with zero padding counted in the divisor
 *  (torch.nn.AvgPool2d with count_include_pad=True): NCSN's chained residual
 *  pooling uses 5x5, stride 1, padding 2; its mean-pool down-sampling is 2x2,
 *  stride 2 (on even sizes the same as averaging the four strided sub-grids).
 *  With count_include_pad = false the divisor is the number of taps inside the
 *  image (torch's count_include_pad=False, nn::AvgPool2d's option). */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

namespace scoreood::gpu {

/// One average-pooling geometry on (batch*channels) planes of H x W.
struct PoolShape {
  int planes = 0;  ///< batch * channels
  int height = 0, width = 0;
  int kernel = 5, stride = 1, pad = 2;
  bool count_include_pad = true;
  SCOREOOD_HOST_DEVICE int out_height() const { return (height + 2 * pad - kernel) / stride + 1; }
  SCOREOOD_HOST_DEVICE int out_width() const { return (width + 2 * pad - kernel) / stride + 1; }
};

namespace detail {
inline void check_pool(const PoolShape& s, const char* who) {
  require_shape(s.planes >= 0 && s.height >= 1 && s.width >= 1 && s.kernel >= 1 && s.stride >= 1 && s.pad >= 0 &&
                    s.pad < s.kernel && s.height + 2 * s.pad >= s.kernel && s.width + 2 * s.pad >= s.kernel,
                who,
                "bad pooling geometry: " + std::to_string(s.height) + "x" + std::to_string(s.width) + ", kernel " +
                    std::to_string(s.kernel) + ", stride " + std::to_string(s.stride) + ", pad " +
                    std::to_string(s.pad));
}
/// Taps of window o (along one axis of n pixels) that fall inside the image.
SCOREOOD_HOST_DEVICE inline int pool_count(int o, int n, const PoolShape& s) {
  const int start = o * s.stride - s.pad;
  const int end = start + s.kernel < n ? start + s.kernel : n;
  return end - (start > 0 ? start : 0);
}
/// 1 / divisor of output (oy, ox).
template <typename T>
SCOREOOD_HOST_DEVICE inline T pool_inv(int oy, int ox, const PoolShape& s) {
  return s.count_include_pad ? T(1) / T(s.kernel * s.kernel)
                             : T(1) / T(pool_count(oy, s.height, s) * pool_count(ox, s.width, s));
}

}  // namespace detail

namespace kernels {

/// One thread per output pixel.
template <typename T>
__global__ void avg_pool_forward(const T* x, T* y, PoolShape s) {
  const int Ho = s.out_height(), Wo = s.out_width();
  const std::size_t n = std::size_t(s.planes) * Ho * Wo;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const int ox = int(i % Wo), oy = int((i / Wo) % Ho);
    const T inv = detail::pool_inv<T>(oy, ox, s);
    const std::size_t p = i / (std::size_t(Wo) * Ho);
    const T* xp = x + p * s.height * s.width;
    T acc = 0;
    for (int ky = 0; ky < s.kernel; ++ky) {
      const int iy = oy * s.stride - s.pad + ky;
      if (iy < 0 || iy >= s.height) continue;
      for (int kx = 0; kx < s.kernel; ++kx) {
        const int ix = ox * s.stride - s.pad + kx;
        if (ix >= 0 && ix < s.width) acc += xp[iy * s.width + ix];
      }
    }
    y[i] = acc * inv;
  }
}

/// One thread per input pixel, gathering from every output window that
/// covers it (deterministic, no atomics).
template <typename T>
__global__ void avg_pool_backward(const T* dy, T* dx, PoolShape s, bool accumulate) {
  const int Ho = s.out_height(), Wo = s.out_width();
  const std::size_t n = std::size_t(s.planes) * s.height * s.width;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const int ix = int(i % s.width), iy = int((i / s.width) % s.height);
    const std::size_t p = i / (std::size_t(s.width) * s.height);
    const T* gp = dy + p * Ho * Wo;
    T acc = 0;
    for (int ky = 0; ky < s.kernel; ++ky) {
      const int ty = iy + s.pad - ky;  // = oy * stride for the window whose tap ky lands on iy
      if (ty < 0 || ty % s.stride != 0 || ty / s.stride >= Ho) continue;
      for (int kx = 0; kx < s.kernel; ++kx) {
        const int tx = ix + s.pad - kx;
        if (tx < 0 || tx % s.stride != 0 || tx / s.stride >= Wo) continue;
        acc += gp[(ty / s.stride) * Wo + tx / s.stride] * detail::pool_inv<T>(ty / s.stride, tx / s.stride, s);
      }
    }
    dx[i] = accumulate ? dx[i] + acc : acc;
  }
}

}  // namespace kernels

/// y = avg_pool(x), y of shape (planes, out_height, out_width).
template <typename T>
void avg_pool_forward(const T* x, T* y, const PoolShape& s, cudaStream_t stream = nullptr) {
  detail::check_pool(s, "avg_pool_forward");
  const std::size_t n = std::size_t(s.planes) * s.out_height() * s.out_width();
  if (n == 0) return;
  kernels::avg_pool_forward<<<detail::grid_for(n), kBlock, 0, stream>>>(x, y, s);
  SCOREOOD_CUDA_CHECK_LAUNCH("avg_pool_forward");
}

/// dx = (or +=, when accumulate) the adjoint of avg_pool applied to dy.
template <typename T>
void avg_pool_backward(const T* dy, T* dx, const PoolShape& s, bool accumulate = false, cudaStream_t stream = nullptr) {
  detail::check_pool(s, "avg_pool_backward");
  const std::size_t n = std::size_t(s.planes) * s.height * s.width;
  if (n == 0) return;
  kernels::avg_pool_backward<<<detail::grid_for(n), kBlock, 0, stream>>>(dy, dx, s, accumulate);
  SCOREOOD_CUDA_CHECK_LAUNCH("avg_pool_backward");
}

/// The 2x2 / stride 2 mean pool of NCSN's down-sampling blocks.
inline PoolShape mean_pool2_shape(int planes, int height, int width) { return PoolShape{planes, height, width, 2, 2, 0}; }

template <typename T>
void mean_pool2_forward(const T* x, T* y, int planes, int height, int width, cudaStream_t stream = nullptr) {
  avg_pool_forward(x, y, mean_pool2_shape(planes, height, width), stream);
}
template <typename T>
void mean_pool2_backward(const T* dy, T* dx, int planes, int height, int width, bool accumulate = false,
                         cudaStream_t stream = nullptr) {
  avg_pool_backward(dy, dx, mean_pool2_shape(planes, height, width), accumulate, stream);
}

}  // namespace scoreood::gpu
