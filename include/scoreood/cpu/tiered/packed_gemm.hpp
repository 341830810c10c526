/** @file packed_gemm.hpp
 *  @brief C += A * B with A packed once and reused: the GEMM of convolutions.
 *
 *  A convolution multiplies the same small weight matrix (A: out x in*k*k, or
 *  its transpose for backward-data) by one unfolded image after another (B,
 *  row-major, rows contiguous). pack_lhs() lays A out once per layer call and
 *  every image reuses it. With AVX-512 and float, gemm_packed() is a register-
 *  blocked kernel (8 rows x 48 columns of C in 24 zmm accumulators, B read
 *  straight from the unfolded image, K blocked for L1): measured ~1.3x Eigen's
 *  GEMM at these shapes (Eigen 3.4's AVX-512 kernel keeps half the registers
 *  idle). On the AVX2 tier it is the same loop around a 6 x 16 kernel (12 ymm
 *  accumulators, the 16 registers of AVX2). On the baseline tier, and for
 *  double, it is Eigen's GEMM on a plain copy of A. Each tier of
 *  cpu/kernels.hpp packs for its own kernel (panels of 8 or 6 rows). */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace scoreood::cpu::SCOREOOD_CPU_TIER {

/// True when gemm_packed<T> (and the offsets / NT products) use this tier's hand-written kernel.
template <class T>
constexpr bool packed_gemm_is_native() {
#if SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2
  return std::is_same_v<T, float>;
#else
  return false;
#endif
}

namespace detail {
#if SCOREOOD_TIER_AVX2
inline constexpr std::size_t kPackMR = 6;    ///< rows of C per micro-tile
inline constexpr std::size_t kPackKC = 256;  ///< K block: a 256 x 16 B tile (16 KB) stays in L1
#else
inline constexpr std::size_t kPackMR = 8;    ///< rows of C per micro-tile
inline constexpr std::size_t kPackKC = 128;  ///< K block: a 128 x 48 B tile (24 KB) stays in L1
#endif
}  // namespace detail

/// Elements of the buffer pack_lhs() fills for an M x K matrix.
template <class T>
std::size_t packed_lhs_size(std::size_t M, std::size_t K) {
  if constexpr (packed_gemm_is_native<T>()) return (M + detail::kPackMR - 1) / detail::kPackMR * detail::kPackMR * K;
  else return M * K;
}

/// Packs A (M x K, element (m, k) at a[m * rs + k * cs]) for gemm_packed().
/// rs = K, cs = 1 is A itself; rs = 1, cs = M' packs the transpose of a row-major M' x ... matrix.
template <class T>
void pack_lhs(const T* a, std::size_t M, std::size_t K, std::size_t rs, std::size_t cs, T* out) {
  if constexpr (packed_gemm_is_native<T>()) {
    // Panels of MR rows, k-major inside a panel: the kernel reads MR consecutive values per k.
    constexpr std::size_t MR = detail::kPackMR;
    for (std::size_t m0 = 0; m0 < M; m0 += MR) {
      T* panel = out + m0 * K;
      const std::size_t rows = std::min(MR, M - m0);
      for (std::size_t k = 0; k < K; ++k)
        for (std::size_t r = 0; r < MR; ++r) panel[k * MR + r] = r < rows ? a[(m0 + r) * rs + k * cs] : T(0);
    }
  } else {
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t k = 0; k < K; ++k) out[m * K + k] = a[m * rs + k * cs];
  }
}

namespace detail {
/// Rows of B a fixed stride apart (an unfolded image).
struct StridedRows {
  const float* b;
  std::size_t ldb;
  const float* operator()(std::size_t k) const { return b + k * ldb; }
};
/// Rows of B at arbitrary offsets: row (c, ky, kx) of a stride-1 convolution
/// is the zero-padded input plane c shifted by (ky, kx), read in place.
struct OffsetRows {
  const float* b;
  const std::ptrdiff_t* off;
  const float* operator()(std::size_t k) const { return b + off[k]; }
};
}  // namespace detail

#if SCOREOOD_TIER_AVX512
namespace detail {
/// C[8 x (16*(NV-1) + popcount(mask))] (+)= Apanel[kc x 8] * B[kc x ...].
/// The 24 accumulators are named variables, not an array: GCC 12 keeps an
/// array of __m512 in memory and stores it every iteration (measured 2x slower).

template <int NV, class Rows>
__attribute__((always_inline)) inline void kernel_8x16nv(const float* a, Rows brow, std::size_t kc, float* c,
                                                         std::size_t ldc, __mmask16 mask, bool load_c) {
  static_assert(NV >= 1 && NV <= 3);
  // Column j of the tile: full vectors except the last, which is masked.
  auto ld = [&](const float* p, int j) {
    return j == NV - 1 ? _mm512_maskz_loadu_ps(mask, p + 16 * j) : _mm512_loadu_ps(p + 16 * j);
  };
  auto st = [&](float* p, int j, __m512 v) {
    if (j == NV - 1) _mm512_mask_storeu_ps(p + 16 * j, mask, v);
    else _mm512_storeu_ps(p + 16 * j, v);
  };
#define SCOREOOD_ACC_DECL(r)                                                        \
  __m512 a##r##0 = load_c ? ld(c + r * ldc, 0) : _mm512_setzero_ps();               \
  __m512 a##r##1 = (NV > 1 && load_c) ? ld(c + r * ldc, 1) : _mm512_setzero_ps();   \
  __m512 a##r##2 = (NV > 2 && load_c) ? ld(c + r * ldc, 2) : _mm512_setzero_ps();
  SCOREOOD_ACC_DECL(0) SCOREOOD_ACC_DECL(1) SCOREOOD_ACC_DECL(2) SCOREOOD_ACC_DECL(3)
  SCOREOOD_ACC_DECL(4) SCOREOOD_ACC_DECL(5) SCOREOOD_ACC_DECL(6) SCOREOOD_ACC_DECL(7)
#undef SCOREOOD_ACC_DECL
  for (std::size_t k = 0; k < kc; ++k) {
    const float* bk = brow(k);
    const __m512 b0 = ld(bk, 0);
    const __m512 b1 = NV > 1 ? ld(bk, 1) : b0;
    const __m512 b2 = NV > 2 ? ld(bk, 2) : b0;
    const float* ak = a + k * 8;
#define SCOREOOD_FMA_ROW(r)                                    \
  {                                                            \
    const __m512 av = _mm512_set1_ps(ak[r]);                   \
    a##r##0 = _mm512_fmadd_ps(av, b0, a##r##0);                \
    if constexpr (NV > 1) a##r##1 = _mm512_fmadd_ps(av, b1, a##r##1); \
    if constexpr (NV > 2) a##r##2 = _mm512_fmadd_ps(av, b2, a##r##2); \
  }
    SCOREOOD_FMA_ROW(0) SCOREOOD_FMA_ROW(1) SCOREOOD_FMA_ROW(2) SCOREOOD_FMA_ROW(3)
    SCOREOOD_FMA_ROW(4) SCOREOOD_FMA_ROW(5) SCOREOOD_FMA_ROW(6) SCOREOOD_FMA_ROW(7)
#undef SCOREOOD_FMA_ROW
  }
#define SCOREOOD_ACC_STORE(r)                                  \
  st(c + r * ldc, 0, a##r##0);                                 \
  if constexpr (NV > 1) st(c + r * ldc, 1, a##r##1);           \
  if constexpr (NV > 2) st(c + r * ldc, 2, a##r##2);
  SCOREOOD_ACC_STORE(0) SCOREOOD_ACC_STORE(1) SCOREOOD_ACC_STORE(2) SCOREOOD_ACC_STORE(3)
  SCOREOOD_ACC_STORE(4) SCOREOOD_ACC_STORE(5) SCOREOOD_ACC_STORE(6) SCOREOOD_ACC_STORE(7)
#undef SCOREOOD_ACC_STORE
}

template <int NV, class Rows>
inline void tile_8xn(const float* a, Rows b, std::size_t kc, float* c, std::size_t ldc, std::size_t rows,
                     std::size_t cols, __mmask16 mask, bool load_c) {
  if (rows == 8) {
    kernel_8x16nv<NV>(a, b, kc, c, ldc, mask, load_c);
    return;
  }
  // The last rows of M (< 8): compute a full tile in a buffer, copy the real rows.
  alignas(64) float tile[8 * 48];
  if (load_c)
    for (std::size_t r = 0; r < rows; ++r) std::copy(c + r * ldc, c + r * ldc + cols, tile + r * 48);
  kernel_8x16nv<NV>(a, b, kc, tile, 48, mask, load_c);
  for (std::size_t r = 0; r < rows; ++r) std::copy(tile + r * 48, tile + r * 48 + cols, c + r * ldc);
}
}  // namespace detail
#endif

#if SCOREOOD_TIER_AVX512
namespace detail {
/// The blocked loop of gemm_packed over tiles; B rows through `rows(k)` (then shifted by the column).
template <class RowsAt>
void gemm_packed_avx512(const float* packed, std::size_t M, std::size_t K, RowsAt rows_at, std::size_t N, float* c,
                        std::size_t ldc, bool accumulate) {
  constexpr std::size_t MR = kPackMR, KC = kPackKC, NB = 48;
  if (K == 0) {
    if (!accumulate)
      for (std::size_t m = 0; m < M; ++m) std::fill(c + m * ldc, c + m * ldc + N, 0.f);
    return;
  }
  for (std::size_t k0 = 0; k0 < K; k0 += KC) {
    const std::size_t kc = std::min(KC, K - k0);
    const bool load_c = accumulate || k0 > 0;
    for (std::size_t n0 = 0; n0 < N; n0 += NB) {
      const std::size_t nb = std::min(NB, N - n0);
      const std::size_t nv = (nb + 15) / 16;
      const __mmask16 mask = __mmask16((1u << (nb - 16 * (nv - 1))) - 1u);  // 1..16 lanes
      const auto bt = rows_at(k0, n0);
      for (std::size_t m0 = 0; m0 < M; m0 += MR) {
        const float* ap = packed + m0 * K + k0 * MR;
        float* ct = c + m0 * ldc + n0;
        const std::size_t rows = std::min(MR, M - m0);
        if (nv == 3) tile_8xn<3>(ap, bt, kc, ct, ldc, rows, nb, mask, load_c);
        else if (nv == 2) tile_8xn<2>(ap, bt, kc, ct, ldc, rows, nb, mask, load_c);
        else tile_8xn<1>(ap, bt, kc, ct, ldc, rows, nb, mask, load_c);
      }
    }
  }
}
}  // namespace detail
#endif

#if SCOREOOD_TIER_AVX2
namespace detail {
/// C[6 x (8*(NV-1) + last)] (+)= Apanel[kc x 6] * B[kc x ...]: 12 accumulators, two B
/// vectors and one broadcast in the 16 ymm registers. Full: the last vector has all 8
/// lanes (plain loads and stores); otherwise `mask` holds its `last` lanes for the
/// loads, and its stores go through avx2_store_first. Accumulators are named variables (see the AVX-512 kernel: GCC 12 keeps an
/// array in memory).
template <int NV, bool Full, class Rows>
__attribute__((always_inline)) inline void kernel_6x8nv(const float* a, Rows brow, std::size_t kc, float* c,
                                                        std::size_t ldc, __m256i mask, std::size_t last,
                                                        bool load_c) {
  static_assert(NV >= 1 && NV <= 2);
  auto ld = [&](const float* p, int j) {
    if (Full || j != NV - 1) return _mm256_loadu_ps(p + 8 * j);
    return _mm256_maskload_ps(p + 8 * j, mask);
  };
  auto st = [&](float* p, int j, __m256 v) {
    if (Full || j != NV - 1) _mm256_storeu_ps(p + 8 * j, v);
    else avx2_store_first(p + 8 * j, v, std::ptrdiff_t(last));
  };
#define SCOREOOD_ACC_DECL(r)                                                    \
  __m256 a##r##0 = load_c ? ld(c + r * ldc, 0) : _mm256_setzero_ps();           \
  __m256 a##r##1 = (NV > 1 && load_c) ? ld(c + r * ldc, 1) : _mm256_setzero_ps();
  SCOREOOD_ACC_DECL(0) SCOREOOD_ACC_DECL(1) SCOREOOD_ACC_DECL(2)
  SCOREOOD_ACC_DECL(3) SCOREOOD_ACC_DECL(4) SCOREOOD_ACC_DECL(5)
#undef SCOREOOD_ACC_DECL
  for (std::size_t k = 0; k < kc; ++k) {
    const float* bk = brow(k);
    const __m256 b0 = ld(bk, 0);
    const __m256 b1 = NV > 1 ? ld(bk, 1) : b0;
    const float* ak = a + k * 6;
#define SCOREOOD_FMA_ROW(r)                                               \
  {                                                                       \
    const __m256 av = _mm256_broadcast_ss(ak + r);                        \
    a##r##0 = _mm256_fmadd_ps(av, b0, a##r##0);                           \
    if constexpr (NV > 1) a##r##1 = _mm256_fmadd_ps(av, b1, a##r##1);     \
  }
    SCOREOOD_FMA_ROW(0) SCOREOOD_FMA_ROW(1) SCOREOOD_FMA_ROW(2)
    SCOREOOD_FMA_ROW(3) SCOREOOD_FMA_ROW(4) SCOREOOD_FMA_ROW(5)
#undef SCOREOOD_FMA_ROW
  }
#define SCOREOOD_ACC_STORE(r)                        \
  st(c + r * ldc, 0, a##r##0);                       \
  if constexpr (NV > 1) st(c + r * ldc, 1, a##r##1);
  SCOREOOD_ACC_STORE(0) SCOREOOD_ACC_STORE(1) SCOREOOD_ACC_STORE(2)
  SCOREOOD_ACC_STORE(3) SCOREOOD_ACC_STORE(4) SCOREOOD_ACC_STORE(5)
#undef SCOREOOD_ACC_STORE
}

template <int NV, bool Full, class Rows>
inline void tile_6xn(const float* a, Rows b, std::size_t kc, float* c, std::size_t ldc, std::size_t rows,
                     std::size_t cols, __m256i mask, std::size_t last, bool load_c) {
  if (rows == 6) {
    kernel_6x8nv<NV, Full>(a, b, kc, c, ldc, mask, last, load_c);
    return;
  }
  // The last rows of M (< 6): a full tile in a buffer, the real rows copied.
  alignas(32) float tile[6 * 16];
  if (load_c)
    for (std::size_t r = 0; r < rows; ++r) std::copy(c + r * ldc, c + r * ldc + cols, tile + r * 16);
  kernel_6x8nv<NV, Full>(a, b, kc, tile, 16, mask, last, load_c);
  for (std::size_t r = 0; r < rows; ++r) std::copy(tile + r * 16, tile + r * 16 + cols, c + r * ldc);
}

/// The blocked loop of gemm_packed on AVX2: K blocks of 256, 16-column strips, 6-row panels.
template <class RowsAt>
void gemm_packed_avx2(const float* packed, std::size_t M, std::size_t K, RowsAt rows_at, std::size_t N, float* c,
                      std::size_t ldc, bool accumulate) {
  constexpr std::size_t MR = kPackMR, KC = kPackKC, NB = 16;
  if (K == 0) {
    if (!accumulate)
      for (std::size_t m = 0; m < M; ++m) std::fill(c + m * ldc, c + m * ldc + N, 0.f);
    return;
  }
  for (std::size_t k0 = 0; k0 < K; k0 += KC) {
    const std::size_t kc = std::min(KC, K - k0);
    const bool load_c = accumulate || k0 > 0;
    for (std::size_t n0 = 0; n0 < N; n0 += NB) {
      const std::size_t nb = std::min(NB, N - n0);
      const std::size_t nv = (nb + 7) / 8, last = nb - 8 * (nv - 1);  // 1..8 lanes in the last vector
      const __m256i mask = avx2_mask(std::ptrdiff_t(last));
      const auto bt = rows_at(k0, n0);
      for (std::size_t m0 = 0; m0 < M; m0 += MR) {
        const float* ap = packed + m0 * K + k0 * MR;
        float* ct = c + m0 * ldc + n0;
        const std::size_t rows = std::min(MR, M - m0);
        if (nv == 2) {
          if (last == 8) tile_6xn<2, true>(ap, bt, kc, ct, ldc, rows, nb, mask, last, load_c);
          else tile_6xn<2, false>(ap, bt, kc, ct, ldc, rows, nb, mask, last, load_c);
        } else {
          if (last == 8) tile_6xn<1, true>(ap, bt, kc, ct, ldc, rows, nb, mask, last, load_c);
          else tile_6xn<1, false>(ap, bt, kc, ct, ldc, rows, nb, mask, last, load_c);
        }
      }
    }
  }
}

/// Sum of the 8 lanes.
__attribute__((always_inline)) inline float avx2_reduce_add(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/// The NT tile of gemm_nt_offsets on AVX2 (see the AVX-512 one): MR*NR dot products as
/// vectors over all G images, reduced once at the end.
template <int MR, int NR>
__attribute__((always_inline)) inline void nt_tile_avx2(std::size_t G, const float* const* a, std::size_t lda,
                                                        const float* const* b, const std::ptrdiff_t* off,
                                                        std::size_t L, float* c, std::size_t ldc) {
  __m256 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  const std::size_t full = L / 8 * 8;
  const __m256i tail = avx2_mask(std::ptrdiff_t(L - full));
  for (std::size_t g = 0; g < G; ++g) {
    const float* ag = a[g];
    const float* bg[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) bg[j] = b[g] + off[j];
    // masked: the last, partial vector of L (a constant after inlining).
    auto step = [&](std::size_t p, bool masked) __attribute__((always_inline)) {
      __m256 av[MR];
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
        av[i] = masked ? _mm256_maskload_ps(ag + i * lda + p, tail) : _mm256_loadu_ps(ag + i * lda + p);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        const __m256 bv = masked ? _mm256_maskload_ps(bg[j] + p, tail) : _mm256_loadu_ps(bg[j] + p);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
      }
    };
    for (std::size_t p = 0; p < full; p += 8) step(p, false);
    if (L > full) step(full, true);
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) c[i * ldc + j] += avx2_reduce_add(acc[i][j]);
}
}  // namespace detail
#endif

/// C[M x N] = (accumulate ? C : 0) + A * B, with A packed by pack_lhs(a, M, K, ...)
/// and B row-major K x N (leading dimension ldb), C row-major (ldc). Single-threaded.
template <class T>
void gemm_packed(const T* packed, std::size_t M, std::size_t K, const T* b, std::size_t ldb, std::size_t N, T* c,
                 std::size_t ldc, bool accumulate) {
  if (M == 0 || N == 0) return;
#if SCOREOOD_TIER_AVX512
  if constexpr (std::is_same_v<T, float>) {
    detail::gemm_packed_avx512(
        packed, M, K, [&](std::size_t k0, std::size_t n0) { return detail::StridedRows{b + k0 * ldb + n0, ldb}; }, N,
        c, ldc, accumulate);
    return;
  }
#elif SCOREOOD_TIER_AVX2
  if constexpr (std::is_same_v<T, float>) {
    detail::gemm_packed_avx2(
        packed, M, K, [&](std::size_t k0, std::size_t n0) { return detail::StridedRows{b + k0 * ldb + n0, ldb}; }, N,
        c, ldc, accumulate);
    return;
  }
#endif
  gemm<T>(false, false, M, N, K, T(1), packed, K, b, ldb, accumulate ? T(1) : T(0), c, ldc);
}

/// The same product with row k of B starting at b + off[k] (rows of at least N
/// readable elements): a stride-1 convolution over a zero-padded image without
/// unfolding it. Needs packed_gemm_is_native<T>().
template <class T>
void gemm_packed_offsets(const T* packed, std::size_t M, std::size_t K, const T* b, const std::ptrdiff_t* off,
                         std::size_t N, T* c, std::size_t ldc, bool accumulate) {
#if SCOREOOD_TIER_AVX512
  if constexpr (std::is_same_v<T, float>) {
    if (M == 0 || N == 0) return;
    detail::gemm_packed_avx512(
        packed, M, K, [&](std::size_t k0, std::size_t n0) { return detail::OffsetRows{b + n0, off + k0}; }, N, c, ldc,
        accumulate);
    return;
  }
#elif SCOREOOD_TIER_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (M == 0 || N == 0) return;
    detail::gemm_packed_avx2(
        packed, M, K, [&](std::size_t k0, std::size_t n0) { return detail::OffsetRows{b + n0, off + k0}; }, N, c, ldc,
        accumulate);
    return;
  }
#endif
  (void)packed, (void)M, (void)K, (void)b, (void)off, (void)N, (void)c, (void)ldc, (void)accumulate;
  throw std::logic_error("gemm_packed_offsets: needs the tier's native float kernel");
}

#if SCOREOOD_TIER_AVX512
namespace detail {
/// C[MR x NR] += sum over g, p < L of a_g[m * lda + p] * (b_g + off[k])[p]: MR*NR
/// dot products kept as vectors over all G images and reduced once at the end.
template <int MR, int NR>
__attribute__((always_inline)) inline void nt_tile(std::size_t G, const float* const* a, std::size_t lda,
                                                   const float* const* b, const std::ptrdiff_t* off, std::size_t L,
                                                   float* c, std::size_t ldc) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const std::size_t full = L / 16 * 16;
  const __mmask16 tail = __mmask16((1u << (L - full)) - 1u);
  for (std::size_t g = 0; g < G; ++g) {
    const float* ag = a[g];
    const float* bg[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) bg[j] = b[g] + off[j];
    auto step = [&](std::size_t p, auto load) __attribute__((always_inline)) {
      __m512 av[MR];
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) av[i] = load(ag + i * lda + p);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        const __m512 bv = load(bg[j] + p);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
      }
    };
    for (std::size_t p = 0; p < full; p += 16) step(p, [](const float* q) { return _mm512_loadu_ps(q); });
    if (tail) step(full, [tail](const float* q) { return _mm512_maskz_loadu_ps(tail, q); });
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) c[i * ldc + j] += _mm512_reduce_add_ps(acc[i][j]);
}
}  // namespace detail
#endif

/// C[M x K] += sum_g A_g * B_g^T: A_g row-major M x L (lda), row k of B_g at
/// b[g] + off[k] (L readable elements). The weight gradient of a stride-1
/// convolution, dW += dY * unfold(x)^T, read straight from the zero-padded
/// input of each of G images. Needs packed_gemm_is_native<T>().
template <class T>
void gemm_nt_offsets(std::size_t M, std::size_t K, std::size_t L, std::size_t G, const T* const* a, std::size_t lda,
                     const T* const* b, const std::ptrdiff_t* off, T* c, std::size_t ldc) {
#if SCOREOOD_TIER_AVX512
  if constexpr (std::is_same_v<T, float>) {
  if (L == 0 || G == 0) return;
  constexpr std::size_t MR = 4, NR = 6;
  std::size_t m0 = 0;
  for (; m0 + MR <= M; m0 += MR) {
    const float* am[16];
    for (std::size_t g = 0; g < G; ++g) am[g] = a[g] + m0 * lda;
    std::size_t k0 = 0;
    for (; k0 + NR <= K; k0 += NR) detail::nt_tile<MR, NR>(G, am, lda, b, off + k0, L, c + m0 * ldc + k0, ldc);
    for (; k0 < K; ++k0) detail::nt_tile<MR, 1>(G, am, lda, b, off + k0, L, c + m0 * ldc + k0, ldc);
  }
  for (; m0 < M; ++m0) {
    const float* am[16];
    for (std::size_t g = 0; g < G; ++g) am[g] = a[g] + m0 * lda;
    std::size_t k0 = 0;
    for (; k0 + NR <= K; k0 += NR) detail::nt_tile<1, NR>(G, am, lda, b, off + k0, L, c + m0 * ldc + k0, ldc);
    for (; k0 < K; ++k0) detail::nt_tile<1, 1>(G, am, lda, b, off + k0, L, c + m0 * ldc + k0, ldc);
  }
  return;
  }
#elif SCOREOOD_TIER_AVX2
  if constexpr (std::is_same_v<T, float>) {
    if (L == 0 || G == 0) return;
    constexpr std::size_t MR = 3, NR = 4;  // 12 accumulators, 3 + 1 loads: the 16 ymm registers
    for (std::size_t m0 = 0; m0 < M;) {
      const std::size_t mr = M - m0 >= MR ? MR : 1;
      const float* am[16];
      for (std::size_t g = 0; g < G; ++g) am[g] = a[g] + m0 * lda;
      std::size_t k0 = 0;
      for (; k0 + NR <= K; k0 += NR)
        if (mr == MR) detail::nt_tile_avx2<MR, NR>(G, am, lda, b, off + k0, L, c + m0 * ldc + k0, ldc);
        else detail::nt_tile_avx2<1, NR>(G, am, lda, b, off + k0, L, c + m0 * ldc + k0, ldc);
      for (; k0 < K; ++k0)
        if (mr == MR) detail::nt_tile_avx2<MR, 1>(G, am, lda, b, off + k0, L, c + m0 * ldc + k0, ldc);
        else detail::nt_tile_avx2<1, 1>(G, am, lda, b, off + k0, L, c + m0 * ldc + k0, ldc);
      m0 += mr;
    }
    return;
  }
#endif
  (void)M, (void)K, (void)L, (void)G, (void)a, (void)lda, (void)b, (void)off, (void)c, (void)ldc;
  throw std::logic_error("gemm_nt_offsets: needs the tier's native float kernel");
}

/// Images per gemm_nt_offsets() call at most.
inline constexpr std::size_t kNtMaxGroup = 16;

/// C[M x K] += A (M x L, rows lda apart) * B (K x L, rows ldb apart)^T: gemm_nt_offsets with
/// one image whose row k starts k * ldb after b. Needs packed_gemm_is_native<T>().
template <class T>
void gemm_nt_strided(std::size_t M, std::size_t K, std::size_t L, const T* a, std::size_t lda, const T* b,
                     std::size_t ldb, T* c, std::size_t ldc) {
  thread_local std::vector<std::ptrdiff_t> off;
  off.resize(K);
  for (std::size_t k = 0; k < K; ++k) off[k] = std::ptrdiff_t(k * ldb);
  const T* as[1] = {a};
  const T* bs[1] = {b};
  gemm_nt_offsets<T>(M, K, L, 1, as, lda, bs, off.data(), c, ldc);
}

}  // namespace scoreood::cpu::SCOREOOD_CPU_TIER
