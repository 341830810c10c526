/** @file upsample.hpp
 *  @brief Resizing to a fixed size with PyTorch F.interpolate semantics:
 *  UpsampleNearest (mode='nearest') and UpsampleBilinear (mode='bilinear').
 *
 *  NCSN's multi-resolution fusion uses bilinear with align_corners=True. The
 *  source indices and weights of each output row and column are computed once
 *  per call (they depend only on the sizes); backward() is the exact adjoint
 *  (scatter-add), so only the input shape is cached. Both also shrink. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/elementwise.hpp>
#include <scoreood/cpu/threading.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace scoreood::nn {

namespace detail {
inline void check_resize_target(const char* layer, std::size_t out_h, std::size_t out_w) {
  if (out_h == 0 || out_w == 0) throw ValueError(std::string(layer) + ": output size must be positive");
}

/// PyTorch's nearest source index (upsample nearest, no scale factor given):
/// floor(dst * (float)in / out), clamped to in - 1.
inline std::vector<std::size_t> nearest_indices(std::size_t in, std::size_t out) {
  std::vector<std::size_t> idx(out);
  const float scale = float(in) / float(out);
  for (std::size_t o = 0; o < out; ++o)
    idx[o] = std::min(std::size_t(std::floor(float(o) * scale)), in - 1);
  return idx;
}

#if defined(__AVX512F__)
/// Nearest x2 (each value twice along a row), float: y0 = up(x) (+ r0), y1 = up(x) (+ r1)
/// for the two output rows fed by the input row x of width W; r0/r1 null without a skip.
inline void up2_rows(const float* x, std::size_t W, float* y0, float* y1, const float* r0, const float* r1) {
  const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  for (std::size_t i = 0; i < W; i += 8) {
    const std::size_t k = std::min<std::size_t>(8, W - i);
    const __mmask16 mi = __mmask16((1u << k) - 1), mo = __mmask16((1u << (2 * k)) - 1);
    const __m512 v = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(mi, x + i));
    const std::size_t o = 2 * i;
    _mm512_mask_storeu_ps(y0 + o, mo, r0 ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(mo, r0 + o)) : v);
    _mm512_mask_storeu_ps(y1 + o, mo, r1 ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(mo, r1 + o)) : v);
  }
}

/// The adjoint of up2_rows without skip: dx[i] = g0[2i] + g0[2i+1] + g1[2i] + g1[2i+1]
/// for i < W, as (g0 + g1) summed over adjacent pairs.
inline void down2_rows(const float* g0, const float* g1, std::size_t W, float* dx) {
  const __m512i even = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 14, 12, 10, 8, 6, 4, 2, 0);
  for (std::size_t i = 0; i < W; i += 8) {
    const std::size_t k = std::min<std::size_t>(8, W - i), o = 2 * i;
    const __mmask16 mi = __mmask16((1u << k) - 1), mo = __mmask16((1u << (2 * k)) - 1);
    const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mo, g0 + o), _mm512_maskz_loadu_ps(mo, g1 + o));
    const __m512 pairs = _mm512_add_ps(v, _mm512_permute_ps(v, 0xB1));  // lane 2j: v[2j] + v[2j+1]
    _mm512_mask_storeu_ps(dx + i, mi, _mm512_permutexvar_ps(even, pairs));
  }
}
#endif

/// One axis of a linear interpolation: out[o] = w0 * in[i0] + w1 * in[i1].
struct LinearTaps {
  std::vector<std::size_t> i0, i1;
  std::vector<double> w0, w1;
};

/// PyTorch's area_pixel_compute_source_index + clamping for 'bilinear'.
inline LinearTaps linear_taps(std::size_t in, std::size_t out, bool align_corners) {
  LinearTaps t;
  t.i0.resize(out);
  t.i1.resize(out);
  t.w0.resize(out);
  t.w1.resize(out);
  const double scale = align_corners ? (out > 1 ? double(in - 1) / double(out - 1) : 0.0) : double(in) / double(out);
  for (std::size_t o = 0; o < out; ++o) {
    double src = align_corners ? scale * double(o) : std::max(0.0, scale * (double(o) + 0.5) - 0.5);
    const std::size_t i0 = std::min(std::size_t(src), in - 1);
    const std::size_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const double l1 = std::min(std::max(src - double(i0), 0.0), 1.0);
    t.i0[o] = i0;
    t.i1[o] = i1;
    t.w0[o] = 1.0 - l1;
    t.w1[o] = l1;
  }
  return t;
}
}  // namespace detail

/// F.interpolate(x, size=(out_h, out_w), mode='nearest').
template <class T>
class UpsampleNearest {
 public:
  UpsampleNearest(std::size_t out_h, std::size_t out_w) : out_h_(out_h), out_w_(out_w) {
    detail::check_resize_target("UpsampleNearest", out_h, out_w);
  }
  Shape4 output_shape(Shape4 in) const {
    if (in[2] == 0 || in[3] == 0) throw ShapeError("UpsampleNearest: empty input " + to_string(in));
    return {in[0], in[1], out_h_, out_w_};
  }
  std::size_t macs(Shape4) const { return 0; }

  /// With a `residual` (the output's shape, not y) y = up(x) + residual in the
  /// same pass (a U-Net's skip add; its gradient is dy itself).
  void forward(const Tensor4<T>& x, Tensor4<T>& y, const Tensor4<T>* residual = nullptr) {
    infer(x, y, residual);
    in_shape_ = shape_of(x);
    have_ = true;
  }

  void infer(const Tensor4<T>& x, Tensor4<T>& y, const Tensor4<T>* residual = nullptr) const {
    if (&x == &y) throw Error("UpsampleNearest: input and output must be different tensors");
    const Shape4 in = shape_of(x), out = output_shape(in);
    if (residual && (residual == &y || shape_of(*residual) != out))
      throw ShapeError("UpsampleNearest: the residual must be a separate tensor of the output's shape " +
                       to_string(out));
    cpu::detail::resize_like(y, out);
    const auto ry = detail::nearest_indices(in[2], out_h_), rx = detail::nearest_indices(in[3], out_w_);
    const std::size_t H = in[2], W = in[3];
    const T* xd = x.data();
    const T* rd = residual ? residual->data() : nullptr;
    T* yd = y.data();
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      if (out_h_ == 2 * H && out_w_ == 2 * W) {  // SmallUNet's case: each value to a 2x2 block
        const std::size_t OW = out_w_;
        cpu::parallel_for(in[0] * in[1], [&](std::size_t p) {
          const float* xp = xd + p * H * W;
          float* yp = yd + p * out_h_ * OW;
          const float* rp = rd ? rd + p * out_h_ * OW : nullptr;
          for (std::size_t iy = 0; iy < H; ++iy) {
            const std::size_t o0 = 2 * iy * OW, o1 = o0 + OW;
            detail::up2_rows(xp + iy * W, W, yp + o0, yp + o1, rp ? rp + o0 : nullptr, rp ? rp + o1 : nullptr);
          }
        }, double(out_h_ * out_w_));
        return;
      }
    }
#endif
    cpu::parallel_for(in[0] * in[1], [&](std::size_t p) {
      const T* xp = xd + p * H * W;
      T* yp = yd + p * out_h_ * out_w_;
      if (rd) {
        const T* rp = rd + p * out_h_ * out_w_;
        for (std::size_t oy = 0; oy < out_h_; ++oy) {
          const T* r = xp + ry[oy] * W;
          for (std::size_t ox = 0; ox < out_w_; ++ox) yp[oy * out_w_ + ox] = r[rx[ox]] + rp[oy * out_w_ + ox];
        }
        return;
      }
      for (std::size_t oy = 0; oy < out_h_; ++oy) {
        const T* r = xp + ry[oy] * W;
        for (std::size_t ox = 0; ox < out_w_; ++ox) yp[oy * out_w_ + ox] = r[rx[ox]];
      }
    }, double(out_h_ * out_w_));
  }

  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
    if (!have_) throw Error("UpsampleNearest: backward() called without a training forward()");
    const Shape4 in = in_shape_, out = output_shape(in);
    if (shape_of(dy) != out)
      throw ShapeError("UpsampleNearest: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(out));
    if (&dx == &dy) throw Error("UpsampleNearest: dx and dy must be different tensors");
    cpu::detail::resize_like(dx, in);
    const auto ry = detail::nearest_indices(in[2], out_h_), rx = detail::nearest_indices(in[3], out_w_);
    const std::size_t H = in[2], W = in[3];
    const T* gd = dy.data();
    T* dd = dx.data();
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      if (out_h_ == 2 * H && out_w_ == 2 * W) {  // each input gathers its 2x2 block, no zero fill
        const std::size_t OW = out_w_;
        cpu::parallel_for(in[0] * in[1], [&](std::size_t p) {
          const float* gp = gd + p * out_h_ * OW;
          float* dp = dd + p * H * W;
          for (std::size_t iy = 0; iy < H; ++iy) detail::down2_rows(gp + 2 * iy * OW, gp + (2 * iy + 1) * OW, W, dp + iy * W);
        }, double(out_h_ * out_w_));
        return;
      }
    }
#endif
    cpu::parallel_for(in[0] * in[1], [&](std::size_t p) {
      const T* gp = gd + p * out_h_ * out_w_;
      T* dp = dd + p * H * W;
      std::fill(dp, dp + H * W, T(0));
      for (std::size_t oy = 0; oy < out_h_; ++oy) {
        T* r = dp + ry[oy] * W;
        for (std::size_t ox = 0; ox < out_w_; ++ox) r[rx[ox]] += gp[oy * out_w_ + ox];
      }
    }, double(out_h_ * out_w_));
  }

 private:
  std::size_t out_h_, out_w_;
  Shape4 in_shape_{};
  bool have_ = false;
};

/// F.interpolate(x, size=(out_h, out_w), mode='bilinear', align_corners).
template <class T>
class UpsampleBilinear {
 public:
  UpsampleBilinear(std::size_t out_h, std::size_t out_w, bool align_corners)
      : out_h_(out_h), out_w_(out_w), align_corners_(align_corners) {
    detail::check_resize_target("UpsampleBilinear", out_h, out_w);
  }
  bool align_corners() const { return align_corners_; }
  Shape4 output_shape(Shape4 in) const {
    if (in[2] == 0 || in[3] == 0) throw ShapeError("UpsampleBilinear: empty input " + to_string(in));
    return {in[0], in[1], out_h_, out_w_};
  }
  std::size_t macs(Shape4 in) const { return in[0] * in[1] * out_h_ * out_w_ * 4; }

  void forward(const Tensor4<T>& x, Tensor4<T>& y) {
    infer(x, y);
    in_shape_ = shape_of(x);
    have_ = true;
  }

  void infer(const Tensor4<T>& x, Tensor4<T>& y) const {
    if (&x == &y) throw Error("UpsampleBilinear: input and output must be different tensors");
    const Shape4 in = shape_of(x), out = output_shape(in);
    cpu::detail::resize_like(y, out);
    const auto ty = detail::linear_taps(in[2], out_h_, align_corners_);
    const auto tx = detail::linear_taps(in[3], out_w_, align_corners_);
    const std::size_t H = in[2], W = in[3];
    const T* xd = x.data();
    T* yd = y.data();
    cpu::parallel_for(in[0] * in[1], [&](std::size_t p) {
      const T* xp = xd + p * H * W;
      T* yp = yd + p * out_h_ * out_w_;
      for (std::size_t oy = 0; oy < out_h_; ++oy) {
        const T* r0 = xp + ty.i0[oy] * W;
        const T* r1 = xp + ty.i1[oy] * W;
        const T a0 = T(ty.w0[oy]), a1 = T(ty.w1[oy]);
        for (std::size_t ox = 0; ox < out_w_; ++ox) {
          const std::size_t c0 = tx.i0[ox], c1 = tx.i1[ox];
          const T b0 = T(tx.w0[ox]), b1 = T(tx.w1[ox]);
          yp[oy * out_w_ + ox] = a0 * (b0 * r0[c0] + b1 * r0[c1]) + a1 * (b0 * r1[c0] + b1 * r1[c1]);
        }
      }
    }, double(out_h_ * out_w_ * 8));
  }

  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
    if (!have_) throw Error("UpsampleBilinear: backward() called without a training forward()");
    const Shape4 in = in_shape_, out = output_shape(in);
    if (shape_of(dy) != out)
      throw ShapeError("UpsampleBilinear: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(out));
    if (&dx == &dy) throw Error("UpsampleBilinear: dx and dy must be different tensors");
    cpu::detail::resize_like(dx, in);
    const auto ty = detail::linear_taps(in[2], out_h_, align_corners_);
    const auto tx = detail::linear_taps(in[3], out_w_, align_corners_);
    const std::size_t H = in[2], W = in[3];
    const T* gd = dy.data();
    T* dd = dx.data();
    cpu::parallel_for(in[0] * in[1], [&](std::size_t p) {
      const T* gp = gd + p * out_h_ * out_w_;
      T* dp = dd + p * H * W;
      std::fill(dp, dp + H * W, T(0));
      for (std::size_t oy = 0; oy < out_h_; ++oy) {
        T* r0 = dp + ty.i0[oy] * W;
        T* r1 = dp + ty.i1[oy] * W;
        const T a0 = T(ty.w0[oy]), a1 = T(ty.w1[oy]);
        for (std::size_t ox = 0; ox < out_w_; ++ox) {
          const T g = gp[oy * out_w_ + ox];
          const std::size_t c0 = tx.i0[ox], c1 = tx.i1[ox];
          const T b0 = T(tx.w0[ox]), b1 = T(tx.w1[ox]);
          r0[c0] += a0 * b0 * g;
          r0[c1] += a0 * b1 * g;
          r1[c0] += a1 * b0 * g;
          r1[c1] += a1 * b1 * g;
        }
      }
    }, double(out_h_ * out_w_ * 8));
  }

 private:
  std::size_t out_h_, out_w_;
  bool align_corners_;
  Shape4 in_shape_{};
  bool have_ = false;
};

}  // namespace scoreood::nn
