/** @file upsample.hpp
 *  @brief The CPU's resizing kernels (nn::UpsampleNearest, nn::UpsampleBilinear):
 *  planes (n, c) in parallel; nearest x2 (SmallUNet) with AVX-512 permutes on
 *  the AVX-512 tier, compiler-vectorised loops on the others.
 *
 *  The source indices and weights of each output row and column are computed
 *  once per call (they depend only on the sizes); the backward is the exact
 *  adjoint (scatter-add, or for nearest x2 a gather of each 2x2 block). */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace scoreood::cpu::SCOREOOD_CPU_TIER::resize {

namespace detail {

/// PyTorch's nearest source index (upsample nearest, no scale factor given):
/// floor(dst * (float)in / out), clamped to in - 1.
inline std::vector<std::size_t> nearest_indices(std::size_t in, std::size_t out) {
  std::vector<std::size_t> idx(out);
  const float scale = float(in) / float(out);
  for (std::size_t o = 0; o < out; ++o)
    idx[o] = std::min(std::size_t(std::floor(float(o) * scale)), in - 1);
  return idx;
}

#if SCOREOOD_TIER_AVX512
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

/// y = nearest(x) (+ residual), y already of the output's shape.
template <class T>
void nearest_forward(const Tensor4<T>& x, Tensor4<T>& y, const Tensor4<T>* residual) {
  const Shape4 in = shape_of(x);
  const std::size_t out_h = y.shape()[2], out_w = y.shape()[3];
  const auto ry = detail::nearest_indices(in[2], out_h), rx = detail::nearest_indices(in[3], out_w);
  const std::size_t H = in[2], W = in[3];
  const T* xd = x.data();
  const T* rd = residual ? residual->data() : nullptr;
  T* yd = y.data();
#if SCOREOOD_TIER_AVX512
  if constexpr (std::is_same_v<T, float>) {
    if (out_h == 2 * H && out_w == 2 * W) {  // SmallUNet's case: each value to a 2x2 block
      const std::size_t OW = out_w;
      parallel_for(in[0] * in[1], [&](std::size_t p) {
        const float* xp = xd + p * H * W;
        float* yp = yd + p * out_h * OW;
        const float* rp = rd ? rd + p * out_h * OW : nullptr;
        for (std::size_t iy = 0; iy < H; ++iy) {
          const std::size_t o0 = 2 * iy * OW, o1 = o0 + OW;
          detail::up2_rows(xp + iy * W, W, yp + o0, yp + o1, rp ? rp + o0 : nullptr, rp ? rp + o1 : nullptr);
        }
      }, double(out_h * out_w));
      return;
    }
  }
#endif
  parallel_for(in[0] * in[1], [&](std::size_t p) {
    const T* xp = xd + p * H * W;
    T* yp = yd + p * out_h * out_w;
    if (rd) {
      const T* rp = rd + p * out_h * out_w;
      for (std::size_t oy = 0; oy < out_h; ++oy) {
        const T* r = xp + ry[oy] * W;
        for (std::size_t ox = 0; ox < out_w; ++ox) yp[oy * out_w + ox] = r[rx[ox]] + rp[oy * out_w + ox];
      }
      return;
    }
    for (std::size_t oy = 0; oy < out_h; ++oy) {
      const T* r = xp + ry[oy] * W;
      for (std::size_t ox = 0; ox < out_w; ++ox) yp[oy * out_w + ox] = r[rx[ox]];
    }
  }, double(out_h * out_w));
}

/// dx = the adjoint of nearest() applied to dy, dx already of the input's shape.
template <class T>
void nearest_backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
  const Shape4 in = shape_of(dx);
  const std::size_t out_h = dy.shape()[2], out_w = dy.shape()[3];
  const auto ry = detail::nearest_indices(in[2], out_h), rx = detail::nearest_indices(in[3], out_w);
  const std::size_t H = in[2], W = in[3];
  const T* gd = dy.data();
  T* dd = dx.data();
#if SCOREOOD_TIER_AVX512
  if constexpr (std::is_same_v<T, float>) {
    if (out_h == 2 * H && out_w == 2 * W) {  // each input gathers its 2x2 block, no zero fill
      const std::size_t OW = out_w;
      parallel_for(in[0] * in[1], [&](std::size_t p) {
        const float* gp = gd + p * out_h * OW;
        float* dp = dd + p * H * W;
        for (std::size_t iy = 0; iy < H; ++iy) detail::down2_rows(gp + 2 * iy * OW, gp + (2 * iy + 1) * OW, W, dp + iy * W);
      }, double(out_h * out_w));
      return;
    }
  }
#endif
  parallel_for(in[0] * in[1], [&](std::size_t p) {
    const T* gp = gd + p * out_h * out_w;
    T* dp = dd + p * H * W;
    std::fill(dp, dp + H * W, T(0));
    for (std::size_t oy = 0; oy < out_h; ++oy) {
      T* r = dp + ry[oy] * W;
      for (std::size_t ox = 0; ox < out_w; ++ox) r[rx[ox]] += gp[oy * out_w + ox];
    }
  }, double(out_h * out_w));
}

/// y = bilinear(x), y already of the output's shape.
template <class T>
void bilinear_forward(const Tensor4<T>& x, Tensor4<T>& y, bool align_corners) {
  const Shape4 in = shape_of(x);
  const std::size_t out_h = y.shape()[2], out_w = y.shape()[3];
  const auto ty = detail::linear_taps(in[2], out_h, align_corners);
  const auto tx = detail::linear_taps(in[3], out_w, align_corners);
  const std::size_t H = in[2], W = in[3];
  const T* xd = x.data();
  T* yd = y.data();
  parallel_for(in[0] * in[1], [&](std::size_t p) {
    const T* xp = xd + p * H * W;
    T* yp = yd + p * out_h * out_w;
    for (std::size_t oy = 0; oy < out_h; ++oy) {
      const T* r0 = xp + ty.i0[oy] * W;
      const T* r1 = xp + ty.i1[oy] * W;
      const T a0 = T(ty.w0[oy]), a1 = T(ty.w1[oy]);
      for (std::size_t ox = 0; ox < out_w; ++ox) {
        const std::size_t c0 = tx.i0[ox], c1 = tx.i1[ox];
        const T b0 = T(tx.w0[ox]), b1 = T(tx.w1[ox]);
        yp[oy * out_w + ox] = a0 * (b0 * r0[c0] + b1 * r0[c1]) + a1 * (b0 * r1[c0] + b1 * r1[c1]);
      }
    }
  }, double(out_h * out_w * 8));
}

/// dx = the adjoint of bilinear() applied to dy, dx already of the input's shape.
template <class T>
void bilinear_backward(const Tensor4<T>& dy, Tensor4<T>& dx, bool align_corners) {
  const Shape4 in = shape_of(dx);
  const std::size_t out_h = dy.shape()[2], out_w = dy.shape()[3];
  const auto ty = detail::linear_taps(in[2], out_h, align_corners);
  const auto tx = detail::linear_taps(in[3], out_w, align_corners);
  const std::size_t H = in[2], W = in[3];
  const T* gd = dy.data();
  T* dd = dx.data();
  parallel_for(in[0] * in[1], [&](std::size_t p) {
    const T* gp = gd + p * out_h * out_w;
    T* dp = dd + p * H * W;
    std::fill(dp, dp + H * W, T(0));
    for (std::size_t oy = 0; oy < out_h; ++oy) {
      T* r0 = dp + ty.i0[oy] * W;
      T* r1 = dp + ty.i1[oy] * W;
      const T a0 = T(ty.w0[oy]), a1 = T(ty.w1[oy]);
      for (std::size_t ox = 0; ox < out_w; ++ox) {
        const T g = gp[oy * out_w + ox];
        const std::size_t c0 = tx.i0[ox], c1 = tx.i1[ox];
        const T b0 = T(tx.w0[ox]), b1 = T(tx.w1[ox]);
        r0[c0] += a0 * b0 * g;
        r0[c1] += a0 * b1 * g;
        r1[c0] += a1 * b0 * g;
        r1[c1] += a1 * b1 * g;
      }
    }
  }, double(out_h * out_w * 8));
}

}  // namespace scoreood::cpu::SCOREOOD_CPU_TIER::resize
