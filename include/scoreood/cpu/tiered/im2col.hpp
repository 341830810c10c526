/** @file im2col.hpp
 *  @brief Patch unfolding for convolution as GEMM (one image at a time).
 *
 *  The column matrix of one image is [C*k*k, Ho*Wo], row (c, ky, kx) in the
 *  order of a PyTorch weight [out, in, kh, kw], so the forward pass is
 *  Y[out, Ho*Wo] = W[out, C*k*k] * col. Each row is written as contiguous runs
 *  (a memcpy per output row when stride is 1) with the zero padding filled
 *  at the ends, which keeps the unfolding at memory speed. */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

namespace scoreood::cpu::SCOREOOD_CPU_TIER {

/// col[(c*k + ky)*k + kx][oy*Wo + ox] = x[c][oy*s - p + ky*d][ox*s - p + kx*d] (0 outside).
template <class T>
void im2col(const ConvGeometry& g, const T* x, T* col) {
  const std::size_t k = g.kernel, Ho = g.out_h, Wo = g.out_w, H = g.height, W = g.width, s = g.stride;
  for (std::size_t c = 0; c < g.channels; ++c) {
    const T* xc = x + c * H * W;
    for (std::size_t ky = 0; ky < k; ++ky) {
      const std::ptrdiff_t offy = std::ptrdiff_t(ky * g.dilation) - std::ptrdiff_t(g.pad);
      std::size_t oy_lo, oy_hi;
      g.valid_range(offy, Ho, H, oy_lo, oy_hi);
      for (std::size_t kx = 0; kx < k; ++kx) {
        T* row = col + ((c * k + ky) * k + kx) * Ho * Wo;
        const std::ptrdiff_t offx = std::ptrdiff_t(kx * g.dilation) - std::ptrdiff_t(g.pad);
        std::size_t ox_lo, ox_hi;
        g.valid_range(offx, Wo, W, ox_lo, ox_hi);
        std::fill(row, row + oy_lo * Wo, T(0));
        // (An empty column range, a tap entirely in the padding of a narrow
        // image, takes the loop below: the block copy would read before or
        // after the plane.)
        if (g.flat_shift() && oy_hi > oy_lo && ox_hi > ox_lo) {
          // Output and input rows have the same width: the whole valid block is
          // one shifted copy; the wrapped-around border columns are re-zeroed.
          const std::ptrdiff_t shift = offy * std::ptrdiff_t(W) + offx;
          const std::size_t b = oy_lo * Wo + ox_lo, e = (oy_hi - 1) * Wo + ox_hi;
          if (e > b) std::memcpy(row + b, xc + std::ptrdiff_t(b) + shift, (e - b) * sizeof(T));
          for (std::size_t oy = oy_lo; oy < oy_hi; ++oy) {
            T* dst = row + oy * Wo;
            for (std::size_t ox = 0; ox < ox_lo; ++ox) dst[ox] = T(0);  // at most `pad` entries
            for (std::size_t ox = ox_hi; ox < Wo; ++ox) dst[ox] = T(0);
          }
          std::fill(row + oy_hi * Wo, row + Ho * Wo, T(0));
          continue;
        }
        for (std::size_t oy = oy_lo; oy < oy_hi; ++oy) {
          T* dst = row + oy * Wo;
          const T* src = xc + std::size_t(std::ptrdiff_t(oy * s) + offy) * W;
          std::fill(dst, dst + ox_lo, T(0));
          if (s == 1) {
            if (ox_hi > ox_lo) std::memcpy(dst + ox_lo, src + std::ptrdiff_t(ox_lo) + offx, (ox_hi - ox_lo) * sizeof(T));
          } else {
            for (std::size_t ox = ox_lo; ox < ox_hi; ++ox) dst[ox] = src[std::ptrdiff_t(ox * s) + offx];
          }
          std::fill(dst + ox_hi, dst + Wo, T(0));
        }
        std::fill(row + oy_hi * Wo, row + Ho * Wo, T(0));
      }
    }
  }
}

/// The adjoint of im2col: x[c][iy][ix] += every col entry that im2col read from there.
/// `col` is scratch: entries that fall into the padding may be overwritten with
/// zeros (it lets a stride-1 "same" tap be one contiguous add).
template <class T>
void col2im_add(const ConvGeometry& g, T* col, T* x) {
  const std::size_t k = g.kernel, Ho = g.out_h, Wo = g.out_w, H = g.height, W = g.width, s = g.stride;
  for (std::size_t c = 0; c < g.channels; ++c) {
    T* xc = x + c * H * W;
    for (std::size_t ky = 0; ky < k; ++ky) {
      const std::ptrdiff_t offy = std::ptrdiff_t(ky * g.dilation) - std::ptrdiff_t(g.pad);
      std::size_t oy_lo, oy_hi;
      g.valid_range(offy, Ho, H, oy_lo, oy_hi);
      for (std::size_t kx = 0; kx < k; ++kx) {
        T* row = col + ((c * k + ky) * k + kx) * Ho * Wo;
        const std::ptrdiff_t offx = std::ptrdiff_t(kx * g.dilation) - std::ptrdiff_t(g.pad);
        std::size_t ox_lo, ox_hi;
        g.valid_range(offx, Wo, W, ox_lo, ox_hi);
        if (g.flat_shift() && oy_hi > oy_lo && ox_hi > ox_lo) {  // as in im2col: not for an empty column range
          // Zero the padding taps inside the block, then one contiguous shifted add.
          for (std::size_t oy = oy_lo; oy < oy_hi; ++oy) {
            T* r = row + oy * Wo;
            for (std::size_t ox = 0; ox < ox_lo; ++ox) r[ox] = T(0);
            for (std::size_t ox = ox_hi; ox < Wo; ++ox) r[ox] = T(0);
          }
          const std::ptrdiff_t shift = offy * std::ptrdiff_t(W) + offx;
          const std::size_t b = oy_lo * Wo + ox_lo, e = (oy_hi - 1) * Wo + ox_hi;
          T* d = xc + std::ptrdiff_t(b) + shift;
          const T* sp = row + b;
#pragma omp simd
          for (std::size_t i = 0; i < (e > b ? e - b : 0); ++i) d[i] += sp[i];
          continue;
        }
        for (std::size_t oy = oy_lo; oy < oy_hi; ++oy) {
          const T* src = row + oy * Wo;
          T* dst = xc + std::size_t(std::ptrdiff_t(oy * s) + offy) * W;
          if (s == 1) {
            T* d = dst + std::ptrdiff_t(ox_lo) + offx;
            const T* sp = src + ox_lo;
            const std::size_t len = ox_hi - ox_lo;
#pragma omp simd
            for (std::size_t i = 0; i < len; ++i) d[i] += sp[i];
          } else {
            for (std::size_t ox = ox_lo; ox < ox_hi; ++ox) dst[std::ptrdiff_t(ox * s) + offx] += src[ox];
          }
        }
      }
    }
  }
}

/// Copies C planes of H x W into planes of (H + top + bottom) x (W + left + right)
/// with zero borders (`right` zero columns also pad the left of the next row, so
/// left = 0 is fine when right covers both); `slack` zeros follow the last plane.
#if SCOREOOD_TIER_AVX512
namespace detail {
/// Lanes [lo, hi) of a 16-lane mask (empty when hi <= lo).
inline __mmask16 lane_range(std::ptrdiff_t lo, std::ptrdiff_t hi) {
  lo = std::clamp<std::ptrdiff_t>(lo, 0, 16);
  hi = std::clamp<std::ptrdiff_t>(hi, 0, 16);
  if (hi <= lo) return 0;
  return __mmask16(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}
}  // namespace detail
#endif

template <class T>
void pad_planes(const T* x, std::size_t C, std::size_t H, std::size_t W, std::size_t top, std::size_t bottom,
                std::size_t left, std::size_t right, std::size_t slack, T* out) {
  const std::size_t Wp = W + left + right, Hp = H + top + bottom, plane = Hp * Wp;
#if SCOREOOD_TIER_AVX512
  if constexpr (std::is_same_v<T, float>) {
    // Rows are 7..32 values here: a memcpy call per row costs more than the copy.
    // Every padded row is written whole with masked vectors (zeros outside the data).
    const __m512 zero = _mm512_setzero_ps();
    for (std::size_t c = 0; c < C; ++c) {
      const float* src = x + c * H * W;
      float* dst = out + c * plane;
      for (std::size_t r = 0; r < Hp; ++r) {
        float* drow = dst + r * Wp;
        const bool data = r >= top && r < top + H;
        const float* srow = data ? src + (r - top) * W : nullptr;
        for (std::size_t j = 0; j < Wp; j += 16) {
          const __mmask16 st = detail::lane_range(0, std::ptrdiff_t(Wp - j));
          __m512 v = zero;
          if (data) {
            // lane l holds column j + l - left of the source row
            const std::ptrdiff_t s0 = std::ptrdiff_t(j) - std::ptrdiff_t(left);
            const __mmask16 ld = detail::lane_range(-s0, std::ptrdiff_t(W) - s0);
            if (ld) v = _mm512_maskz_loadu_ps(ld, srow + s0);
          }
          _mm512_mask_storeu_ps(drow + j, st, v);
        }
      }
    }
    std::fill(out + C * plane, out + C * plane + slack, T(0));
    return;
  }
#endif
  for (std::size_t c = 0; c < C; ++c) {
    const T* src = x + c * H * W;
    T* dst = out + c * plane;
    std::fill(dst, dst + top * Wp + left, T(0));
    for (std::size_t y = 0; y < H; ++y) {
      T* row = dst + (top + y) * Wp + left;
      std::memcpy(row, src + y * W, W * sizeof(T));
      std::fill(row + W, row + W + right + (y + 1 < H ? left : 0), T(0));
    }
    std::fill(dst + (top + H) * Wp, dst + plane, T(0));
  }
  std::fill(out + C * plane, out + C * plane + slack, T(0));
}

/// out[c][y][x] = in[c][y * ld + x] (+ add[c][y][x] when `add` is given) for
/// x < W: drops the extra columns of a result computed on a wider grid (rows
/// of ld >= W); the optional add is a residual summed while the rows are in cache.
template <class T>
void compact_rows(const T* in, std::size_t C, std::size_t H, std::size_t W, std::size_t ld, T* out,
                  const T* add = nullptr) {
#if SCOREOOD_TIER_AVX512
  if constexpr (std::is_same_v<T, float>) {
    for (std::size_t r = 0; r < C * H; ++r) {
      const float* s = in + r * ld;
      float* d = out + r * W;
      const float* a = add ? add + r * W : nullptr;
      for (std::size_t j = 0; j < W; j += 16) {
        const __mmask16 m = detail::lane_range(0, std::ptrdiff_t(W - j));
        __m512 v = _mm512_maskz_loadu_ps(m, s + j);
        if (a) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, a + j));
        _mm512_mask_storeu_ps(d + j, m, v);
      }
    }
    return;
  }
#endif
  for (std::size_t r = 0; r < C * H; ++r) {
    std::memcpy(out + r * W, in + r * ld, W * sizeof(T));
    if (add)
      for (std::size_t j = 0; j < W; ++j) out[r * W + j] += add[r * W + j];
  }
}

}  // namespace scoreood::cpu::SCOREOOD_CPU_TIER
