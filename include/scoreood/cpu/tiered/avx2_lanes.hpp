/** @file avx2_lanes.hpp
 *  @brief Partial-vector helpers of the AVX2 tier's kernels: a lane mask for
 *  the last, short vector of a row, a store of its first lanes, and the
 *  widening of float partial sums into double. Empty on the other tiers. */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif

#include <algorithm>
#include <cstddef>

namespace scoreood::cpu::SCOREOOD_CPU_TIER::detail {
#if SCOREOOD_TIER_AVX2
/// Lanes [0, n) of an AVX2 load/store mask (none for n <= 0, all for n >= 8).
__attribute__((always_inline)) inline __m256i avx2_mask(std::ptrdiff_t n) {
  const int k = int(std::clamp<std::ptrdiff_t>(n, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Stores lanes [0, n) of v at p: one store when n >= 8, else through a buffer (vmaskmovps
/// stores are slow on many AVX2 cores, AMD's in particular).
__attribute__((always_inline)) inline void avx2_store_first(float* p, __m256 v, std::ptrdiff_t n) {
  if (n >= 8) {
    _mm256_storeu_ps(p, v);
  } else if (n > 0) {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    std::copy(t, t + n, p);
  }
}

/// Adds the 8 float lanes of v, widened to double, into (lo, hi).
__attribute__((always_inline)) inline void avx2_fold_to_double(__m256 v, __m256d& lo, __m256d& hi) {
  lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

/// The sum of the 8 double lanes of (lo, hi).
__attribute__((always_inline)) inline double avx2_reduce_double(__m256d lo, __m256d hi) {
  const __m256d s = _mm256_add_pd(lo, hi);
  const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}
#endif
}  // namespace scoreood::cpu::SCOREOOD_CPU_TIER::detail
