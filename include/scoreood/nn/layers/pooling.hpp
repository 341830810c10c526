/** @file pooling.hpp
 *  @brief Average pooling: AvgPool2d (PyTorch nn.AvgPool2d) and MeanPool2x2 (NCSN's mean pool).
 *
 *  Both are linear, so backward() needs only the input shape (nothing is
 *  cached but the shape). Planes (n, c) are processed in parallel. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/elementwise.hpp>
#include <scoreood/cpu/threading.hpp>

#include <algorithm>
#include <cstddef>
#include <string>

namespace scoreood::nn {

/// nn.AvgPool2d(kernel, stride, padding, ceil_mode=False, count_include_pad).
/// Computed separably (a row pass then a column pass), 2k adds per output
/// instead of k² — NCSN's chained residual pooling uses 5x5, stride 1, padding 2.
template <class T>
class AvgPool2d {
 public:
  struct Spec {
    std::size_t kernel = 2;
    std::size_t stride = 0;   ///< 0: stride = kernel (PyTorch's default)
    std::size_t padding = 0;  ///< at most kernel / 2, as in PyTorch
    bool count_include_pad = true;
  };

  AvgPool2d(std::size_t kernel, std::size_t stride = 0, std::size_t padding = 0, bool count_include_pad = true)
      : AvgPool2d(Spec{kernel, stride, padding, count_include_pad}) {}
  explicit AvgPool2d(Spec s) : spec_(s) {
    if (spec_.kernel == 0) throw ValueError("AvgPool2d: kernel must be positive");
    if (spec_.stride == 0) spec_.stride = spec_.kernel;
    if (2 * spec_.padding > spec_.kernel)
      throw ValueError("AvgPool2d: padding " + std::to_string(spec_.padding) + " exceeds half the kernel " +
                       std::to_string(spec_.kernel));
  }
  const Spec& spec() const { return spec_; }

  Shape4 output_shape(Shape4 in) const {
    const std::size_t k = spec_.kernel, p = spec_.padding, s = spec_.stride;
    if (in[2] + 2 * p < k || in[3] + 2 * p < k)
      throw ShapeError("AvgPool2d: input " + to_string(in) + " is smaller than the " + std::to_string(k) +
                       "x" + std::to_string(k) + " window");
    return {in[0], in[1], (in[2] + 2 * p - k) / s + 1, (in[3] + 2 * p - k) / s + 1};
  }
  std::size_t macs(Shape4 in) const {
    const Shape4 o = output_shape(in);
    return o[0] * o[1] * o[2] * o[3] * spec_.kernel * spec_.kernel;
  }

  void forward(const Tensor4<T>& x, Tensor4<T>& y) {
    infer(x, y);
    in_shape_ = shape_of(x);
    have_ = true;
  }

  void infer(const Tensor4<T>& x, Tensor4<T>& y) const {
    if (&x == &y) throw Error("AvgPool2d: input and output must be different tensors");
    const Shape4 in = shape_of(x), out = output_shape(in);
    cpu::detail::resize_like(y, out);
    const std::size_t H = in[2], W = in[3], Ho = out[2], Wo = out[3];
    const T* xd = x.data();
    T* yd = y.data();
    cpu::parallel_for(in[0] * in[1], [&](std::size_t plane) {
      T* tmp = cpu::scratch<T>(cpu::Scratch::temp, H * Wo);  // row sums: [H, Wo]
      const T* xp = xd + plane * H * W;
      for (std::size_t iy = 0; iy < H; ++iy)
        for (std::size_t ox = 0; ox < Wo; ++ox) {
          const auto [a, b] = window(ox, W);
          T s = 0;
          for (std::size_t ix = a; ix < b; ++ix) s += xp[iy * W + ix];
          tmp[iy * Wo + ox] = s;
        }
      T* yp = yd + plane * Ho * Wo;
      for (std::size_t oy = 0; oy < Ho; ++oy) {
        const auto [a, b] = window(oy, H);
        for (std::size_t ox = 0; ox < Wo; ++ox) yp[oy * Wo + ox] = 0;
        for (std::size_t iy = a; iy < b; ++iy)
          for (std::size_t ox = 0; ox < Wo; ++ox) yp[oy * Wo + ox] += tmp[iy * Wo + ox];
        for (std::size_t ox = 0; ox < Wo; ++ox) yp[oy * Wo + ox] /= divisor(oy, ox, H, W);
      }
    }, double(H * W * spec_.kernel));
  }

  /// dx (resized, overwritten) = adjoint of the pooling applied to dy.
  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
    if (!have_) throw Error("AvgPool2d: backward() called without a training forward()");
    const Shape4 in = in_shape_, out = output_shape(in);
    if (shape_of(dy) != out)
      throw ShapeError("AvgPool2d: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(out));
    if (&dx == &dy) throw Error("AvgPool2d: dx and dy must be different tensors");
    cpu::detail::resize_like(dx, in);
    const std::size_t H = in[2], W = in[3], Ho = out[2], Wo = out[3];
    const T* gd = dy.data();
    T* dd = dx.data();
    cpu::parallel_for(in[0] * in[1], [&](std::size_t plane) {
      T* tmp = cpu::scratch<T>(cpu::Scratch::temp, H * Wo);  // d(row sums)
      std::fill(tmp, tmp + H * Wo, T(0));
      const T* gp = gd + plane * Ho * Wo;
      for (std::size_t oy = 0; oy < Ho; ++oy) {
        const auto [a, b] = window(oy, H);
        for (std::size_t iy = a; iy < b; ++iy)
          for (std::size_t ox = 0; ox < Wo; ++ox) tmp[iy * Wo + ox] += gp[oy * Wo + ox] / divisor(oy, ox, H, W);
      }
      T* dp = dd + plane * H * W;
      std::fill(dp, dp + H * W, T(0));
      for (std::size_t iy = 0; iy < H; ++iy)
        for (std::size_t ox = 0; ox < Wo; ++ox) {
          const auto [a, b] = window(ox, W);
          const T g = tmp[iy * Wo + ox];
          for (std::size_t ix = a; ix < b; ++ix) dp[iy * W + ix] += g;
        }
    }, double(H * W * spec_.kernel));
  }

 private:
  /// Input range [a, b) of output position o along an axis of length n (padding excluded).
  std::pair<std::size_t, std::size_t> window(std::size_t o, std::size_t n) const {
    const std::ptrdiff_t start = std::ptrdiff_t(o * spec_.stride) - std::ptrdiff_t(spec_.padding);
    const std::ptrdiff_t end = start + std::ptrdiff_t(spec_.kernel);
    return {std::size_t(std::max<std::ptrdiff_t>(start, 0)), std::size_t(std::min<std::ptrdiff_t>(end, std::ptrdiff_t(n)))};
  }
  /// PyTorch's divisor: k*k with count_include_pad (windows never pass the padded
  /// border without ceil_mode), else the number of real pixels in the window.
  T divisor(std::size_t oy, std::size_t ox, std::size_t H, std::size_t W) const {
    if (spec_.count_include_pad) return T(spec_.kernel * spec_.kernel);
    const auto [ya, yb] = window(oy, H);
    const auto [xa, xb] = window(ox, W);
    return T((yb - ya) * (xb - xa));
  }

  Spec spec_;
  Shape4 in_shape_{};
  bool have_ = false;
};

/// Mean of each 2x2 block (NCSN's ConvMeanPool / MeanPoolConv): output H/2 x W/2,
/// rounded down like avg_pool2d(2) — NCSN itself only sees even sizes.
template <class T>
class MeanPool2x2 {
 public:
  Shape4 output_shape(Shape4 in) const {
    if (in[2] < 2 || in[3] < 2) throw ShapeError("MeanPool2x2: input " + to_string(in) + " is smaller than 2x2");
    return {in[0], in[1], in[2] / 2, in[3] / 2};
  }
  std::size_t macs(Shape4 in) const {
    const Shape4 o = output_shape(in);
    return o[0] * o[1] * o[2] * o[3] * 4;
  }

  void forward(const Tensor4<T>& x, Tensor4<T>& y) {
    infer(x, y);
    in_shape_ = shape_of(x);
    have_ = true;
  }

  void infer(const Tensor4<T>& x, Tensor4<T>& y) const {
    if (&x == &y) throw Error("MeanPool2x2: input and output must be different tensors");
    const Shape4 in = shape_of(x), out = output_shape(in);
    cpu::detail::resize_like(y, out);
    const std::size_t W = in[3], Ho = out[2], Wo = out[3], H = in[2];
    const T* xd = x.data();
    T* yd = y.data();
    cpu::parallel_for(in[0] * in[1], [&](std::size_t plane) {
      const T* xp = xd + plane * H * W;
      T* yp = yd + plane * Ho * Wo;
      for (std::size_t oy = 0; oy < Ho; ++oy) {
        const T* r0 = xp + 2 * oy * W;
        const T* r1 = r0 + W;
        for (std::size_t ox = 0; ox < Wo; ++ox)
          yp[oy * Wo + ox] = T(0.25) * ((r0[2 * ox] + r0[2 * ox + 1]) + (r1[2 * ox] + r1[2 * ox + 1]));
      }
    }, double(H * W));
  }

  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
    if (!have_) throw Error("MeanPool2x2: backward() called without a training forward()");
    const Shape4 in = in_shape_, out = output_shape(in);
    if (shape_of(dy) != out)
      throw ShapeError("MeanPool2x2: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(out));
    if (&dx == &dy) throw Error("MeanPool2x2: dx and dy must be different tensors");
    cpu::detail::resize_like(dx, in);
    const std::size_t H = in[2], W = in[3], Ho = out[2], Wo = out[3];
    const T* gd = dy.data();
    T* dd = dx.data();
    cpu::parallel_for(in[0] * in[1], [&](std::size_t plane) {
      const T* gp = gd + plane * Ho * Wo;
      T* dp = dd + plane * H * W;
      if (H % 2 || W % 2) std::fill(dp, dp + H * W, T(0));  // the dropped last row/column
      for (std::size_t oy = 0; oy < Ho; ++oy) {
        T* r0 = dp + 2 * oy * W;
        T* r1 = r0 + W;
        for (std::size_t ox = 0; ox < Wo; ++ox) {
          const T g = T(0.25) * gp[oy * Wo + ox];
          r0[2 * ox] = r0[2 * ox + 1] = r1[2 * ox] = r1[2 * ox + 1] = g;
        }
      }
    }, double(H * W));
  }

 private:
  Shape4 in_shape_{};
  bool have_ = false;
};

}  // namespace scoreood::nn
