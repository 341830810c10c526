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
 *  transforms are a few adds per value, vectorised over tiles. conv3x3() is
 *  the forward (and, with the flipped transposed kernel, backward-data);
 *  conv3x3_grad_u() the weight gradient in the transformed domain,
 *  dU[pos] = sum over tiles (A dY A^T)[pos] (B^T x B)[pos]^T, which
 *  weight_grad() maps back to 3x3 kernels (G^T dU G).
 *
 *  Numerics: the transforms hold constants up to 8 and 1/24, so float
 *  results differ from a direct convolution by a few units in the 5th-6th
 *  significant digit (tests bound it); double paths never use this.
 *
 *  Layout (per group of images, N = images * tiles GEMM columns, rows padded to
 *  a multiple of 16): V[pos][c][n] and M[pos][o][n], n = image * T + ty * tW + tx.
 *  Each transform is split into its two 1-D halves, channel by channel through
 *  a small L1-resident stage: along the tile rows while the input is unfolded
 *  (or the output folded back) row by row, and along the tile columns between
 *  the stage and V (or M), 16 tiles per aligned vector. V and M are each
 *  written once and read once.
 *  AVX-512 and AVX2 tiers (available()). */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <utility>

namespace scoreood::cpu::SCOREOOD_CPU_TIER::winograd {

inline constexpr std::size_t kM = 4;           ///< output tile
inline constexpr std::size_t kAlpha = kM + 2;  ///< input tile
inline constexpr std::size_t kPositions = kAlpha * kAlpha;

/// True when conv3x3() runs on this tier (AVX-512: transforms on 16 tiles per zmm register,
/// permutes for the row gathers; AVX2: the same transforms as loops over blocks of 8 tiles).
constexpr bool available() { return packed_gemm_is_native<float>(); }

/// Elements of the transformed, packed weights of an out x in 3x3 convolution.
inline std::size_t weights_size(std::size_t out, std::size_t in) {
  return kPositions * packed_lhs_size<float>(out, in);
}

/// The kernel transform G of F(4x4, 3x3) (6 x 3).
inline constexpr double kG[kAlpha][3] = {{1.0 / 4, 0, 0},
                                        {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                        {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                        {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                        {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                        {0, 0, 1}};

/// U[pos] = G g G^T for every (o, i) pair, packed for gemm_packed (M = out, K = in).
/// `w(o, i, ky, kx)` returns the kernel tap; the transform runs in double, G g first, then
/// (G g) G^T. `tmp` holds 36 * out * in floats.
template <class W>
void transform_weights(W w, std::size_t out, std::size_t in, float* packed, float* tmp) {
  constexpr const auto& G = kG;
  const std::size_t plane = out * in;
  for (std::size_t o = 0; o < out; ++o)
    for (std::size_t i = 0; i < in; ++i) {
      double g[3][3], t[kAlpha][3];
      for (std::size_t ky = 0; ky < 3; ++ky)
        for (std::size_t kx = 0; kx < 3; ++kx) g[ky][kx] = double(w(o, i, ky, kx));
      for (std::size_t a = 0; a < kAlpha; ++a)
        for (std::size_t kx = 0; kx < 3; ++kx) t[a][kx] = G[a][0] * g[0][kx] + G[a][1] * g[1][kx] + G[a][2] * g[2][kx];
      for (std::size_t a = 0; a < kAlpha; ++a)
        for (std::size_t b = 0; b < kAlpha; ++b)
          tmp[(a * kAlpha + b) * plane + o * in + i] = float(t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2]);
    }
  const std::size_t ps = packed_lhs_size<float>(out, in);
  for (std::size_t pos = 0; pos < kPositions; ++pos) pack_lhs(tmp + pos * plane, out, in, in, 1, packed + pos * ps);
}

/// Maps a weight gradient in the Winograd domain (dU[pos][o][i], from conv3x3_grad_u) back to
/// the 3x3 kernels: add(o, i, ky, kx, sum_{a,b} G[a][ky] G[b][kx] dU[a*6 + b][o][i]) (in double).
template <class Add>
void weight_grad(const float* dU, std::size_t out, std::size_t in, Add add) {
  const std::size_t plane = out * in;
  for (std::size_t o = 0; o < out; ++o)
    for (std::size_t i = 0; i < in; ++i) {
      double t[kAlpha][3] = {};  // t[a][kx] = sum_b dU[a][b] G[b][kx]
      for (std::size_t a = 0; a < kAlpha; ++a)
        for (std::size_t b = 0; b < kAlpha; ++b) {
          const double u = dU[(a * kAlpha + b) * plane + o * in + i];
          for (std::size_t kx = 0; kx < 3; ++kx) t[a][kx] += u * kG[b][kx];
        }
      for (std::size_t ky = 0; ky < 3; ++ky)
        for (std::size_t kx = 0; kx < 3; ++kx) {
          double v = 0;
          for (std::size_t a = 0; a < kAlpha; ++a) v += kG[a][ky] * t[a][kx];
          add(o, i, ky, kx, v);
        }
    }
}

/// The sizes of one convolution.
struct Shape {
  std::size_t in = 0, out = 0, height = 0, width = 0;
  std::size_t tiles_h() const { return (height + kM - 1) / kM; }
  std::size_t tiles_w() const { return (width + kM - 1) / kM; }
  std::size_t tiles() const { return tiles_h() * tiles_w(); }
};

/// Images per GEMM group: V and M of a group take about 3/4 MB, so that they stay in L2
/// between the transforms and the GEMMs (measured at batch 128, one core: 28x28x32 best
/// at 1-2 images, 14x14x64 at 2-3, 7x7x64 at about 8; twice as many were 10-15 % slower).
inline std::size_t group_size(const Shape& s) {
  const std::size_t budget = (std::size_t(3) << 18) / (kPositions * (s.in + s.out) * sizeof(float));
  return std::max<std::size_t>(1, std::clamp<std::size_t>(budget, 32, 192) / s.tiles());
}

#if SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2
namespace detail {
/// p rounded up to a cache line (buffers carry 16 spare floats): row starts that are
/// multiples of 16 floats then take whole-line vector loads and stores.
inline float* align64(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(p) + 63) & ~std::uintptr_t(63));
}

/// Tile geometry of one group: V and M rows hold N = images * T tiles, padded to Ns.
struct Grid {
  std::size_t tW, tH, T, N, Ns;
};
}  // namespace detail
#endif

#if SCOREOOD_TIER_AVX512
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
inline __mmask16 lanes(std::ptrdiff_t n) { return tier::detail::lane_range(0, n); }


/// Input, first half: unfolds channel plane x (H x W, padded by 1) into the 6x6 tiles and
/// applies B^T along each tile row, writing row r, column j of tile n's B^T-row-transform
/// to v[(r*6 + j) * pos_stride + n]. Padded rows feed one or two tile rows (tiles overlap by 2).
inline void unfold_rows(const float* x, std::size_t H, std::size_t W, const Grid& g, float* v,
                        std::size_t pos_stride) {
  // Lane t of column phase c: padded column 4t + c, i.e. source column 4t + c - 1 (7 tiles per chunk
  // need source columns up to 4*6 + 5 - 1: two vectors).
  constexpr std::size_t kChunk = 7;
  const __m512i four_t = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 24, 20, 16, 12, 8, 4, 0);
  __m512i idx[kAlpha];
  for (std::size_t c = 0; c < kAlpha; ++c) idx[c] = _mm512_add_epi32(four_t, _mm512_set1_epi32(int(c)));
  const std::size_t rows = 4 * g.tH + 2, last = std::min(H, rows - 1);  // padded rows 1..last hold data
  const std::size_t row6 = kAlpha * pos_stride;
  for (std::size_t t0 = 0; t0 < g.tW; t0 += kChunk) {
    const __mmask16 st = lanes(std::ptrdiff_t(std::min(kChunk, g.tW - t0)));
    const std::ptrdiff_t e0 = std::ptrdiff_t(4 * t0) - 1;
    const __mmask16 m0 = tier::detail::lane_range(-e0, std::ptrdiff_t(W) - e0);
    const __mmask16 m1 = tier::detail::lane_range(-e0 - 16, std::ptrdiff_t(W) - e0 - 16);
    float* vt = v + t0;
    // Stores row yp's six values (o) wherever a tile row uses it.
    auto put = [&](std::size_t yp, const __m512 (&o)[kAlpha]) __attribute__((always_inline)) {
      const std::size_t s_lo = yp >= kAlpha ? (yp - kAlpha) / 4 + 1 : 0, s_hi = std::min(yp / 4, g.tH - 1);
      for (std::size_t s = s_lo; s <= s_hi; ++s) {
        float* dst = vt + (yp - 4 * s) * row6 + s * g.tW;
        for (std::size_t j = 0; j < kAlpha; ++j) _mm512_mask_storeu_ps(dst + j * pos_stride, st, o[j]);
      }
    };
    __m512 zero[kAlpha];
    for (auto& z : zero) z = _mm512_setzero_ps();
    put(0, zero);
    for (std::size_t yp = 1; yp <= last; ++yp) {
      const float* src = x + (yp - 1) * W + e0;
      const __m512 v0 = _mm512_maskz_loadu_ps(m0, src);
      const __m512 v1 = _mm512_maskz_loadu_ps(m1, src + 16);
      __m512 d[kAlpha], o[kAlpha];
      for (std::size_t c = 0; c < kAlpha; ++c) d[c] = _mm512_permutex2var_ps(v0, idx[c], v1);
      input_1d(d, o);
      put(yp, o);
    }
    for (std::size_t yp = last + 1; yp < rows; ++yp) put(yp, zero);
  }
}

/// The column half of a 6-output transform: for every tile n < N and column j, the In rows
/// stage[(r*6 + j) * ts + n] go through f (In -> 6) to dst[(i*6 + j) * pos_stride + n].
template <std::size_t In, class F>
inline void columns_to_positions(const float* stage, std::size_t ts, std::size_t N, float* dst,
                                 std::size_t pos_stride, F f) {
  for (std::size_t f0 = 0; f0 < N; f0 += 16) {
    const __mmask16 ln = lanes(std::ptrdiff_t(N - f0));
    for (std::size_t j = 0; j < kAlpha; ++j) {
      __m512 d[In], o[kAlpha];
      for (std::size_t r = 0; r < In; ++r) d[r] = _mm512_loadu_ps(stage + (r * kAlpha + j) * ts + f0);
      f(d, o);
      for (std::size_t i = 0; i < kAlpha; ++i) _mm512_mask_storeu_ps(dst + (i * kAlpha + j) * pos_stride + f0, ln, o[i]);
    }
  }
}

/// Input, second half: B^T along the tile columns, from one channel's unfolded rows
/// (stage[(r*6 + j) * ts + n], the group's tiles n < N) to V[(i*6 + j) * pos_stride + n].
inline void transform_columns_in(const float* stage, std::size_t ts, std::size_t N, float* v,
                                 std::size_t pos_stride) {
  columns_to_positions<kAlpha>(stage, ts, N, v, pos_stride,
                               [](const __m512(&d)[kAlpha], __m512(&o)[kAlpha]) { input_1d(d, o); });
}

/// Output, first half: A^T along the tile columns, from one channel's M[(i*6 + j) * pos_stride + n]
/// (the group's tiles n < N) to stage[(a*6 + j) * ts + n], a < 4.
inline void transform_columns_out(const float* m, std::size_t pos_stride, std::size_t N, float* stage,
                                  std::size_t ts) {
  for (std::size_t f0 = 0; f0 < N; f0 += 16) {
    const __mmask16 ln = lanes(std::ptrdiff_t(N - f0));
    for (std::size_t j = 0; j < kAlpha; ++j) {
      __m512 d[kAlpha], o[kM];
      for (std::size_t i = 0; i < kAlpha; ++i) d[i] = _mm512_maskz_loadu_ps(ln, m + (i * kAlpha + j) * pos_stride + f0);
      output_1d(d, o);
      for (std::size_t a = 0; a < kM; ++a) _mm512_storeu_ps(stage + (a * kAlpha + j) * ts + f0, o[a]);
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
  for (std::size_t t0 = 0; t0 < g.tW; t0 += 8) {
    // 8 tiles = 32 output columns per step, two masked vectors.
    const std::ptrdiff_t x0 = std::ptrdiff_t(t0 * kM);
    const __mmask16 st0 = lanes(std::ptrdiff_t(W) - x0), st1 = lanes(std::ptrdiff_t(W) - x0 - 16);
    for (std::size_t yy = 0; yy < H; ++yy) {
      const float* in = m + (yy % 4) * kAlpha * pos_stride + (yy / 4) * g.tW + t0;
      __m512 d[kAlpha], q[kM];
      for (std::size_t j = 0; j < kAlpha; ++j) d[j] = _mm512_loadu_ps(in + j * pos_stride);
      output_1d(d, q);
      const __m512 p01 = _mm512_permutex2var_ps(q[0], pair, q[1]);  // q0[0] q1[0] q0[1] q1[1] ...
      const __m512 p23 = _mm512_permutex2var_ps(q[2], pair, q[3]);
      __m512 o0 = _mm512_add_ps(_mm512_permutex2var_ps(p01, quad_lo, p23), bv);
      __m512 o1 = _mm512_add_ps(_mm512_permutex2var_ps(p01, quad_hi, p23), bv);
      float* row = y + yy * W + x0;
      if (residual) {
        const float* res = residual + yy * W + x0;
        o0 = _mm512_add_ps(o0, _mm512_maskz_loadu_ps(st0, res));
        o1 = _mm512_add_ps(o1, _mm512_maskz_loadu_ps(st1, res + 16));
      }
      _mm512_mask_storeu_ps(row, st0, o0);
      _mm512_mask_storeu_ps(row + 16, st1, o1);
    }
  }
}

/// sum of x[i] * y[i], i < n.
inline float dot(const float* x, const float* y, std::size_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (std::size_t p = 0; p < n; p += 16) {
    const __mmask16 mk = lanes(std::ptrdiff_t(n - p));
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x + p), _mm512_maskz_loadu_ps(mk, y + p), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

/// One dimension of A d for the weight gradient (4 -> 6): the transpose of output_1d.
__attribute__((always_inline)) inline void grad_1d(const __m512 (&d)[kM], __m512 (&o)[kAlpha]) {
  const __m512 s02 = _mm512_add_ps(d[0], d[2]), s13 = _mm512_add_ps(d[1], d[3]);
  const __m512 f02 = _mm512_fmadd_ps(_mm512_set1_ps(4.f), d[2], d[0]);                   // d0 + 4 d2
  const __m512 f13 = _mm512_fmadd_ps(_mm512_set1_ps(8.f), d[3], _mm512_add_ps(d[1], d[1]));  // 2 d1 + 8 d3
  o[0] = d[0];
  o[1] = _mm512_add_ps(s02, s13);
  o[2] = _mm512_sub_ps(s02, s13);
  o[3] = _mm512_add_ps(f02, f13);
  o[4] = _mm512_sub_ps(f02, f13);
  o[5] = d[3];
}

/// Output-gradient tiles, first half: channel plane dy (H x W) cut into 4x4 tiles (zero past
/// the edges, which the forward discarded), A applied along each tile row:
/// stage[(a*6 + j) * ts + tile] for tile row a of every tile.
inline void unfold_grad_rows(const float* dy, std::size_t H, std::size_t W, const Grid& g, float* stage,
                             std::size_t ts) {
  const __m512i four_t = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 28, 24, 20, 16, 12, 8, 4, 0);
  __m512i idx[kM];
  for (std::size_t b = 0; b < kM; ++b) idx[b] = _mm512_add_epi32(four_t, _mm512_set1_epi32(int(b)));
  for (std::size_t t0 = 0; t0 < g.tW; t0 += 8) {
    const __mmask16 st = lanes(std::ptrdiff_t(std::min<std::size_t>(8, g.tW - t0)));
    const std::ptrdiff_t x0 = std::ptrdiff_t(4 * t0);
    const __mmask16 m0 = lanes(std::ptrdiff_t(W) - x0), m1 = lanes(std::ptrdiff_t(W) - x0 - 16);
    for (std::size_t yy = 0; yy < 4 * g.tH; ++yy) {
      __m512 o[kAlpha];
      if (yy < H) {
        const float* src = dy + yy * W + x0;
        const __m512 v0 = _mm512_maskz_loadu_ps(m0, src), v1 = _mm512_maskz_loadu_ps(m1, src + 16);
        __m512 d[kM];
        for (std::size_t b = 0; b < kM; ++b) d[b] = _mm512_permutex2var_ps(v0, idx[b], v1);
        grad_1d(d, o);
      } else {
        for (auto& e : o) e = _mm512_setzero_ps();
      }
      float* dst = stage + (yy % 4) * kAlpha * ts + (yy / 4) * g.tW + t0;
      for (std::size_t j = 0; j < kAlpha; ++j) _mm512_mask_storeu_ps(dst + j * ts, st, o[j]);
    }
  }
}

/// Output-gradient tiles, second half: A along the tile columns, from the stage to
/// dM[(i*6 + j) * pos_stride + n], n < N.
inline void transform_columns_grad(const float* stage, std::size_t ts, std::size_t N, float* dm,
                                   std::size_t pos_stride) {
  columns_to_positions<kM>(stage, ts, N, dm, pos_stride,
                           [](const __m512(&d)[kM], __m512(&o)[kAlpha]) { grad_1d(d, o); });
}

/// Lane 4q + e of the result: the sum of the 16 lanes of acc[4e + q] (a transposed order).
__attribute__((always_inline)) inline __m512 reduce16(__m512 (&acc)[16]) {
  // Halve the lanes four times, pairing vectors: 8 + 4 + 2 + 1 adds instead of 16 full reductions.
  __m512 h8[8], h4[4], h2[2];
  for (int k = 0; k < 8; ++k) {
    const __m512 lo = _mm512_shuffle_f32x4(acc[2 * k], acc[2 * k + 1], 0x44);  // a.q0 a.q1 b.q0 b.q1
    const __m512 hi = _mm512_shuffle_f32x4(acc[2 * k], acc[2 * k + 1], 0xEE);  // a.q2 a.q3 b.q2 b.q3
    h8[k] = _mm512_add_ps(lo, hi);  // 8 partial sums of a, then of b
  }
  for (int k = 0; k < 4; ++k) {
    const __m512 lo = _mm512_shuffle_f32x4(h8[2 * k], h8[2 * k + 1], 0x88);  // a.q0 b.q0 c.q0 d.q0
    const __m512 hi = _mm512_shuffle_f32x4(h8[2 * k], h8[2 * k + 1], 0xDD);  // a.q1 b.q1 c.q1 d.q1
    h4[k] = _mm512_add_ps(lo, hi);  // per 128-bit quarter: 4 partial sums of one vector
  }
  for (int k = 0; k < 2; ++k) {
    const __m512 lo = _mm512_shuffle_ps(h4[2 * k], h4[2 * k + 1], 0x44);  // x0 x1 y0 y1 per quarter
    const __m512 hi = _mm512_shuffle_ps(h4[2 * k], h4[2 * k + 1], 0xEE);  // x2 x3 y2 y3
    h2[k] = _mm512_add_ps(lo, hi);
  }
  const __m512 lo = _mm512_shuffle_ps(h2[0], h2[1], 0x88);  // x0 y0 z0 w0 per quarter
  const __m512 hi = _mm512_shuffle_ps(h2[0], h2[1], 0xDD);
  return _mm512_add_ps(lo, hi);
}

/// C[M x K] += A (M x L, rows lda apart) * B (K x L, rows ldb apart)^T: 4 x 4 dot products
/// per tile, vectorised over L and reduced once (the weight gradient's small GEMMs).
inline void gemm_nt_rows(std::size_t M, std::size_t K, std::size_t L, const float* a, std::size_t lda, const float* b,
                         std::size_t ldb, float* c, std::size_t ldc) {
  const std::size_t full = L / 16 * 16;
  const __mmask16 tail = lanes(std::ptrdiff_t(L - full));
  std::size_t m0 = 0;
  for (; m0 + 4 <= M; m0 += 4) {
    std::size_t k0 = 0;
    for (; k0 + 4 <= K; k0 += 4) {
      __m512 acc[16];
      for (auto& e : acc) e = _mm512_setzero_ps();
      auto step = [&](std::size_t p, __mmask16 mk) __attribute__((always_inline)) {
        __m512 av[4], bv[4];
        for (int r = 0; r < 4; ++r) av[r] = _mm512_maskz_loadu_ps(mk, a + (m0 + r) * lda + p);
        for (int q = 0; q < 4; ++q) bv[q] = _mm512_maskz_loadu_ps(mk, b + (k0 + q) * ldb + p);
        for (int r = 0; r < 4; ++r)
          for (int q = 0; q < 4; ++q) acc[r * 4 + q] = _mm512_fmadd_ps(av[r], bv[q], acc[r * 4 + q]);
      };
      for (std::size_t p = 0; p < full; p += 16) step(p, __mmask16(0xFFFF));
      if (tail) step(full, tail);
      const __m512 sums = reduce16(acc);
      alignas(64) float out[16];
      _mm512_store_ps(out, sums);
      for (int r = 0; r < 4; ++r)
        for (int q = 0; q < 4; ++q) c[(m0 + r) * ldc + k0 + q] += out[q * 4 + r];  // acc[r*4 + q]
    }
    for (; k0 < K; ++k0)
      for (std::size_t r = 0; r < 4; ++r) c[(m0 + r) * ldc + k0] += dot(a + (m0 + r) * lda, b + k0 * ldb, L);
  }
  for (; m0 < M; ++m0)
    for (std::size_t k = 0; k < K; ++k) c[m0 * ldc + k] += dot(a + m0 * lda, b + k * ldb, L);
}

}  // namespace detail
#elif SCOREOOD_TIER_AVX2
// The AVX2 tier: the same transforms and layout on 8 tiles per ymm register. The
// row gathers (lane t of phase c = column 4t + c) are a 4x4 transpose inside each
// 128-bit half of four loaded vectors (tiles 2k | 2k+1 of vector k), then one lane
// permute; folding back is the inverse. Masked stores (vmaskmovps) are slow on many
// AVX2 cores (AMD's in particular), so stores into V, M and the stages are whole
// vectors: the lanes past a row's last tile land on tiles that are written again
// later in the same pass (the next tile row, the next image of the group), or on the
// padding past N. Only the output planes, shared between threads, take exact stores.
namespace detail {
inline constexpr std::size_t kB = 8;  ///< tiles per vector

/// One dimension of B^T d (6 -> 6), shared subexpressions of Lavin's F(4,3).
__attribute__((always_inline)) inline void input_1d(const __m256 (&d)[kAlpha], __m256 (&o)[kAlpha]) {
  const __m256 four = _mm256_set1_ps(4.f), mfour = _mm256_set1_ps(-4.f), mfive = _mm256_set1_ps(-5.f);
  const __m256 a = _mm256_fmadd_ps(mfour, d[2], d[4]);
  const __m256 b = _mm256_fmadd_ps(mfour, d[1], d[3]);
  const __m256 c = _mm256_sub_ps(d[4], d[2]);
  const __m256 e = _mm256_add_ps(_mm256_sub_ps(d[3], d[1]), _mm256_sub_ps(d[3], d[1]));
  o[0] = _mm256_fmadd_ps(four, d[0], _mm256_fmadd_ps(mfive, d[2], d[4]));
  o[1] = _mm256_add_ps(a, b);
  o[2] = _mm256_sub_ps(a, b);
  o[3] = _mm256_add_ps(c, e);
  o[4] = _mm256_sub_ps(c, e);
  o[5] = _mm256_fmadd_ps(four, d[1], _mm256_fmadd_ps(mfive, d[3], d[5]));
}
/// One dimension of A^T m (6 -> 4).
__attribute__((always_inline)) inline void output_1d(const __m256 (&d)[kAlpha], __m256 (&o)[kM]) {
  const __m256 t0 = _mm256_add_ps(d[1], d[2]), t1 = _mm256_sub_ps(d[1], d[2]);
  const __m256 t2 = _mm256_add_ps(d[3], d[4]), t3 = _mm256_sub_ps(d[3], d[4]);
  o[0] = _mm256_add_ps(_mm256_add_ps(d[0], t0), t2);
  o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.f), t3, t1);
  o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.f), t2, t0);
  o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.f), t3, t1), d[5]);
}
/// One dimension of A d for the weight gradient (4 -> 6): the transpose of output_1d.
__attribute__((always_inline)) inline void grad_1d(const __m256 (&d)[kM], __m256 (&o)[kAlpha]) {
  const __m256 s02 = _mm256_add_ps(d[0], d[2]), s13 = _mm256_add_ps(d[1], d[3]);
  const __m256 f02 = _mm256_fmadd_ps(_mm256_set1_ps(4.f), d[2], d[0]);
  const __m256 f13 = _mm256_fmadd_ps(_mm256_set1_ps(8.f), d[3], _mm256_add_ps(d[1], d[1]));
  o[0] = d[0];
  o[1] = _mm256_add_ps(s02, s13);
  o[2] = _mm256_sub_ps(s02, s13);
  o[3] = _mm256_add_ps(f02, f13);
  o[4] = _mm256_sub_ps(f02, f13);
  o[5] = d[3];
}

using tier::detail::avx2_mask;
using tier::detail::avx2_store_first;

/// 4x4 transpose inside each 128-bit half: o[c] half h = (r[0][c], r[1][c], r[2][c], r[3][c]) of half h.
__attribute__((always_inline)) inline void transpose4_halves(const __m256 (&r)[4], __m256 (&o)[4]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  o[0] = _mm256_shuffle_ps(t0, t2, 0x44);
  o[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
  o[2] = _mm256_shuffle_ps(t1, t3, 0x44);
  o[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/// Phases 0..3 of 8 tiles from 32 consecutive values (tile t, phase c at p[4t + c]): o[c] lane t.
__attribute__((always_inline)) inline void deinterleave4(const float* p, __m256 (&o)[4]) {
  __m256 r[4], t[4];
  for (int k = 0; k < 4; ++k) r[k] = _mm256_loadu_ps(p + 8 * k);
  transpose4_halves(r, t);  // t[c]: tiles 0 2 4 6 | 1 3 5 7
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int c = 0; c < 4; ++c) o[c] = _mm256_permutevar8x32_ps(t[c], order);
}

/// A row of W values at p[lead ..] in a zero-filled buffer of the calling thread with room
/// for `tiles` tiles of 4 read 36 wide (plain loads at every tile; masked loads stall here).
/// The zeros past the row stay: every call fills [lead, lead + W) with vector moves (the
/// last one overlapping; a masked load for rows shorter than 8, whose zero lanes rewrite zeros)
/// instead of a library call per short row.
struct PaddedRow {
  float* buf;
  std::size_t lead, W;
  PaddedRow(std::size_t lead_, std::size_t W_, std::size_t tiles) : lead(lead_), W(W_) {
    thread_local std::vector<float> storage;
    const std::size_t n = std::max(lead + W, 4 * tiles + 8) + 40;
    if (storage.size() < n) storage.resize(n);
    buf = storage.data();
    std::fill(buf, buf + n, 0.f);
  }
  const float* load(const float* row) const {
    float* d = buf + lead;
    std::size_t i = 0;
    for (; i + 8 <= W; i += 8) _mm256_storeu_ps(d + i, _mm256_loadu_ps(row + i));
    if (i == W) return buf;
    if (W >= 8) _mm256_storeu_ps(d + W - 8, _mm256_loadu_ps(row + W - 8));  // the last 8, overlapping
    else _mm256_storeu_ps(d, _mm256_maskload_ps(row, avx2_mask(std::ptrdiff_t(W))));
    return buf;
  }
};

/// Input, first half: unfolds channel plane x (H x W, padded by 1) into the 6x6 tiles and
/// applies B^T along each tile row, row r / column j of tile n's row transform to
/// v[(r*6 + j) * pos_stride + n]. Padded rows feed one or two tile rows (tiles overlap by 2).
inline void unfold_rows(const float* x, std::size_t H, std::size_t W, const Grid& g, float* v,
                        std::size_t pos_stride) {
  const std::size_t rows = 4 * g.tH + 2, last = std::min(H, rows - 1);  // padded rows 1..last hold data
  const std::size_t row6 = kAlpha * pos_stride;
  const PaddedRow row(1, W, g.tW);  // the padded row: column 0 is the padding
  // Rows in order (each loaded once), chunks of 8 tiles within a row. Lane t of phase c:
  // padded column 4t + c.
  auto put = [&](std::size_t t0, std::size_t yp, const __m256 (&o)[kAlpha]) __attribute__((always_inline)) {
    const std::size_t s_lo = yp >= kAlpha ? (yp - kAlpha) / 4 + 1 : 0, s_hi = std::min(yp / 4, g.tH - 1);
    for (std::size_t s = s_lo; s <= s_hi; ++s) {
      float* dst = v + t0 + (yp - 4 * s) * row6 + s * g.tW;
      // Lanes past tile tW - 1 land on tile row s + 1 (or the next image, or past N), at a
      // row yp' = yp + 4 > yp that is stored later.
      for (std::size_t j = 0; j < kAlpha; ++j) _mm256_storeu_ps(dst + j * pos_stride, o[j]);
    }
  };
  __m256 zero[kAlpha];
  for (auto& z : zero) z = _mm256_setzero_ps();
  for (std::size_t yp = 0; yp < rows; ++yp) {
    if (yp == 0 || yp > last) {
      for (std::size_t t0 = 0; t0 < g.tW; t0 += kB) put(t0, yp, zero);
      continue;
    }
    const float* src = row.load(x + (yp - 1) * W);
    for (std::size_t t0 = 0; t0 < g.tW; t0 += kB) {
      __m256 p0[4], p4[4], o[kAlpha];
      deinterleave4(src + 4 * t0, p0);      // phases 0..3
      deinterleave4(src + 4 * t0 + 4, p4);  // 4, 5: phases 0, 1 of the next tile
      const __m256 d[kAlpha] = {p0[0], p0[1], p0[2], p0[3], p4[0], p4[1]};
      input_1d(d, o);
      put(t0, yp, o);
    }
  }
}

/// The column half of a 6-output transform: for every tile n < N and column j, the In rows
/// stage[(r*6 + j) * ts + n] go through f (In -> 6) to dst[(i*6 + j) * pos_stride + n].
template <std::size_t In, class F>
inline void columns_to_positions(const float* stage, std::size_t ts, std::size_t N, float* dst,
                                 std::size_t pos_stride, F f) {
  // Lanes past N fall in [N, Ns) of the same channel's row: padding the GEMMs never read.
  for (std::size_t f0 = 0; f0 < N; f0 += kB) {
    for (std::size_t j = 0; j < kAlpha; ++j) {
      __m256 d[In], o[kAlpha];
      for (std::size_t r = 0; r < In; ++r) d[r] = _mm256_loadu_ps(stage + (r * kAlpha + j) * ts + f0);  // ts >= Ns + 16
      f(d, o);
      for (std::size_t i = 0; i < kAlpha; ++i) _mm256_storeu_ps(dst + (i * kAlpha + j) * pos_stride + f0, o[i]);
    }
  }
}
inline void transform_columns_in(const float* stage, std::size_t ts, std::size_t N, float* v,
                                 std::size_t pos_stride) {
  columns_to_positions<kAlpha>(stage, ts, N, v, pos_stride,
                               [](const __m256(&d)[kAlpha], __m256(&o)[kAlpha]) { input_1d(d, o); });
}
inline void transform_columns_grad(const float* stage, std::size_t ts, std::size_t N, float* dm,
                                   std::size_t pos_stride) {
  columns_to_positions<kM>(stage, ts, N, dm, pos_stride,
                           [](const __m256(&d)[kM], __m256(&o)[kAlpha]) { grad_1d(d, o); });
}

/// Output, first half: A^T along the tile columns, M[(i*6 + j) * pos_stride + n] (n < N) to
/// stage[(a*6 + j) * ts + n], a < 4.
inline void transform_columns_out(const float* m, std::size_t pos_stride, std::size_t N, float* stage,
                                  std::size_t ts) {
  for (std::size_t f0 = 0; f0 < N; f0 += kB) {
    const __m256i ln = avx2_mask(std::ptrdiff_t(N - f0));
    for (std::size_t j = 0; j < kAlpha; ++j) {
      __m256 d[kAlpha], o[kM];
      for (std::size_t i = 0; i < kAlpha; ++i) d[i] = _mm256_maskload_ps(m + (i * kAlpha + j) * pos_stride + f0, ln);
      output_1d(d, o);
      for (std::size_t a = 0; a < kM; ++a) _mm256_storeu_ps(stage + (a * kAlpha + j) * ts + f0, o[a]);
    }
  }
}

/// Output, second half: A^T along each tile row, the 4 column phases interleaved into the
/// rows of channel plane y (H x W), + bias (+ residual).
inline void fold_rows(const float* m, std::size_t pos_stride, std::size_t H, std::size_t W, const Grid& g,
                      float bias, const float* residual, float* y) {
  const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);  // tiles 0 2 4 6 | 1 3 5 7
  const __m256 bv = _mm256_set1_ps(bias);
  for (std::size_t t0 = 0; t0 < g.tW; t0 += kB) {
    // 8 tiles = 32 output columns per step, four vectors, the last ones cut at W.
    const std::ptrdiff_t x0 = std::ptrdiff_t(t0 * kM);
    __m256i st[4];
    for (int k = 0; k < 4; ++k) st[k] = avx2_mask(std::ptrdiff_t(W) - x0 - 8 * k);
    for (std::size_t yy = 0; yy < H; ++yy) {
      const float* in = m + (yy % 4) * kAlpha * pos_stride + (yy / 4) * g.tW + t0;
      __m256 d[kAlpha], q[kM], out[4];
      for (std::size_t j = 0; j < kAlpha; ++j) d[j] = _mm256_loadu_ps(in + j * pos_stride);  // 16 spare per row
      output_1d(d, q);
      for (auto& e : q) e = _mm256_permutevar8x32_ps(e, split);
      transpose4_halves(q, out);  // out[k]: columns 8k .. 8k + 7 (tiles 2k, 2k + 1)
      float* row = y + yy * W + x0;
      const float* res = residual ? residual + yy * W + x0 : nullptr;
      for (int k = 0; k < 4; ++k) {
        __m256 o = _mm256_add_ps(out[k], bv);
        if (res) o = _mm256_add_ps(o, _mm256_maskload_ps(res + 8 * k, st[k]));
        avx2_store_first(row + 8 * k, o, std::ptrdiff_t(W) - x0 - 8 * k);
      }
    }
  }
}

/// Output-gradient tiles, first half: channel plane dy (H x W) cut into 4x4 tiles (zero past
/// the edges, which the forward discarded), A applied along each tile row:
/// stage[(a*6 + j) * ts + tile] for tile row a of every tile.
inline void unfold_grad_rows(const float* dy, std::size_t H, std::size_t W, const Grid& g, float* stage,
                             std::size_t ts) {
  const PaddedRow row(0, W, g.tW);
  for (std::size_t yy = 0; yy < 4 * g.tH; ++yy) {
    const float* src = yy < H ? row.load(dy + yy * W) : nullptr;
    for (std::size_t t0 = 0; t0 < g.tW; t0 += kB) {
      __m256 o[kAlpha];
      if (src) {
        __m256 d[kM];
        deinterleave4(src + 4 * t0, d);
        grad_1d(d, o);
      } else {
        for (auto& e : o) e = _mm256_setzero_ps();
      }
      // Lanes past tile tW - 1: tile row yy / 4 + 1 (stored at yy + 4), the next image or past N.
      float* dst = stage + (yy % 4) * kAlpha * ts + (yy / 4) * g.tW + t0;
      for (std::size_t j = 0; j < kAlpha; ++j) _mm256_storeu_ps(dst + j * ts, o[j]);
    }
  }
}

/// The AVX2 weight gradient's small GEMMs: the tier's NT kernel.
inline void gemm_nt_rows(std::size_t M, std::size_t K, std::size_t L, const float* a, std::size_t lda, const float* b,
                         std::size_t ldb, float* c, std::size_t ldc) {
  gemm_nt_strided<float>(M, K, L, a, lda, b, ldb, c, ldc);
}
}  // namespace detail
#endif

#if SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2
namespace detail {
/// The per-thread buffers of one call: V, M (or dM) and the two L1 stages.
struct Buffers {
  Grid gr;
  std::size_t G, plane_in, plane_out, ts, stage_size;
  float *V, *M, *stage;
  Buffers(const Shape& s, std::size_t images, std::size_t group_scale = 1) {
    gr.tW = s.tiles_w();
    gr.tH = s.tiles_h();
    gr.T = gr.tW * gr.tH;
    G = std::min(images, group_size(s) * group_scale);
    plane_in = plane_out = s.height * s.width;
    const std::size_t ns_max = (G * gr.T + 15) / 16 * 16;
    // Position strides are one cache line more than their rows: a multiple of 4 KB would put the
    // 36 rows a transform touches at once into the same L1 set.
    V = align64(scratch<float>(Scratch::wino_v, kPositions * (s.in * ns_max + 16) + 16));
    M = align64(scratch<float>(Scratch::wino_m, kPositions * (s.out * ns_max + 16) + 16));
    // One channel's half-transformed tiles (all images of the group) live in L1 (36 rows of ts):
    // two of them, so that each is read back one channel of work after it was stored (no stalls
    // on store forwarding).
    ts = ns_max + 16;
    stage_size = kPositions * ts + 16;
    stage = align64(scratch<float>(Scratch::wino_small, 2 * stage_size + 16));
  }
  /// Starts the group of g images: sets N, returns the position strides of V and M.
  std::pair<std::size_t, std::size_t> begin(const Shape& s, std::size_t g) {
    gr.N = g * gr.T;
    gr.Ns = (gr.N + 15) / 16 * 16;
    return {s.in * gr.Ns + 16, s.out * gr.Ns + 16};
  }
  float* stage_for(std::size_t k) const { return stage + (k % 2) * stage_size; }

  /// V = B^T x B for images n0 .. n0 + g of x. Unfolds channel c of every image while
  /// finishing channel c - 1: its column transform runs over whole rows of V (aligned
  /// vectors, 16 tiles each, whatever the image size).
  void transform_input(const Shape& s, const float* x, std::size_t n0, std::size_t g, std::size_t vs) {
    for (std::size_t c = 0; c <= s.in; ++c) {
      if (c < s.in)
        for (std::size_t j = 0; j < g; ++j)
          unfold_rows(x + ((n0 + j) * s.in + c) * plane_in, s.height, s.width, gr, stage_for(c) + j * gr.T, ts);
      if (c > 0) transform_columns_in(stage_for(c - 1), ts, gr.N, V + (c - 1) * gr.Ns, vs);
    }
  }
};
}  // namespace detail
#endif

/// y[n] = conv3x3(x[n]) (+ bias) (+ residual[n]) for `images` NCHW images, padding 1,
/// with U from transform_weights(); single-threaded (callers split the batch).
/// bias (s.out values) and residual (y's shape) may be null.
inline void conv3x3(const float* U, const Shape& s, const float* x, std::size_t images, const float* bias,
                    const float* residual, float* y) {
#if SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2
  using namespace detail;
  Buffers w(s, images);
  const std::size_t ps = packed_lhs_size<float>(s.out, s.in);
  for (std::size_t n0 = 0; n0 < images; n0 += w.G) {
    const std::size_t g = std::min(w.G, images - n0);
    const auto [vs, ms] = w.begin(s, g);
    w.transform_input(s, x, n0, g, vs);
    for (std::size_t pos = 0; pos < kPositions; ++pos)
      gemm_packed<float>(U + pos * ps, s.out, s.in, w.V + pos * vs, w.gr.Ns, w.gr.N, w.M + pos * ms, w.gr.Ns, false);
    for (std::size_t o = 0; o <= s.out; ++o) {
      if (o < s.out) transform_columns_out(w.M + o * w.gr.Ns, ms, w.gr.N, w.stage_for(o), w.ts);
      if (o > 0)
        for (std::size_t j = 0; j < g; ++j) {
          const std::size_t off = ((n0 + j) * s.out + o - 1) * w.plane_out;
          fold_rows(w.stage_for(o - 1) + j * w.gr.T, w.ts, s.height, s.width, w.gr, bias ? bias[o - 1] : 0.f,
                    residual ? residual + off : nullptr, y + off);
        }
    }
  }
#else
  (void)U, (void)s, (void)x, (void)images, (void)bias, (void)residual, (void)y;
  throw std::logic_error("winograd::conv3x3: needs the AVX2 or AVX-512 tier");
#endif
}

/// The weight gradient of conv3x3 in the Winograd domain, accumulated:
/// dU[pos][o][i] += sum over the tiles of `images` images of (A dY A^T)[pos][o] * (B^T x B)[pos][i],
/// x the forward input (s.in channels), dy the output gradient (s.out channels), both NCHW.
/// weight_grad() maps dU (36 * s.out * s.in floats) to the 3x3 kernels. Single-threaded.
inline void conv3x3_grad_u(const Shape& s, const float* x, const float* dy, std::size_t images, float* dU) {
#if SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2
  using namespace detail;
  // Groups 4x the forward's: the dot products over the group's tiles reduce once per group, so
  // longer rows pay (measured at batch 128, one core: backward 10-25 % faster than 1x; 2x-16x
  // within noise of each other).
  Buffers w(s, images, 4);
  for (std::size_t n0 = 0; n0 < images; n0 += w.G) {
    const std::size_t g = std::min(w.G, images - n0);
    const auto [vs, ms] = w.begin(s, g);
    w.transform_input(s, x, n0, g, vs);
    for (std::size_t o = 0; o <= s.out; ++o) {
      if (o < s.out)
        for (std::size_t j = 0; j < g; ++j)
          unfold_grad_rows(dy + ((n0 + j) * s.out + o) * w.plane_out, s.height, s.width, w.gr,
                           w.stage_for(o) + j * w.gr.T, w.ts);
      if (o > 0) transform_columns_grad(w.stage_for(o - 1), w.ts, w.gr.N, w.M + (o - 1) * w.gr.Ns, ms);
    }
    for (std::size_t pos = 0; pos < kPositions; ++pos)
      gemm_nt_rows(s.out, s.in, w.gr.N, w.M + pos * ms, w.gr.Ns, w.V + pos * vs, w.gr.Ns, dU + pos * s.out * s.in,
                   s.in);
  }
#else
  (void)s, (void)x, (void)dy, (void)images, (void)dU;
  throw std::logic_error("winograd::conv3x3_grad_u: needs the AVX2 or AVX-512 tier");
#endif
}

}  // namespace scoreood::cpu::SCOREOOD_CPU_TIER::winograd
