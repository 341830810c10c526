/** @file winograd.hpp
 *  @brief 3x3 "same" convolutions (stride 1, padding 1) by Winograd's minimal
 *  filtering F(4x4, 3x3): 36 multiplies per 4x4 output tile instead of 144.
 *
 *  Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016):
 *  for a 6x6 input tile d and a 3x3 kernel g the 4x4 output tile is
 *      Y = A^T [ (G g G^T) . (B^T d B) ] A.
 *  Over channels the element-wise product becomes 36 independent GEMMs,
 *      M[pos] (out x tiles) = U[pos] (out x in) * V[pos] (in x tiles),
 *  run by the packed kernel of packed_gemm.hpp. The convolution's GEMM work
 *  drops 4x (a little less at sizes that are not a multiple of 4); the
 *  transforms are a few adds per value, vectorised over tiles.
 *
 *  Numerics: the transforms hold constants up to 8 and 1/24, so float
 *  results differ from a direct convolution by a few units in the 5th-6th
 *  significant digit (tests bound it); double paths never use this.
 *
 *  Layout (per group of images, N = images * tiles GEMM columns, rows padded to
 *  a multiple of 16): V[pos][c][n] and M[pos][o][n], n = image * T + ty * tW + tx.
 *  Each transform is split into its two 1-D halves: along the tile rows while
 *  the input is unfolded (or the output folded back) row by row, and along the
 *  tile columns in place over whole rows of V (or M), 16 tiles per vector.
 *  Needs the native AVX-512 float kernel (available()). */
#pragma once
#include <scoreood/cpu/im2col.hpp>
#include <scoreood/cpu/packed_gemm.hpp>
#include <scoreood/cpu/threading.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>

namespace scoreood::cpu::winograd {

inline constexpr std::size_t kM = 4;           ///< output tile
inline constexpr std::size_t kAlpha = kM + 2;  ///< input tile
inline constexpr std::size_t kPositions = kAlpha * kAlpha;

/// True when conv3x3() can run (the AVX-512 float kernel is compiled in).
constexpr bool available() { return packed_gemm_is_native<float>(); }

/// Elements of the transformed, packed weights of an out x in 3x3 convolution.
inline std::size_t weights_size(std::size_t out, std::size_t in) {
  return kPositions * packed_lhs_size<float>(out, in);
}

/// U[pos] = G g G^T for every (o, i) pair, packed for gemm_packed (M = out, K = in).
/// `w(o, i, ky, kx)` returns the kernel tap; the transform runs in double.
template <class W>
void transform_weights(W w, std::size_t out, std::size_t in, float* packed, float* tmp /* out*in floats */) {
  static constexpr double G[kAlpha][3] = {{1.0 / 4, 0, 0},
                                          {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                          {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                          {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                          {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                          {0, 0, 1}};
  const std::size_t ps = packed_lhs_size<float>(out, in);
  for (std::size_t a = 0; a < kAlpha; ++a)
    for (std::size_t b = 0; b < kAlpha; ++b) {
      for (std::size_t o = 0; o < out; ++o)
        for (std::size_t i = 0; i < in; ++i) {
          double s = 0;
          for (std::size_t ky = 0; ky < 3; ++ky)
            for (std::size_t kx = 0; kx < 3; ++kx) s += G[a][ky] * G[b][kx] * double(w(o, i, ky, kx));
          tmp[o * in + i] = float(s);
        }
      pack_lhs(tmp, out, in, in, 1, packed + (a * kAlpha + b) * ps);
    }
}

/// The sizes of one convolution.
struct Shape {
  std::size_t in = 0, out = 0, height = 0, width = 0;
  std::size_t tiles_h() const { return (height + kM - 1) / kM; }
  std::size_t tiles_w() const { return (width + kM - 1) / kM; }
  std::size_t tiles() const { return tiles_h() * tiles_w(); }
};

/// Images per GEMM group: about 192 columns (4 full 48-wide kernel tiles),
/// fewer when V and M of the group would outgrow L2.
inline std::size_t group_size(const Shape& s) {
  const std::size_t T = s.tiles();
  const std::size_t budget = (std::size_t(1) << 20) / (kPositions * (s.in + s.out) * sizeof(float));
  const std::size_t target = std::clamp<std::size_t>(budget, 48, 192);
  return std::max<std::size_t>(1, target / T);
}

#ifdef SCOREOOD_PACKED_GEMM_AVX512
namespace detail {

/// One dimension of B^T d (6 -> 6), shared subexpressions of Lavin's F(4,3).
__attribute__((always_inline)) inline void input_1d(const __m512 (&d)[kAlpha], __m512 (&o)[kAlpha]) {
  const __m512 four = _mm512_set1_ps(4.f), mfour = _mm512_set1_ps(-4.f), mfive = _mm512_set1_ps(-5.f);
  const __m512 a = _mm512_fmadd_ps(mfour, d[2], d[4]);  // d4 - 4 d2
  const __m512 b = _mm512_fmadd_ps(mfour, d[1], d[3]);  // d3 - 4 d1
  const __m512 c = _mm512_sub_ps(d[4], d[2]);
  const __m512 e = _mm512_add_ps(_mm512_sub_ps(d[3], d[1]), _mm512_sub_ps(d[3], d[1]));  // 2 (d3 - d1)
  o[0] = _mm512_fmadd_ps(four, d[0], _mm512_fmadd_ps(mfive, d[2], d[4]));
  o[1] = _mm512_add_ps(a, b);
  o[2] = _mm512_sub_ps(a, b);
  o[3] = _mm512_add_ps(c, e);
  o[4] = _mm512_sub_ps(c, e);
  o[5] = _mm512_fmadd_ps(four, d[1], _mm512_fmadd_ps(mfive, d[3], d[5]));
}

/// One dimension of A^T m (6 -> 4).
__attribute__((always_inline)) inline void output_1d(const __m512 (&d)[kAlpha], __m512 (&o)[kM]) {
  const __m512 t0 = _mm512_add_ps(d[1], d[2]), t1 = _mm512_sub_ps(d[1], d[2]);
  const __m512 t2 = _mm512_add_ps(d[3], d[4]), t3 = _mm512_sub_ps(d[3], d[4]);
  o[0] = _mm512_add_ps(_mm512_add_ps(d[0], t0), t2);
  o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.f), t3, t1);
  o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.f), t2, t0);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.f), t3, t1), d[5]);
}

/// Lanes [0, n) of a 16-lane mask.
inline __mmask16 lanes(std::ptrdiff_t n) { return cpu::detail::lane_range(0, n); }

/// Tile geometry of one group: V and M rows hold N = images * T tiles, padded to Ns.
struct Grid {
  std::size_t tW, tH, T, N, Ns;
};

/// Input, first half: unfolds channel plane x (H x W, padded by 1) into the 6x6 tiles and
/// applies B^T along each tile row, writing row r, column j of tile n's B^T-row-transform
/// to v[(r*6 + j) * pos_stride + n]. Padded rows feed one or two tile rows (tiles overlap by 2).
inline void unfold_rows(const float* x, std::size_t H, std::size_t W, const Grid& g, float* v,
                        std::size_t pos_stride) {
  // Lane t of column phase c: padded column 4t + c, i.e. source column 4t + c - 1 (7 tiles per chunk
  // need source columns up to 4*6 + 5 - 1: two vectors).
  const __m512i four_t = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 20, 16, 12, 8, 4, 0);
  constexpr std::size_t kChunk = 7;
  for (std::size_t yp = 0; yp < 4 * g.tH + 2; ++yp) {
    const bool inside = yp >= 1 && yp <= H;
    const float* src = inside ? x + (yp - 1) * W : nullptr;
    for (std::size_t t0 = 0; t0 < g.tW; t0 += kChunk) {
      const __mmask16 st = lanes(std::ptrdiff_t(std::min(kChunk, g.tW - t0)));
      __m512 o[kAlpha];
      if (inside) {
        const std::ptrdiff_t e0 = std::ptrdiff_t(4 * t0) - 1;
        const __mmask16 m0 = cpu::detail::lane_range(-e0, std::ptrdiff_t(W) - e0);
        const __mmask16 m1 = cpu::detail::lane_range(-e0 - 16, std::ptrdiff_t(W) - e0 - 16);
        const __m512 v0 = m0 ? _mm512_maskz_loadu_ps(m0, src + e0) : _mm512_setzero_ps();
        const __m512 v1 = m1 ? _mm512_maskz_loadu_ps(m1, src + e0 + 16) : _mm512_setzero_ps();
        __m512 d[kAlpha];
        for (std::size_t c = 0; c < kAlpha; ++c)
          d[c] = _mm512_permutex2var_ps(v0, _mm512_add_epi32(four_t, _mm512_set1_epi32(int(c))), v1);
        input_1d(d, o);
      } else {
        for (auto& e : o) e = _mm512_setzero_ps();
      }
      // Tile row s uses padded rows 4s .. 4s + 5: this row is its row r = yp - 4s.
      for (std::size_t s = yp >= kAlpha ? (yp - kAlpha) / 4 + 1 : 0; s <= yp / 4 && s < g.tH; ++s) {
        float* dst = v + (yp - 4 * s) * kAlpha * pos_stride + s * g.tW + t0;
        for (std::size_t j = 0; j < kAlpha; ++j) _mm512_mask_storeu_ps(dst + j * pos_stride, st, o[j]);
      }
    }
  }
}

/// Input, second half, in place over whole rows of V: B^T along the tile columns.
inline void transform_columns_in(float* v, std::size_t rows, std::size_t N, std::size_t Ns,
                                  std::size_t pos_stride) {
  for (std::size_t k = 0; k < rows; ++k)
    for (std::size_t f0 = 0; f0 < N; f0 += 16) {
      // Lanes past N (the row padding) stay untouched.
      const __mmask16 ln = lanes(std::ptrdiff_t(N - f0));
      for (std::size_t j = 0; j < kAlpha; ++j) {
        float* p = v + k * Ns + f0 + j * pos_stride;
        __m512 d[kAlpha], o[kAlpha];
        for (std::size_t r = 0; r < kAlpha; ++r) d[r] = _mm512_maskz_loadu_ps(ln, p + r * kAlpha * pos_stride);
        input_1d(d, o);
        for (std::size_t i = 0; i < kAlpha; ++i) _mm512_mask_storeu_ps(p + i * kAlpha * pos_stride, ln, o[i]);
      }
    }
}

/// Output, first half, in place: A^T along the tile columns, rows (a*6 + j) for a < 4.
inline void transform_columns_out(float* m, std::size_t rows, std::size_t N, std::size_t Ns,
                                  std::size_t pos_stride) {
  for (std::size_t k = 0; k < rows; ++k)
    for (std::size_t f0 = 0; f0 < N; f0 += 16) {
      // Lanes past N (the row padding) stay untouched.
      const __mmask16 ln = lanes(std::ptrdiff_t(N - f0));
      for (std::size_t j = 0; j < kAlpha; ++j) {
        float* p = m + k * Ns + f0 + j * pos_stride;
        __m512 d[kAlpha], o[kM];
        for (std::size_t i = 0; i < kAlpha; ++i) d[i] = _mm512_maskz_loadu_ps(ln, p + i * kAlpha * pos_stride);
        output_1d(d, o);
        for (std::size_t a = 0; a < kM; ++a) _mm512_mask_storeu_ps(p + a * kAlpha * pos_stride, ln, o[a]);
      }
    }
}

/// Output, second half: A^T along each tile row, the 4 column phases interleaved into the
/// rows of channel plane y (H x W), + bias (+ residual).
inline void fold_rows(const float* m, std::size_t pos_stride, std::size_t H, std::size_t W, const Grid& g,
                      float bias, const float* residual, float* y) {
  const __m512i pair = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i quad_lo = _mm512_set_epi32(23, 22, 7, 6, 21, 20, 5, 4, 19, 18, 3, 2, 17, 16, 1, 0);
  const __m512i quad_hi = _mm512_set_epi32(31, 30, 15, 14, 29, 28, 13, 12, 27, 26, 11, 10, 25, 24, 9, 8);
  const __m512 bv = _mm512_set1_ps(bias);
  for (std::size_t yy = 0; yy < H; ++yy) {
    const float* row_in = m + (yy % 4) * kAlpha * pos_stride + (yy / 4) * g.tW;
    float* row = y + yy * W;
    const float* res = residual ? residual + yy * W : nullptr;
    for (std::size_t t0 = 0; t0 < g.tW; t0 += 8) {
      __m512 d[kAlpha], q[kM];
      for (std::size_t j = 0; j < kAlpha; ++j) d[j] = _mm512_loadu_ps(row_in + j * pos_stride + t0);
      output_1d(d, q);
      const __m512 p01 = _mm512_permutex2var_ps(q[0], pair, q[1]);  // q0[0] q1[0] q0[1] q1[1] ...
      const __m512 p23 = _mm512_permutex2var_ps(q[2], pair, q[3]);
      const __m512 out[2] = {_mm512_permutex2var_ps(p01, quad_lo, p23), _mm512_permutex2var_ps(p01, quad_hi, p23)};
      for (std::size_t h = 0; h < 2; ++h) {
        const std::ptrdiff_t x0 = std::ptrdiff_t(t0 * kM + 16 * h);
        const __mmask16 st = lanes(std::ptrdiff_t(W) - x0);
        if (!st) break;
        __m512 o = _mm512_add_ps(out[h], bv);
        if (res) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(st, res + x0));
        _mm512_mask_storeu_ps(row + x0, st, o);
      }
    }
  }
}

}  // namespace detail
#endif

/// y[n] = conv3x3(x[n]) (+ bias) (+ residual[n]) for `images` NCHW images, padding 1,
/// with U from transform_weights(); single-threaded (callers split the batch).
/// bias (s.out values) and residual (y's shape) may be null.
inline void conv3x3(const float* U, const Shape& s, const float* x, std::size_t images, const float* bias,
                    const float* residual, float* y) {
#ifdef SCOREOOD_PACKED_GEMM_AVX512
  using namespace detail;
  Grid gr;
  gr.tW = s.tiles_w();
  gr.tH = s.tiles_h();
  gr.T = gr.tW * gr.tH;
  const std::size_t G = std::min(images, group_size(s));
  const std::size_t plane = s.height * s.width, ps = packed_lhs_size<float>(s.out, s.in);
  const std::size_t ns_max = (G * gr.T + 15) / 16 * 16;
  // +16: the interleave's vector loads read past the last row of M.
  // Position strides are one cache line more than their rows: a multiple of 4 KB would put the
  // 36 rows a transform touches at once into the same L1 set (measured: unfolding 2x slower).
  float* V = scratch<float>(Scratch::wino_v, kPositions * (s.in * ns_max + 16) + 16);
  float* M = scratch<float>(Scratch::wino_m, kPositions * (s.out * ns_max + 16) + 16);
  for (std::size_t n0 = 0; n0 < images; n0 += G) {
    const std::size_t g = std::min(G, images - n0);
    gr.N = g * gr.T;
    gr.Ns = (gr.N + 15) / 16 * 16;
    const std::size_t vs = s.in * gr.Ns + 16, ms = s.out * gr.Ns + 16;  // position strides
    // Whole passes over the group (not channel by channel): a pass reads what the previous
    // one stored long before, so loads never wait on store forwarding.
    for (std::size_t c = 0; c < s.in; ++c)
      for (std::size_t j = 0; j < g; ++j)
        unfold_rows(x + ((n0 + j) * s.in + c) * plane, s.height, s.width, gr, V + c * gr.Ns + j * gr.T, vs);
    transform_columns_in(V, s.in, gr.N, gr.Ns, vs);
    for (std::size_t pos = 0; pos < kPositions; ++pos)
      gemm_packed<float>(U + pos * ps, s.out, s.in, V + pos * vs, gr.Ns, gr.N, M + pos * ms, gr.Ns, false);
    transform_columns_out(M, s.out, gr.N, gr.Ns, ms);
    for (std::size_t j = 0; j < g; ++j)
      for (std::size_t o = 0; o < s.out; ++o) {
        const std::size_t off = ((n0 + j) * s.out + o) * plane;
        fold_rows(M + o * gr.Ns + j * gr.T, ms, s.height, s.width, gr, bias ? bias[o] : 0.f,
                  residual ? residual + off : nullptr, y + off);
      }
  }
#else
  (void)U, (void)s, (void)x, (void)images, (void)bias, (void)residual, (void)y;
  throw std::logic_error("winograd::conv3x3: needs the native AVX-512 float kernel");
#endif
}

}  // namespace scoreood::cpu::winograd
