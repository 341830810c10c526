/** @file upsample.cuh
 *  @brief Nearest and bilinear resizing of (planes, H, W) to (planes, Ho, Wo),
 *  forward and backward, with torch.nn.functional.interpolate's index rules:
 *  nearest: src = min(floor(dst * float(H / Ho)), H - 1), the scale rounded to
 *           float first as PyTorch and nn/layers/upsample.hpp do;
 *  bilinear, align_corners = true:  src = dst * (H - 1) / (Ho - 1)  (0 when Ho == 1);
 *  bilinear, align_corners = false: src = max(0, (dst + 0.5) * H / Ho - 0.5).
 *  NCSN's RefineNet fuses resolutions with bilinear, align_corners = true;
 *  SmallUNet's decoder adds its skip inside the nearest pass (nearest_forward_add). */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

namespace scoreood::gpu {

struct ResizeShape {
  int planes = 0;  ///< batch * channels
  int height = 0, width = 0;
  int out_height = 0, out_width = 0;
};

namespace detail {

inline void check_resize(const ResizeShape& s, const char* who) {
  require_shape(s.planes >= 0 && s.height >= 1 && s.width >= 1 && s.out_height >= 1 && s.out_width >= 1, who,
                "sizes must be positive: " + std::to_string(s.height) + "x" + std::to_string(s.width) + " -> " +
                    std::to_string(s.out_height) + "x" + std::to_string(s.out_width));
}

/// Source index of output index dst along one axis (nearest).
SCOREOOD_HOST_DEVICE inline int nearest_source(int dst, int in, int out) {
  const float scale = float(in) / float(out);
  const int src = int(floorf(float(dst) * scale));
  return src < in - 1 ? src : in - 1;
}

/// Source coordinate of output index dst along one axis (bilinear).
template <typename T>
__device__ inline T bilinear_source(int dst, int in, int out, bool align_corners) {
  // Scale first, then multiply: the same rounding as PyTorch's CPU kernels.
  if (align_corners) return out > 1 ? (T(in - 1) / T(out - 1)) * T(dst) : T(0);
  const T src = (T(in) / T(out)) * (T(dst) + T(0.5)) - T(0.5);
  return src < T(0) ? T(0) : src;
}

/// Lower tap, upper tap and the weight of the upper tap.
template <typename T>
__device__ inline void bilinear_taps(int dst, int in, int out, bool align_corners, int& i0, int& i1, T& w1) {
  const T src = bilinear_source<T>(dst, in, out, align_corners);
  i0 = min(int(src), in - 1);
  i1 = min(i0 + 1, in - 1);
  w1 = src - T(i0);
}

}  // namespace detail

namespace kernels {

/// y = nearest(x) (+ residual, when not null).
template <typename T>
__global__ void nearest_forward(const T* x, const T* residual, T* y, ResizeShape s) {
  const std::size_t n = std::size_t(s.planes) * s.out_height * s.out_width;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const int ox = int(i % s.out_width), oy = int((i / s.out_width) % s.out_height);
    const std::size_t p = i / (std::size_t(s.out_width) * s.out_height);
    const int iy = detail::nearest_source(oy, s.height, s.out_height);
    const int ix = detail::nearest_source(ox, s.width, s.out_width);
    const T v = x[(p * s.height + iy) * s.width + ix];
    y[i] = residual ? v + residual[i] : v;
  }
}

/// One thread per input pixel, gathering the outputs that read it. Along an
/// axis those are about dst in [i * out / in, (i + 1) * out / in); the window
/// is widened by one on each side and each candidate is tested with the same
/// nearest_source() as the forward pass, so both agree to the last bit.
template <typename T>
__global__ void nearest_backward(const T* dy, T* dx, ResizeShape s, bool accumulate) {
  const std::size_t n = std::size_t(s.planes) * s.height * s.width;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const int ix = int(i % s.width), iy = int((i / s.width) % s.height);
    const std::size_t p = i / (std::size_t(s.width) * s.height);
    const int y0 = max(0, int(std::int64_t(iy) * s.out_height / s.height) - 1);
    const int y1 = min(s.out_height, int(std::int64_t(iy + 1) * s.out_height / s.height) + 2);
    const int x0 = max(0, int(std::int64_t(ix) * s.out_width / s.width) - 1);
    const int x1 = min(s.out_width, int(std::int64_t(ix + 1) * s.out_width / s.width) + 2);
    const T* gp = dy + p * s.out_height * s.out_width;
    T acc = 0;
    for (int oy = y0; oy < y1; ++oy) {
      if (detail::nearest_source(oy, s.height, s.out_height) != iy) continue;
      for (int ox = x0; ox < x1; ++ox)
        if (detail::nearest_source(ox, s.width, s.out_width) == ix) acc += gp[oy * s.out_width + ox];
    }
    dx[i] = accumulate ? dx[i] + acc : acc;
  }
}

template <typename T>
__global__ void bilinear_forward(const T* x, T* y, ResizeShape s, bool align_corners) {
  const std::size_t n = std::size_t(s.planes) * s.out_height * s.out_width;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const int ox = int(i % s.out_width), oy = int((i / s.out_width) % s.out_height);
    const std::size_t p = i / (std::size_t(s.out_width) * s.out_height);
    int y0, y1, x0, x1;
    T wy, wx;
    detail::bilinear_taps<T>(oy, s.height, s.out_height, align_corners, y0, y1, wy);
    detail::bilinear_taps<T>(ox, s.width, s.out_width, align_corners, x0, x1, wx);
    const T* xp = x + p * s.height * s.width;
    y[i] = (T(1) - wy) * ((T(1) - wx) * xp[y0 * s.width + x0] + wx * xp[y0 * s.width + x1]) +
           wy * ((T(1) - wx) * xp[y1 * s.width + x0] + wx * xp[y1 * s.width + x1]);
  }
}

/// One thread per output pixel scattering into its four taps with atomics;
/// dx must hold zeros (or the values to accumulate onto) beforehand.
template <typename T>
__global__ void bilinear_backward(const T* dy, T* dx, ResizeShape s, bool align_corners) {
  const std::size_t n = std::size_t(s.planes) * s.out_height * s.out_width;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const int ox = int(i % s.out_width), oy = int((i / s.out_width) % s.out_height);
    const std::size_t p = i / (std::size_t(s.out_width) * s.out_height);
    int y0, y1, x0, x1;
    T wy, wx;
    detail::bilinear_taps<T>(oy, s.height, s.out_height, align_corners, y0, y1, wy);
    detail::bilinear_taps<T>(ox, s.width, s.out_width, align_corners, x0, x1, wx);
    T* dp = dx + p * s.height * s.width;
    const T g = dy[i];
    atomicAdd(dp + y0 * s.width + x0, (T(1) - wy) * (T(1) - wx) * g);
    atomicAdd(dp + y0 * s.width + x1, (T(1) - wy) * wx * g);
    atomicAdd(dp + y1 * s.width + x0, wy * (T(1) - wx) * g);
    atomicAdd(dp + y1 * s.width + x1, wy * wx * g);
  }
}

}  // namespace kernels

/// y (planes, Ho, Wo) = nearest-neighbour resize of x (planes, H, W).
template <typename T>
void nearest_forward(const T* x, T* y, const ResizeShape& s, cudaStream_t stream = nullptr) {
  detail::check_resize(s, "nearest_forward");
  const std::size_t n = std::size_t(s.planes) * s.out_height * s.out_width;
  if (n == 0) return;
  kernels::nearest_forward<<<detail::grid_for(n), kBlock, 0, stream>>>(x, static_cast<const T*>(nullptr), y, s);
  SCOREOOD_CUDA_CHECK_LAUNCH("nearest_forward");
}

/// y = nearest-neighbour resize of x + residual (residual of y's shape, distinct from y).
template <typename T>
void nearest_forward_add(const T* x, const T* residual, T* y, const ResizeShape& s, cudaStream_t stream = nullptr) {
  detail::check_resize(s, "nearest_forward_add");
  const std::size_t n = std::size_t(s.planes) * s.out_height * s.out_width;
  if (n == 0) return;
  kernels::nearest_forward<<<detail::grid_for(n), kBlock, 0, stream>>>(x, residual, y, s);
  SCOREOOD_CUDA_CHECK_LAUNCH("nearest_forward_add");
}

/// dx = (or +=, when accumulate) the adjoint of nearest_forward applied to dy.
template <typename T>
void nearest_backward(const T* dy, T* dx, const ResizeShape& s, bool accumulate = false,
                      cudaStream_t stream = nullptr) {
  detail::check_resize(s, "nearest_backward");
  const std::size_t n = std::size_t(s.planes) * s.height * s.width;
  if (n == 0) return;
  kernels::nearest_backward<<<detail::grid_for(n), kBlock, 0, stream>>>(dy, dx, s, accumulate);
  SCOREOOD_CUDA_CHECK_LAUNCH("nearest_backward");
}

/// y (planes, Ho, Wo) = bilinear resize of x (planes, H, W).
template <typename T>
void bilinear_forward(const T* x, T* y, const ResizeShape& s, bool align_corners, cudaStream_t stream = nullptr) {
  detail::check_resize(s, "bilinear_forward");
  const std::size_t n = std::size_t(s.planes) * s.out_height * s.out_width;
  if (n == 0) return;
  kernels::bilinear_forward<<<detail::grid_for(n), kBlock, 0, stream>>>(x, y, s, align_corners);
  SCOREOOD_CUDA_CHECK_LAUNCH("bilinear_forward");
}

/// dx = (or +=, when accumulate) the adjoint of bilinear_forward applied to dy.
/// Uses atomics, so the summation order (last bits) varies from run to run.
template <typename T>
void bilinear_backward(const T* dy, T* dx, const ResizeShape& s, bool align_corners, bool accumulate = false,
                       cudaStream_t stream = nullptr) {
  detail::check_resize(s, "bilinear_backward");
  const std::size_t n_in = std::size_t(s.planes) * s.height * s.width;
  const std::size_t n = std::size_t(s.planes) * s.out_height * s.out_width;
  if (n_in == 0) return;
  if (!accumulate) SCOREOOD_CUDA_CHECK(cudaMemsetAsync(dx, 0, n_in * sizeof(T), stream));
  kernels::bilinear_backward<<<detail::grid_for(n), kBlock, 0, stream>>>(dy, dx, s, align_corners);
  SCOREOOD_CUDA_CHECK_LAUNCH("bilinear_backward");
}

}  // namespace scoreood::gpu
