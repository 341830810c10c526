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
    const Plan pl = plan(in, out);
    const T* xd = x.data();
    T* yd = y.data();
    cpu::parallel_for(in[0] * in[1], [&](std::size_t plane) {
      // Row sums over zero-padded rows: rs[iy + p][ox] = sum_j xpad[iy][ox*s + j].
      T* buf = cpu::scratch<T>(cpu::Scratch::temp, pl.Hp * pl.Wo + pl.Wp);
      T* rs = buf;
      T* row = buf + pl.Hp * pl.Wo;
      std::fill(rs, rs + pl.p * pl.Wo, T(0));
      std::fill(rs + (pl.p + pl.H) * pl.Wo, rs + pl.Hp * pl.Wo, T(0));
      std::fill(row, row + pl.Wp, T(0));
      const T* xp = xd + plane * pl.H * pl.W;
      for (std::size_t iy = 0; iy < pl.H; ++iy) {
        std::copy(xp + iy * pl.W, xp + (iy + 1) * pl.W, row + pl.p);
        T* r = rs + (iy + pl.p) * pl.Wo;
        std::fill(r, r + pl.Wo, T(0));
        for (std::size_t j = 0; j < pl.k; ++j) {
          const T* src = row + j;
          if (pl.s == 1) {  // contiguous: plain vector adds
            cpu::kernels::add_to(r, src, pl.Wo);
          } else {
            for (std::size_t ox = 0; ox < pl.Wo; ++ox) r[ox] += src[ox * pl.s];
          }
        }
      }
      T* yp = yd + plane * pl.Ho * pl.Wo;
      for (std::size_t oy = 0; oy < pl.Ho; ++oy) {
        T* o = yp + oy * pl.Wo;
        const T* r0 = rs + oy * pl.s * pl.Wo;
        std::copy(r0, r0 + pl.Wo, o);
        for (std::size_t j = 1; j < pl.k; ++j) cpu::kernels::add_to(o, r0 + j * pl.Wo, pl.Wo);
        scale_row(pl, oy, o);
      }
    }, double(in[2] * in[3] * spec_.kernel * 2));
  }

  /// dx (resized, overwritten) = adjoint of the pooling applied to dy.
  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
    if (!have_) throw Error("AvgPool2d: backward() called without a training forward()");
    const Shape4 in = in_shape_, out = output_shape(in);
    if (shape_of(dy) != out)
      throw ShapeError("AvgPool2d: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(out));
    if (&dx == &dy) throw Error("AvgPool2d: dx and dy must be different tensors");
    cpu::detail::resize_like(dx, in);
    const Plan pl = plan(in, out);
    const T* gd = dy.data();
    T* dd = dx.data();
    cpu::parallel_for(in[0] * in[1], [&](std::size_t plane) {
      T* buf = cpu::scratch<T>(cpu::Scratch::temp, pl.Hp * pl.Wo + pl.Wp + pl.Wo);
      T* drs = buf;                    // d(row sums) over padded rows
      T* row = buf + pl.Hp * pl.Wo;    // d(padded input row)
      T* g = row + pl.Wp;              // scaled output-gradient row
      std::fill(drs, drs + pl.Hp * pl.Wo, T(0));
      const T* gp = gd + plane * pl.Ho * pl.Wo;
      for (std::size_t oy = 0; oy < pl.Ho; ++oy) {
        std::copy(gp + oy * pl.Wo, gp + (oy + 1) * pl.Wo, g);
        scale_row(pl, oy, g);
        T* r0 = drs + oy * pl.s * pl.Wo;
        for (std::size_t j = 0; j < pl.k; ++j) cpu::kernels::add_to(r0 + j * pl.Wo, g, pl.Wo);
      }
      T* dp = dd + plane * pl.H * pl.W;
      for (std::size_t iy = 0; iy < pl.H; ++iy) {
        std::fill(row, row + pl.Wp, T(0));
        const T* r = drs + (iy + pl.p) * pl.Wo;
        for (std::size_t j = 0; j < pl.k; ++j) {
          T* dst = row + j;
          if (pl.s == 1) {
            cpu::kernels::add_to(dst, r, pl.Wo);
          } else {
            for (std::size_t ox = 0; ox < pl.Wo; ++ox) dst[ox * pl.s] += r[ox];
          }
        }
        std::copy(row + pl.p, row + pl.p + pl.W, dp + iy * pl.W);
      }
    }, double(in[2] * in[3] * spec_.kernel * 2));
  }

 private:
  /// Sizes of one plane's pass, padded sizes included.
  struct Plan {
    std::size_t H, W, Ho, Wo, k, s, p, Hp, Wp;
  };
  Plan plan(const Shape4& in, const Shape4& out) const {
    const std::size_t p = spec_.padding;
    return {in[2], in[3], out[2], out[3], spec_.kernel, spec_.stride, p, in[2] + 2 * p, in[3] + 2 * p};
  }
  /// Number of real (non-padding) positions in window o of an axis of length n.
  std::size_t count(std::size_t o, std::size_t n) const {
    const std::ptrdiff_t start = std::ptrdiff_t(o * spec_.stride) - std::ptrdiff_t(spec_.padding);
    const std::ptrdiff_t end = std::min<std::ptrdiff_t>(start + std::ptrdiff_t(spec_.kernel), std::ptrdiff_t(n));
    return std::size_t(end - std::max<std::ptrdiff_t>(start, 0));
  }
  /// Divides an output row by PyTorch's divisor: k*k with count_include_pad
  /// (windows never pass the padded border without ceil_mode), else the number
  /// of real pixels in the window.
  void scale_row(const Plan& pl, std::size_t oy, T* o) const {
    if (spec_.count_include_pad) {
      cpu::kernels::scale(o, T(1) / T(pl.k * pl.k), pl.Wo);
    } else {
      const std::size_t cy = count(oy, pl.H);
      for (std::size_t ox = 0; ox < pl.Wo; ++ox) o[ox] /= T(cy * count(ox, pl.W));
    }
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
