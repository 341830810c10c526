/** @file phase_backward.hpp
 *  @brief Backward pass of strided float convolutions on phase planes (AVX-512 and AVX2 kernels).
 *
 *  A stride-S convolution becomes S x S stride-1 problems once the zero-padded
 *  input is split into phase planes (rows and columns taken mod S): tap (ky, kx)
 *  reads phase (ky*d mod S, kx*d mod S) at the constant shift (ky*d / S, kx*d / S).
 *    backward-filter  dW^T += X * dY^T per image, as outer products: each x value is
 *                     broadcast straight from the phase planes (only valid output pixels
 *                     are visited) against rows of dY^T (dY transposed once per image);
 *                     the 6 x 64 accumulator tile stays in registers and a chunk of dY^T in
 *                     L1 across all taps. 1x1 kernels: Eigen's GEMM over the subsampled plane.
 *    backward-data    phase (a, b) of pad(dx) = sum of its taps' W^T * dY shifted back:
 *                     one stride-1 gemm_packed_offsets per phase over one zero-bordered
 *                     copy of dY, interleaved into dx (permutes for S = 2).
 *  No unfolding (im2col / col2im) and no wasted multiply-adds: the four phases of a
 *  3x3 stride-2 kernel hold 4 + 2 + 2 + 1 taps. Measured against im2col + Eigen on one
 *  core (SmallUNet's stride-2 3x3 convolutions, batch 128): filter 1.5-1.7x, data 1.3x.
 *  AVX-512 and AVX2 tiers (available(); the AVX2 kernels are the AVX-512 ones on 8 lanes;
 *  conv2d's plan keeps strided 1x1 kernels unfolded there); the caller keeps its generic
 *  path otherwise. */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace scoreood::cpu::SCOREOOD_CPU_TIER {

/// True when conv_backward_phases() runs for T on this tier (float, AVX-512 or AVX2).
template <class T>
constexpr bool phase_backward_available() {
  return (SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2) && packed_gemm_is_native<T>();
}

/// Index tables of one geometry (built once per call by the calling thread, read by all).
struct PhaseBackwardPlan {
  struct Phase {
    std::size_t u0 = 0, nu = 0, v0 = 0, nv = 0;  ///< phase rows/columns that land inside dx
    std::size_t tap_begin = 0, taps = 0;         ///< its taps in `taps`
    std::size_t pack_begin = 0, out_begin = 0;   ///< offsets into the packed weights / GEMM output
    std::size_t off_begin = 0;                   ///< its (m, tap) offsets in `offd`
  };
  struct Tap {
    std::size_t ky, kx, r, s;
  };
  std::size_t S = 1, M = 0, C = 0, K = 0, P = 0, OH = 0, OW = 0, H = 0, W = 0, pad = 0;
  // backward-filter: x split into its used phases, each Hs x Ws (phase q of channel c at (c*nph + q)*phase)
  std::size_t Hs = 0, Ws = 0, phase = 0, nph = 0, xsize = 0;
  std::vector<int> phase_index;        ///< S*S entries: compact index of a used phase, -1 unused
  std::vector<std::ptrdiff_t> offs;    ///< K tap offsets into the split image, ascending
  std::vector<std::size_t> perm;       ///< GEMM column j is weight column perm[j]
  bool eigen_filter = false;           ///< 1x1 kernel: dW by Eigen's GEMM over the phase plane
  // backward-data: dY with Tp zero rows on top, Bp below, rows of Wd (gap zeros after each)
  std::size_t Wd = 0, Tp = 0, Hd = 0, dplane = 0, dslack = 0, dsize = 0, out_size = 0, packed_size = 0;
  bool dq_in_place = false;  ///< no border needed: the data GEMMs read dY itself
  bool dx_direct = false;    ///< one phase covering dx exactly: the GEMM writes dx
  std::vector<Phase> phases;           ///< S*S, index a*S + b
  std::vector<Tap> taps;
  std::vector<std::ptrdiff_t> offd;    ///< per phase, (m, tap) offsets into the bordered dY
};

namespace detail {
inline std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

#if SCOREOOD_TIER_AVX2
/// Lanes 0, 2, .., 14 of the 16 values (lo, hi), in order.
__attribute__((always_inline)) inline __m256 even_lanes(__m256 lo, __m256 hi) {
  const __m256 e = _mm256_shuffle_ps(lo, hi, 0x88);  // lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
}
#endif

/// row[j] = src[S*j + sh] where that is inside [0, W), else 0, for j < n.
inline void gather_row(const float* src, std::size_t W, std::size_t S, std::ptrdiff_t sh, float* row, std::size_t n) {
  const std::ptrdiff_t Wi = std::ptrdiff_t(W), Si = std::ptrdiff_t(S);
  const std::size_t j0 = sh >= 0 ? 0 : std::min(n, std::size_t((-sh + Si - 1) / Si));
  const std::ptrdiff_t last = Wi - 1 - sh;  // S*j <= last
  const std::size_t j1 = last < 0 ? j0 : std::clamp<std::size_t>(std::size_t(last / Si) + 1, j0, n);
  std::fill(row, row + j0, 0.f);
  std::fill(row + j1, row + n, 0.f);
#if SCOREOOD_TIER_AVX512
  if (S == 1) {
    for (std::size_t j = j0; j < j1; j += 16) {
      const __mmask16 m = lane_range(0, std::ptrdiff_t(std::min<std::size_t>(16, j1 - j)));
      _mm512_mask_storeu_ps(row + j, m, _mm512_maskz_loadu_ps(m, src + (std::ptrdiff_t(j) + sh)));
    }
    return;
  }
  if (S == 2) {
    // Deinterleave with permutes: a scalar strided copy costs as much as the GEMM share.
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (std::size_t j = j0; j < j1; j += 16) {
      const std::size_t cnt = std::min<std::size_t>(16, j1 - j);
      const std::size_t need = 2 * cnt - 1;
      const float* p = src + (std::ptrdiff_t(2 * j) + sh);
      const __m512 lo = _mm512_maskz_loadu_ps(lane_range(0, std::ptrdiff_t(std::min<std::size_t>(16, need))), p);
      const __m512 hi =
          need > 16 ? _mm512_maskz_loadu_ps(lane_range(0, std::ptrdiff_t(need - 16)), p + 16) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(row + j, lane_range(0, std::ptrdiff_t(cnt)), _mm512_permutex2var_ps(lo, even, hi));
    }
    return;
  }
#elif SCOREOOD_TIER_AVX2
  if (S == 2) {
    // Even lanes of two vectors (16 values) while both lie inside the row; the rest one by one.
    std::size_t j = j0;
    for (; j + 8 <= j1 && std::ptrdiff_t(2 * j) + sh + 16 <= Wi; j += 8) {
      const float* p = src + (std::ptrdiff_t(2 * j) + sh);
      _mm256_storeu_ps(row + j, even_lanes(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)));
    }
    for (; j < j1; ++j) row[j] = src[std::ptrdiff_t(2 * j) + sh];
    return;
  }
#endif
  for (std::size_t j = j0; j < j1; ++j) row[j] = src[std::ptrdiff_t(S * j) + sh];
}

/// dst[2k] = first[k], dst[2k+1] = second[k] for indices < n; a null source reads zeros.
inline void interleave2(const float* first, const float* second, float* dst, std::size_t n) {
  const std::size_t nf = (n + 1) / 2, ns = n / 2;
#if SCOREOOD_TIER_AVX512
  const __m512i lo_idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi_idx = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  for (std::size_t k = 0; k < nf; k += 16) {
    const __m512 f = first ? _mm512_maskz_loadu_ps(lane_range(0, std::ptrdiff_t(nf - k)), first + k)
                           : _mm512_setzero_ps();
    const __m512 s = second && ns > k ? _mm512_maskz_loadu_ps(lane_range(0, std::ptrdiff_t(ns - k)), second + k)
                                      : _mm512_setzero_ps();
    const std::ptrdiff_t left = std::ptrdiff_t(n - 2 * k);
    _mm512_mask_storeu_ps(dst + 2 * k, lane_range(0, left), _mm512_permutex2var_ps(f, lo_idx, s));
    if (left > 16) _mm512_mask_storeu_ps(dst + 2 * k + 16, lane_range(0, left - 16), _mm512_permutex2var_ps(f, hi_idx, s));
  }
#else
  std::size_t k0 = 0;
#if SCOREOOD_TIER_AVX2
  // 8 of each while both sources have 8 left: unpack within halves, then the halves in order.
  for (; k0 + 8 <= ns; k0 += 8) {
    const __m256 f = first ? _mm256_loadu_ps(first + k0) : _mm256_setzero_ps();
    const __m256 s = second ? _mm256_loadu_ps(second + k0) : _mm256_setzero_ps();
    const __m256 lo = _mm256_unpacklo_ps(f, s), hi = _mm256_unpackhi_ps(f, s);
    _mm256_storeu_ps(dst + 2 * k0, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(dst + 2 * k0 + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
  }
#endif
  for (std::size_t k = k0; k < nf; ++k) dst[2 * k] = first ? first[k] : 0.f;
  for (std::size_t k = k0; k < ns; ++k) dst[2 * k + 1] = second ? second[k] : 0.f;
#endif
}


#if SCOREOOD_TIER_AVX512
/// ct[r][0 : 16 NV] += sum over output pixels (i, j), i in [i0, i1), j < OW, of
/// x_r[i * Ws + j] * dyt[(i * OW + j) * ldt + 0 : 16 NV], for KR taps r with x_r = xb + off[r].
/// An outer product: x broadcast from the phase planes (only valid pixels visited), dY^T rows
/// as vectors; the KR x NV accumulators stay in registers over the chunk.
template <int KR, int NV>
__attribute__((always_inline)) inline void bcast_tile(const float* xb, const std::ptrdiff_t* off, std::size_t i0,
                                                      std::size_t i1, std::size_t OW, std::size_t Ws, const float* dyt,
                                                      std::size_t ldt, float* ct, std::size_t ldct) {
  __m512 acc[KR][NV];
  const float* xr[KR];
#pragma GCC unroll 24
  for (int r = 0; r < KR; ++r) {
    xr[r] = xb + off[r];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_loadu_ps(ct + r * ldct + 16 * v);
  }
  for (std::size_t i = i0; i < i1; ++i) {
    const float* d = dyt + i * OW * ldt;
    const std::size_t xo = i * Ws;
    for (std::size_t j = 0; j < OW; ++j) {
      __m512 dv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) dv[v] = _mm512_loadu_ps(d + j * ldt + 16 * v);
#pragma GCC unroll 24
      for (int r = 0; r < KR; ++r) {
        const __m512 bx = _mm512_set1_ps(xr[r][xo + j]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(bx, dv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 24
  for (int r = 0; r < KR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(ct + r * ldct + 16 * v, acc[r][v]);
}

/// ct[K x ldt] += X * dY^T over one image: K taps at xb + off[k], dY^T (OH*OW x ldt, ldt a
/// multiple of 16, zero past M). Pixel rows in chunks whose dY^T stays in L1 across all tap tiles.
template <int NV>
inline void bcast_filter_nv(const float* xb, const std::ptrdiff_t* off, std::size_t K, std::size_t OH, std::size_t OW,
                            std::size_t Ws, const float* dyt, std::size_t ldt, float* ct) {
  constexpr int KR = NV == 4 ? 6 : NV == 3 ? 8 : NV == 2 ? 12 : 12;
  const std::size_t rows = std::max<std::size_t>(1, (std::size_t(24) << 10) / (OW * ldt * sizeof(float)));
  for (std::size_t i0 = 0; i0 < OH; i0 += rows) {
    const std::size_t i1 = std::min(OH, i0 + rows);
    for (std::size_t m0 = 0; m0 < ldt; m0 += 16 * NV) {
      std::size_t k0 = 0;
      for (; k0 + KR <= K; k0 += KR)
        bcast_tile<KR, NV>(xb, off + k0, i0, i1, OW, Ws, dyt + m0, ldt, ct + k0 * ldt + m0, ldt);
      for (; k0 < K; ++k0) bcast_tile<1, NV>(xb, off + k0, i0, i1, OW, Ws, dyt + m0, ldt, ct + k0 * ldt + m0, ldt);
    }
  }
}

inline void bcast_filter(const float* xb, const std::ptrdiff_t* off, std::size_t K, std::size_t OH, std::size_t OW,
                         std::size_t Ws, const float* dyt, std::size_t ldt, float* ct) {
  // ldt = 16 * NV for NV <= 4; wider dY^T is split into 64-column blocks by bcast_filter_nv<4>.
  switch (ldt / 16) {
    case 1: bcast_filter_nv<1>(xb, off, K, OH, OW, Ws, dyt, ldt, ct); break;
    case 2: bcast_filter_nv<2>(xb, off, K, OH, OW, Ws, dyt, ldt, ct); break;
    case 3: bcast_filter_nv<3>(xb, off, K, OH, OW, Ws, dyt, ldt, ct); break;
    default: bcast_filter_nv<4>(xb, off, K, OH, OW, Ws, dyt, ldt, ct); break;
  }
}

#elif SCOREOOD_TIER_AVX2
/// The AVX-512 bcast_tile on 8 lanes: ct[r][0 : 8 NV] += the outer products of KR taps' x
/// values with dY^T rows, KR x NV accumulators in registers.
template <int KR, int NV>
__attribute__((always_inline)) inline void bcast_tile(const float* xb, const std::ptrdiff_t* off, std::size_t i0,
                                                      std::size_t i1, std::size_t OW, std::size_t Ws, const float* dyt,
                                                      std::size_t ldt, float* ct, std::size_t ldct) {
  __m256 acc[KR][NV];
  const float* xr[KR];
#pragma GCC unroll 12
  for (int r = 0; r < KR; ++r) {
    xr[r] = xb + off[r];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_loadu_ps(ct + r * ldct + 8 * v);
  }
  for (std::size_t i = i0; i < i1; ++i) {
    const float* d = dyt + i * OW * ldt;
    const std::size_t xo = i * Ws;
    for (std::size_t j = 0; j < OW; ++j) {
      __m256 dv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) dv[v] = _mm256_loadu_ps(d + j * ldt + 8 * v);
#pragma GCC unroll 12
      for (int r = 0; r < KR; ++r) {
        const __m256 bx = _mm256_broadcast_ss(xr[r] + xo + j);
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(bx, dv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < KR; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(ct + r * ldct + 8 * v, acc[r][v]);
}

/// ct[K x ldt] += X * dY^T over one image (see the AVX-512 bcast_filter): 6 taps x 16 columns
/// of dY^T per tile (12 accumulators, two dY^T vectors and a broadcast: the 16 ymm registers).
inline void bcast_filter(const float* xb, const std::ptrdiff_t* off, std::size_t K, std::size_t OH, std::size_t OW,
                         std::size_t Ws, const float* dyt, std::size_t ldt, float* ct) {
  constexpr int KR = 6, NV = 2;
  const std::size_t rows = std::max<std::size_t>(1, (std::size_t(16) << 10) / (OW * 16 * sizeof(float)));
  for (std::size_t i0 = 0; i0 < OH; i0 += rows) {
    const std::size_t i1 = std::min(OH, i0 + rows);
    for (std::size_t m0 = 0; m0 < ldt; m0 += 8 * NV) {
      std::size_t k0 = 0;
      for (; k0 + KR <= K; k0 += KR)
        bcast_tile<KR, NV>(xb, off + k0, i0, i1, OW, Ws, dyt + m0, ldt, ct + k0 * ldt + m0, ldt);
      for (; k0 < K; ++k0) bcast_tile<1, NV>(xb, off + k0, i0, i1, OW, Ws, dyt + m0, ldt, ct + k0 * ldt + m0, ldt);
    }
  }
}

/// dyt[q * ldt + m] = dy[m * P + q] for q < P, m < ldt (zero for m >= M; ldt a multiple of 16):
/// 8 x 8 blocks transposed in registers, a last partial block of q one by one.
inline void transpose_dy(const float* dy, std::size_t M, std::size_t P, float* dyt, std::size_t ldt) {
  const std::size_t full = P / 8 * 8;
  for (std::size_t m0 = 0; m0 < ldt; m0 += 8) {
    for (std::size_t q0 = 0; q0 < full; q0 += 8) {
      __m256 r[8], t[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i)
        r[i] = m0 + std::size_t(i) < M ? _mm256_loadu_ps(dy + (m0 + std::size_t(i)) * P + q0) : _mm256_setzero_ps();
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
      }
#pragma GCC unroll 2
      for (int i = 0; i < 2; ++i) {
        r[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
      }
      // r[4i + k], half h: column 4h + k of rows 4i .. 4i + 3.
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        _mm256_storeu_ps(dyt + (q0 + std::size_t(k)) * ldt + m0, _mm256_permute2f128_ps(r[k], r[4 + k], 0x20));
        _mm256_storeu_ps(dyt + (q0 + 4 + std::size_t(k)) * ldt + m0, _mm256_permute2f128_ps(r[k], r[4 + k], 0x31));
      }
    }
    for (std::size_t q = full; q < P; ++q)
      for (std::size_t i = 0; i < 8; ++i) dyt[q * ldt + m0 + i] = m0 + i < M ? dy[(m0 + i) * P + q] : 0.f;
  }
}
#endif

#if SCOREOOD_TIER_AVX512
/// dyt[q * ldt + m] = dy[m * P + q] for q < P, m < ldt (zero for m >= M; ldt a multiple of 16):
/// 16 x 16 blocks transposed in registers (a scalar transpose cost ~15 % of the filter gradient).
inline void transpose_dy(const float* dy, std::size_t M, std::size_t P, float* dyt, std::size_t ldt) {
  for (std::size_t m0 = 0; m0 < ldt; m0 += 16)
    for (std::size_t q0 = 0; q0 < P; q0 += 16) {
      const std::size_t nq = std::min<std::size_t>(16, P - q0);
      const __mmask16 lm = lane_range(0, std::ptrdiff_t(nq));
      __m512 r[16], t[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        r[i] = m0 + std::size_t(i) < M ? _mm512_maskz_loadu_ps(lm, dy + (m0 + std::size_t(i)) * P + q0)
                                       : _mm512_setzero_ps();
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
      }
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
      }
      // r[4i + k], 128-bit lane L: column 4L + k of rows 4i .. 4i + 3.
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const __m512 a = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88), b = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xDD);
        const __m512 c = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88),
                     d = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xDD);
        t[k] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[8 + k] = _mm512_shuffle_f32x4(a, c, 0xDD);
        t[4 + k] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[12 + k] = _mm512_shuffle_f32x4(b, d, 0xDD);
      }
      for (std::size_t c = 0; c < nq; ++c) _mm512_storeu_ps(dyt + (q0 + c) * ldt + m0, t[c]);
    }
}
#endif
}  // namespace detail

/// Fills `p` for geometry g with M output channels (tables grow only: no allocation in steady state).
inline void plan_phase_backward(const ConvGeometry& g, std::size_t M, PhaseBackwardPlan& p) {
  const std::size_t S = g.stride, k = g.kernel, dl = g.dilation, pd = g.pad;
  p.S = S;
  p.M = M;
  p.C = g.channels;
  p.K = g.rows();
  p.P = g.cols();
  p.OH = g.out_h;
  p.OW = g.out_w;
  p.H = g.height;
  p.W = g.width;
  p.pad = pd;
  const std::size_t Hp = g.height + 2 * pd, Wp = g.width + 2 * pd;

  // backward-filter: only the phases some tap reads are built (a 1x1 stride-2 kernel reads one).
  p.phase_index.assign(S * S, -1);
  for (std::size_t ky = 0; ky < k; ++ky)
    for (std::size_t kx = 0; kx < k; ++kx) p.phase_index[(ky * dl % S) * S + kx * dl % S] = 0;
  int used = 0;
  for (auto& q : p.phase_index)
    if (q == 0) q = used++;
  p.eigen_filter = k == 1;
  p.Hs = detail::ceil_div(Hp, S);
  p.Ws = detail::ceil_div(Wp, S);
  p.phase = p.Hs * p.Ws;
  p.nph = std::size_t(used);
  p.xsize = p.C * p.nph * p.phase;
  // Taps sorted by offset: a tile of consecutive taps then reads one or two phase planes,
  // not all of them (measured 10-20 % faster); the columns are permuted back once per call.
  std::vector<std::ptrdiff_t>& off = p.offs;
  off.resize(p.K);
  for (std::size_t c = 0; c < p.C; ++c)
    for (std::size_t ky = 0; ky < k; ++ky)
      for (std::size_t kx = 0; kx < k; ++kx) {
        const std::size_t ty = ky * dl, tx = kx * dl;
        off[(c * k + ky) * k + kx] =
            std::ptrdiff_t((c * p.nph + std::size_t(p.phase_index[(ty % S) * S + tx % S])) * p.phase +
                           (ty / S) * p.Ws + tx / S);
      }
  p.perm.resize(p.K);
  for (std::size_t i = 0; i < p.K; ++i) p.perm[i] = i;
  // Offsets are distinct (each tap its own phase position): std::sort, which does not allocate.
  std::sort(p.perm.begin(), p.perm.end(), [&](std::size_t i, std::size_t j) { return off[i] < off[j]; });
  thread_local std::vector<std::ptrdiff_t> unsorted;
  unsorted.assign(off.begin(), off.end());
  for (std::size_t i = 0; i < p.K; ++i) off[i] = unsorted[p.perm[i]];

  // backward-data: phase (a, b) of dx holds the padded positions (S*u + a, S*v + b) inside dx.
  p.phases.assign(S * S, {});
  p.taps.clear();
  std::size_t v0max = 0, nvmax = 0;
  for (std::size_t a = 0; a < S; ++a)
    for (std::size_t b = 0; b < S; ++b) {
      auto& ph = p.phases[a * S + b];
      ph.u0 = pd > a ? detail::ceil_div(pd - a, S) : 0;
      const std::size_t u1 = g.height + pd > a ? detail::ceil_div(g.height + pd - a, S) : 0;
      ph.nu = u1 > ph.u0 ? u1 - ph.u0 : 0;
      ph.v0 = pd > b ? detail::ceil_div(pd - b, S) : 0;
      const std::size_t v1 = g.width + pd > b ? detail::ceil_div(g.width + pd - b, S) : 0;
      ph.nv = v1 > ph.v0 ? v1 - ph.v0 : 0;
      ph.tap_begin = p.taps.size();
      for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx)
          if (ky * dl % S == a && kx * dl % S == b) p.taps.push_back({ky, kx, ky * dl / S, kx * dl / S});
      ph.taps = p.taps.size() - ph.tap_begin;
      if (ph.nu == 0 || ph.nv == 0) ph.taps = 0;  // nothing of dx here
      v0max = std::max(v0max, ph.v0);
      nvmax = std::max(nvmax, ph.nv);
    }
  // Borders of the dY copy: every dY index a valid output reads outside dY must be a zero.
  // Row u - r < 0 reads the Tp rows on top (one more when the column also runs left, into the
  // previous row's gap); row u - r >= OH the Bp rows below; column v - s outside [0, OW) the
  // `gap` zeros between rows (the previous row's when negative).
  std::ptrdiff_t top = 0, bottom = 0, gap = 0;
  for (const auto& ph : p.phases)
    for (std::size_t t = ph.tap_begin; t < ph.tap_begin + ph.taps; ++t) {
      const auto& tp = p.taps[t];
      const std::ptrdiff_t r = std::ptrdiff_t(tp.r), s = std::ptrdiff_t(tp.s);
      const std::ptrdiff_t v0 = std::ptrdiff_t(ph.v0), u0 = std::ptrdiff_t(ph.u0);
      top = std::max(top, r - u0 + (s > v0 ? 1 : 0));
      bottom = std::max(bottom, u0 + std::ptrdiff_t(ph.nu) - r - std::ptrdiff_t(p.OH));
      gap = std::max({gap, s - v0, v0 + std::ptrdiff_t(ph.nv) - s - std::ptrdiff_t(p.OW)});
    }
  p.Tp = std::size_t(top);
  p.Wd = std::max(p.OW + std::size_t(gap), nvmax);
  p.Hd = p.Tp + p.OH + std::size_t(bottom);
  p.dplane = p.Hd * p.Wd;
  p.dslack = v0max + 16;
  p.dq_in_place = p.Tp == 0 && bottom == 0 && p.Wd == p.OW && v0max == 0;
  p.dsize = p.dq_in_place ? 0 : M * p.dplane + p.dslack;
  const auto& ph0 = p.phases[0];
  p.dx_direct = S == 1 && ph0.u0 == 0 && ph0.nu == g.height && ph0.v0 == 0 && p.Wd == g.width;
  p.offd.clear();
  p.out_size = 0;
  p.packed_size = 0;
  for (auto& ph : p.phases) {
    ph.pack_begin = p.packed_size;
    ph.out_begin = p.out_size;
    ph.off_begin = p.offd.size();
    if (ph.taps == 0) continue;
    p.packed_size += packed_lhs_size<float>(p.C, M * ph.taps);
    p.out_size += p.C * ph.nu * p.Wd;
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t t = ph.tap_begin; t < ph.tap_begin + ph.taps; ++t) {
        const auto& tp = p.taps[t];
        p.offd.push_back(std::ptrdiff_t(m * p.dplane) +
                         (std::ptrdiff_t(ph.u0) - std::ptrdiff_t(tp.r) + std::ptrdiff_t(p.Tp)) * std::ptrdiff_t(p.Wd) +
                         std::ptrdiff_t(ph.v0) - std::ptrdiff_t(tp.s));
      }
  }
}

/// Packs, per phase with taps, A[c][(m, tap)] = w[m][c][ky][kx] (C rows) into `out` (plan.packed_size).
inline void pack_phase_weights(const PhaseBackwardPlan& p, const float* w, std::size_t k, float* out) {
  thread_local std::vector<float> tmp;
  for (const auto& ph : p.phases) {
    if (ph.taps == 0) continue;
    const std::size_t cols = p.M * ph.taps;
    tmp.resize(p.C * cols);
    for (std::size_t c = 0; c < p.C; ++c)
      for (std::size_t m = 0; m < p.M; ++m)
        for (std::size_t t = 0; t < ph.taps; ++t) {
          const auto& tp = p.taps[ph.tap_begin + t];
          tmp[c * cols + m * ph.taps + t] = w[((m * p.C + c) * k + tp.ky) * k + tp.kx];
        }
    pack_lhs(tmp.data(), p.C, cols, cols, 1, out + ph.pack_begin);
  }
}

/// The used phases of one zero-padded image: phase q of channel c at xp + (c * nph + q) * phase.
inline void split_phases(const PhaseBackwardPlan& p, const float* x, float* xp) {
  const std::size_t S = p.S;
#if SCOREOOD_TIER_AVX512
  if (S == 2) {
    // Padded input row 2i + a gives row i of phases (a, 0) and (a, 1): its padded columns
    // [32t, 32t + 32) loaded as two vectors (zeros outside x), even and odd lanes permuted out.
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const std::ptrdiff_t pd = std::ptrdiff_t(p.pad), W = std::ptrdiff_t(p.W);
    const __m512 zero = _mm512_setzero_ps();
    for (std::size_t c = 0; c < p.C; ++c)
      for (std::size_t a = 0; a < 2; ++a) {
        const int q0 = p.phase_index[a * 2], q1 = p.phase_index[a * 2 + 1];
        if (q0 < 0 && q1 < 0) continue;
        float* r0 = q0 < 0 ? nullptr : xp + (c * p.nph + std::size_t(q0)) * p.phase;
        float* r1 = q1 < 0 ? nullptr : xp + (c * p.nph + std::size_t(q1)) * p.phase;
        for (std::size_t i = 0; i < p.Hs; ++i, r0 = r0 ? r0 + p.Ws : r0, r1 = r1 ? r1 + p.Ws : r1) {
          const std::ptrdiff_t yy = std::ptrdiff_t(2 * i + a) - pd;
          const bool data = yy >= 0 && yy < std::ptrdiff_t(p.H);
          const float* src = data ? x + (c * p.H + std::size_t(yy)) * p.W : nullptr;
          for (std::size_t j = 0; j < p.Ws; j += 16) {
            __m512 lo = zero, hi = zero;
            if (data) {
              const std::ptrdiff_t s0 = std::ptrdiff_t(2 * j) - pd;  // x column of lane 0
              const __mmask16 mlo = detail::lane_range(-s0, W - s0), mhi = detail::lane_range(-s0 - 16, W - s0 - 16);
              if (mlo) lo = _mm512_maskz_loadu_ps(mlo, src + s0);
              if (mhi) hi = _mm512_maskz_loadu_ps(mhi, src + s0 + 16);
            }
            const __mmask16 st = detail::lane_range(0, std::ptrdiff_t(p.Ws - j));
            if (r0) _mm512_mask_storeu_ps(r0 + j, st, _mm512_permutex2var_ps(lo, even, hi));
            if (r1) _mm512_mask_storeu_ps(r1 + j, st, _mm512_permutex2var_ps(lo, odd, hi));
          }
        }
      }
    return;
  }
#endif
  for (std::size_t c = 0; c < p.C; ++c)
    for (std::size_t a = 0; a < S; ++a)
      for (std::size_t b = 0; b < S; ++b) {
        const int q = p.phase_index[a * S + b];
        if (q < 0) continue;
        float* ph = xp + (c * p.nph + std::size_t(q)) * p.phase;
        for (std::size_t i = 0; i < p.Hs; ++i) {
          const std::ptrdiff_t yy = std::ptrdiff_t(S * i + a) - std::ptrdiff_t(p.pad);
          float* row = ph + i * p.Ws;
          if (yy < 0 || yy >= std::ptrdiff_t(p.H)) {
            std::fill(row, row + p.Ws, 0.f);
            continue;
          }
          detail::gather_row(x + (c * p.H + std::size_t(yy)) * p.W, p.W, S, std::ptrdiff_t(b) - std::ptrdiff_t(p.pad),
                             row, p.Ws);
        }
      }
}

/// dx of one image from its bordered dY copy `dq`: one GEMM per phase into `out`
/// (p.out_size values), then interleaved into dx (C x H x W, every value written).
inline void phase_backward_data(const PhaseBackwardPlan& p, const float* packed, const float* dq, float* out,
                                float* dx) {
  const std::size_t S = p.S, Wd = p.Wd, H = p.H, W = p.W, pd = p.pad;
  for (const auto& ph : p.phases) {
    if (ph.taps == 0) continue;
    const std::size_t N = ph.nu * Wd;
    gemm_packed_offsets<float>(packed + ph.pack_begin, p.C, p.M * ph.taps, dq, p.offd.data() + ph.off_begin, N,
                               p.dx_direct ? dx : out + ph.out_begin, N, false);
  }
  if (p.dx_direct) return;
  // Source row of phase (a, b) for channel c and phase row u (null: a phase without taps, zeros).
  auto src = [&](std::size_t a, std::size_t b, std::size_t c, std::size_t u) -> const float* {
    const auto& ph = p.phases[a * S + b];
    if (ph.taps == 0) return nullptr;
    return out + ph.out_begin + (c * ph.nu + (u - ph.u0)) * Wd;
  };
#if SCOREOOD_TIER_AVX512
  const __m512i lo_idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi_idx = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  const __mmask16 mf = detail::lane_range(0, std::ptrdiff_t((W + 1) / 2)), ms = detail::lane_range(0, std::ptrdiff_t(W / 2));
  const __mmask16 st0 = detail::lane_range(0, std::ptrdiff_t(W)), st1 = detail::lane_range(0, std::ptrdiff_t(W) - 16);
#endif
  for (std::size_t c = 0; c < p.C; ++c)
    for (std::size_t a = 0; a < S; ++a) {
      const auto& pa = p.phases[a * S];
      for (std::size_t u = pa.u0; u < pa.u0 + pa.nu; ++u) {
        float* row = dx + (c * H + (S * u + a - pd)) * W;
        if (S == 1) {
          std::memcpy(row, src(0, 0, c, u), W * sizeof(float));
        } else if (S == 2) {
          // Column x is padded column x + p: phase (x + p) mod 2, and both phases start at index 0.
          const std::size_t b0 = pd % 2;
#if SCOREOOD_TIER_AVX512
          if (W <= 32) {
            // One or two output vectors per row, masks fixed per call (rows are short: 7..32).
            const float* f = src(a, b0, c, u);
            const float* g2 = src(a, 1 - b0, c, u);
            const __m512 fv = f ? _mm512_maskz_loadu_ps(mf, f) : _mm512_setzero_ps();
            const __m512 sv = g2 ? _mm512_maskz_loadu_ps(ms, g2) : _mm512_setzero_ps();
            _mm512_mask_storeu_ps(row, st0, _mm512_permutex2var_ps(fv, lo_idx, sv));
            if (W > 16) _mm512_mask_storeu_ps(row + 16, st1, _mm512_permutex2var_ps(fv, hi_idx, sv));
            continue;
          }
#endif
          detail::interleave2(src(a, b0, c, u), src(a, 1 - b0, c, u), row, W);
        } else {
          for (std::size_t x = 0; x < W; ++x) {
            const std::size_t xx = x + pd, b = xx % S;
            const float* s = src(a, b, c, u);
            row[x] = s ? s[xx / S - p.phases[a * S + b].v0] : 0.f;
          }
        }
      }
    }
}

/// dW += dL/dW, db += dL/db (db may be null) and, when dx is not null, dx = dL/dx for a
/// batch of N images: x [N, C, H, W], dy [N, M, OH, OW], w [M, C, k, k]. The batch is split
/// across threads (per-thread accumulators reduced in parallel). Needs phase_backward_available<float>().
inline void conv_backward_phases(const ConvGeometry& g, std::size_t N, std::size_t M, const float* w, const float* x,
                                 const float* dy, float* dx, float* gw, float* gb) {
#if SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2
  constexpr int kMaxThreads = 256;
  thread_local PhaseBackwardPlan plan;
  PhaseBackwardPlan& p = plan;
  plan_phase_backward(g, M, p);
  const std::size_t K = p.K, P = p.P, acc_size = M * K + (gb ? M : 0);
  const int nt = std::min(kMaxThreads, threads_for(N, double(M) * double(K) * double(P) * (dx ? 2 : 1)));
  float* packed = nullptr;
  if (dx) {
    packed = scratch<float>(Scratch::packed, p.packed_size);  // the calling thread's; read by all
    pack_phase_weights(p, w, g.kernel, packed);
  }
  const std::size_t Hs = p.Hs, Ws = p.Ws, OH = p.OH, OW = p.OW;
  // dY^T rows for the broadcast kernel: M padded to whole vectors (to 64-column blocks past 64).
  const std::size_t ldt = M <= 64 ? (M + 15) / 16 * 16 : (M + 63) / 64 * 64;
  float* accs[kMaxThreads] = {};
  const std::size_t isz = g.image_size(), osz = M * P;
  parallel_region(nt, [&](int t, int T_) {
    const auto [n0, n1] = split_range(N, t, T_);
    float* acc_b = gb;
    if (t > 0) {
      float* acc = scratch<float>(Scratch::accum, acc_size);
      std::fill(acc, acc + acc_size, 0.f);
      accs[t] = acc;
      acc_b = gb ? acc + M * K : nullptr;
    }
    float* acc_w = t > 0 ? accs[t] : gw;
    const bool bc = !p.eigen_filter;
    // The broadcast kernel accumulates dW^T with the taps in offset order; added to acc_w at the end.
    float* ct = bc ? scratch<float>(Scratch::phase_acc, K * ldt) : nullptr;
    if (ct) std::fill(ct, ct + K * ldt, 0.f);
    float* dyt = bc ? scratch<float>(Scratch::wide, P * ldt) : nullptr;
    float* xp = scratch<float>(Scratch::col, p.xsize);
    const bool copy_a = !bc && (Hs != OH || Ws != OW);
    float* ap = copy_a ? scratch<float>(Scratch::dcol, M * p.phase) : nullptr;
    float* dq = dx && !p.dq_in_place ? scratch<float>(Scratch::temp, p.dsize) : nullptr;
    float* outb = dx && !p.dx_direct ? scratch<float>(Scratch::phase_out, p.out_size) : nullptr;
    for (std::size_t n = n0; n < n1; ++n) {
      const float* xn = x + n * isz;
      const float* dyn = dy + n * osz;
      split_phases(p, xn, xp);
      if (bc) {
        detail::transpose_dy(dyn, M, P, dyt, ldt);
        detail::bcast_filter(xp, p.offs.data(), K, OH, OW, Ws, dyt, ldt, ct);
      } else {
        // A 1x1 kernel reads one phase plane per channel: one GEMM of depth OH * Ws on Eigen (measured
        // as fast as the broadcast kernel here), dY on the phase grid with zero junk rows and columns.
        const float* a = dyn;
        if (copy_a)
          for (std::size_t m = 0; m < M; ++m)
            pad_planes(dyn + m * P, 1, OH, OW, 0, Hs - OH, 0, Ws - OW, 0, ap + m * p.phase);
        gemm<float>(false, true, M, K, OH * Ws, 1.f, copy_a ? ap : a, copy_a ? p.phase : P, xp, p.phase, 1.f, acc_w,
                    K);
      }
      if (acc_b)
        for (std::size_t m = 0; m < M; ++m) acc_b[m] += kernels::sum(dyn + m * P, P);
      if (dx) {
        if (dq) pad_planes(dyn, M, OH, OW, p.Tp, p.Hd - p.Tp - OH, 0, p.Wd - OW, p.dslack, dq);
        phase_backward_data(p, packed, dq ? dq : dyn, outb, dx + n * isz);
      }
    }
    if (bc)
      for (std::size_t j = 0; j < K; ++j)
        for (std::size_t m = 0; m < M; ++m) acc_w[m * K + p.perm[j]] += ct[j * ldt + m];
    if (T_ > 1) {
      barrier(T_);
      const auto [j0, j1] = split_range(acc_size, t, T_);
      for (int u = 1; u < T_; ++u) {
        const float* a = accs[u];
        const std::size_t mk = M * K, jm = std::min(j1, mk), jb = std::max(j0, mk);
        if (jm > j0) kernels::add_to(gw + j0, a + j0, jm - j0);
        if (j1 > jb) kernels::add_to(gb + (jb - mk), a + jb, j1 - jb);
      }
    }
  });
#else
  (void)g, (void)N, (void)M, (void)w, (void)x, (void)dy, (void)dx, (void)gw, (void)gb;
  throw std::logic_error("conv_backward_phases: needs the native AVX-512 or AVX2 float kernels");
#endif
}

}  // namespace scoreood::cpu::SCOREOOD_CPU_TIER
