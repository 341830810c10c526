/** @file elu.hpp
 *  @brief The CPU's ELU kernels (nn::Elu, and the norms' fused ELU passes).
 *
 *  float: a direct expm1 (Cody-Waite range reduction + a degree-7 polynomial,
 *  expm1_nonpos), as intrinsics on the AVX-512 and AVX2 tiers and as a loop
 *  the compiler vectorises on the baseline tier; one
 *  register pass, no libm call and no buffer (a scalar libm call per element
 *  would cost as much as the convolution next to it). double (gradient checks): the exact expm1. NaN
 *  inputs give NaN. The backward needs only the output: dy/dx = 1 for y > 0,
 *  else y + alpha. */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif

#include <Eigen/Core>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace scoreood::cpu::SCOREOOD_CPU_TIER::elu {


// expm1 on x <= 0 in float, written once as scalar code (vectorised by the
// compiler) and once for AVX-512. x = n ln2 + r with |r| <= ln2/2, then
//   expm1(x) = 2^n expm1(r) + (2^n - 1),
// which keeps expm1's relative accuracy near 0 (n = 0: the polynomial alone)
// and tends to -1 without cancellation for large negative x. Inputs are
// clamped to [-87, 0]: 2^n stays a normal float, and expm1(-87) is -1 in float.
// ln2 is split Cody-Waite style (ln2_hi has 9 significant bits, so n * ln2_hi
// is exact for |n| <= 127 with or without FMA contraction).
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kRoundMagic = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer
inline constexpr float kExpClamp = -87.f;
// Taylor coefficients 1/k! for k = 3..7 (truncation error < 0.3 ulp on |r| <= ln2/2).
inline constexpr float kC3 = 1.f / 6, kC4 = 1.f / 24, kC5 = 1.f / 120, kC6 = 1.f / 720, kC7 = 1.f / 5040;

/// min(x, 0) clamped below at -87; NaN gives -87 (finite, for the conversion to int).
inline float expm1_arg(float x) {
  const float t = 0.f < x ? 0.f : x;
  return kExpClamp < t ? t : kExpClamp;
}

/// expm1(t) for t in [-87, 0]: straight-line arithmetic (no select, so GCC
/// vectorises a loop of it even under the default -ftrapping-math).
inline float expm1_core(float t) {
  const float fn = (t * kLog2e + kRoundMagic) - kRoundMagic;  // round to nearest
  const float r = (t - fn * kLn2Hi) - fn * kLn2Lo;
  float q = kC7;
  q = q * r + kC6;
  q = q * r + kC5;
  q = q * r + kC4;
  q = q * r + kC3;
  q = q * r + 0.5f;
  const float p = r + (r * r) * q;  // expm1(r)
  const float s = std::bit_cast<float>(std::int32_t((std::int32_t(fn) + 127) << 23));  // 2^n, n in [-126, 0]
  return s * p + (s - 1.f);
}

/// expm1(min(x, 0)) (NaN gives expm1(-87) = -1; callers select x back for NaN).
inline float expm1_nonpos(float x) { return expm1_core(expm1_arg(x)); }

#if SCOREOOD_TIER_AVX512
/// expm1(x) for lanes with x <= 0 (the same steps as expm1_nonpos); other
/// lanes (x > 0, NaN) get an unspecified value, which elu_ps discards. The
/// scaling by 2^n is vscalefps: 2^n p exactly, then one rounding in the add,
///   expm1(x) = 2^n p + (2^n - 1).
/// The clamp at -80 keeps 2^n p a normal float (denormals are slow) while
/// expm1 is already -1 in float there.
inline __m512 expm1_neg_ps(__m512 x) {
  const __m512 t = _mm512_max_ps(x, _mm512_set1_ps(-80.f));
  const __m512 magic = _mm512_set1_ps(kRoundMagic);
  const __m512 fn = _mm512_sub_ps(_mm512_fmadd_ps(t, _mm512_set1_ps(kLog2e), magic), magic);
  __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(kLn2Hi), t);
  r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(kLn2Lo), r);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(kC7), r, _mm512_set1_ps(kC6));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(kC5));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(kC4));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(kC3));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0.5f));
  const __m512 p = _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r);
  const __m512 one = _mm512_set1_ps(1.f);
  return _mm512_add_ps(_mm512_scalef_ps(p, fn), _mm512_sub_ps(_mm512_scalef_ps(one, fn), one));
}

/// elu(v) = v <= 0 ? alpha * expm1(v) : v, 16 lanes; NaN lanes keep v.
inline __m512 elu_ps(__m512 v, __m512 alpha) {
  const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LE_OQ);
  return _mm512_mask_mul_ps(v, neg, alpha, expm1_neg_ps(v));
}

/// dy * (y > 0 ? 1 : y + alpha), Elu::backward's expression, 16 lanes.
inline __m512 elu_grad_ps(__m512 d, __m512 yv, __m512 av) {
  const __mmask16 pos = _mm512_cmp_ps_mask(yv, _mm512_setzero_ps(), _CMP_GT_OQ);
  return _mm512_mul_ps(d, _mm512_mask_blend_ps(pos, _mm512_add_ps(yv, av), _mm512_set1_ps(1.f)));
}
#elif SCOREOOD_TIER_AVX2
/// The AVX-512 expm1_neg_ps on 8 lanes: 2^n built from its exponent bits (no
/// vscalefps); p * 2^n is exact, so the fused multiply-add rounds once, as there.
inline __m256 expm1_neg_ps(__m256 x) {
  const __m256 t = _mm256_max_ps(x, _mm256_set1_ps(-80.f));
  const __m256 magic = _mm256_set1_ps(kRoundMagic);
  const __m256 fn = _mm256_sub_ps(_mm256_fmadd_ps(t, _mm256_set1_ps(kLog2e), magic), magic);
  __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(kLn2Hi), t);
  r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(kLn2Lo), r);
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(kC7), r, _mm256_set1_ps(kC6));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(kC5));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(kC4));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(kC3));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.5f));
  const __m256 p = _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, r);
  const __m256i n = _mm256_cvtps_epi32(fn);  // integral already: exact
  const __m256 s = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
  return _mm256_fmadd_ps(p, s, _mm256_sub_ps(s, _mm256_set1_ps(1.f)));
}

/// elu(v) = v <= 0 ? alpha * expm1(v) : v, 8 lanes; NaN lanes keep v.
inline __m256 elu_ps(__m256 v, __m256 alpha) {
  const __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LE_OQ);
  return _mm256_blendv_ps(v, _mm256_mul_ps(alpha, expm1_neg_ps(v)), neg);
}

/// dy * (y > 0 ? 1 : y + alpha), Elu::backward's expression, 8 lanes (NaN y gives NaN).
inline __m256 elu_grad_ps(__m256 d, __m256 yv, __m256 av) {
  const __m256 pos = _mm256_cmp_ps(yv, _mm256_setzero_ps(), _CMP_GT_OQ);
  return _mm256_mul_ps(d, _mm256_blendv_ps(_mm256_add_ps(yv, av), _mm256_set1_ps(1.f), pos));
}
#endif

/// The portable ELU's loops, plain functions so that GCC vectorises them.
namespace elu_loops {
inline void arg(const float* x, float* t, std::size_t n) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) t[i] = expm1_arg(x[i]);
}
inline void core(float* t, std::size_t n) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) t[i] = expm1_core(t[i]);
}
/// y = max(x, 0) + a * expm1(min(x, 0)): x for x > 0 (a * 0 added), a * expm1(x)
/// for x <= 0, NaN for NaN; y may be x (x[i] is read before y[i] is written).
inline void combine(const float* x, const float* t, float* y, std::size_t n, float a) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) y[i] = (x[i] < 0.f ? 0.f : x[i]) + a * t[i];
}
template <class T>
void grad_factor(const T* y, T* f, T* t, std::size_t n, T a) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) f[i] = T(0) < y[i] ? T(1) : a;
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) t[i] = T(0) < y[i] ? T(0) : y[i];
}
template <class T>
void grad_apply(const T* g, const T* f, const T* t, T* d, std::size_t n) {
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) d[i] = g[i] * (f[i] + t[i]);
}
}  // namespace elu_loops

/// d[i] = g[i] * (y[i] > 0 ? 1 : y[i] + a): the ELU backward from its output y;
/// d may be g. With AVX-512 GCC vectorises the one loop (masked operations), on
/// AVX2 it is elu_grad_ps; on the baseline tier GCC keeps the select as control flow (-ftrapping-math), so the
/// select is split: f = y > 0 ? 1 : a, t = min(y, 0), then d = g * (f + t),
/// which is exactly g * 1 or g * (y + a).
template <class T>
void grad(const T* y, const T* g, T* d, std::size_t n, T a) {
#if SCOREOOD_TIER_AVX512
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) {
    const T yv = y[i];
    d[i] = g[i] * (yv > T(0) ? T(1) : yv + a);  // a select of values
  }
#else
#if SCOREOOD_TIER_AVX2
  if constexpr (std::is_same_v<T, float>) {
    const __m256 av = _mm256_set1_ps(a);
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(d + i, elu_grad_ps(_mm256_loadu_ps(g + i), _mm256_loadu_ps(y + i), av));
    if (i < n) {
      const __m256i m = detail::avx2_mask(std::ptrdiff_t(n - i));
      detail::avx2_store_first(d + i, elu_grad_ps(_mm256_maskload_ps(g + i, m), _mm256_maskload_ps(y + i, m), av),
                               std::ptrdiff_t(n - i));
    }
    return;
  }
#endif
  constexpr std::size_t B = 64;
  alignas(64) T f[B], t[B];
  for (std::size_t i0 = 0; i0 < n; i0 += B) {
    const std::size_t len = std::min(B, n - i0);
    elu_loops::grad_factor(y + i0, f, t, len, a);
    elu_loops::grad_apply(g + i0, f, t, d + i0, len);
  }
#endif
}

/// y[i] = elu(x[i]) in float for n values; y may be x.
inline void apply_float(const float* x, float* y, std::size_t n, float a) {
  std::size_t i = 0;
#if SCOREOOD_TIER_AVX512
  const __m512 av = _mm512_set1_ps(a);
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, elu_ps(_mm512_loadu_ps(x + i), av));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, elu_ps(_mm512_maskz_loadu_ps(m, x + i), av));
  }
#elif SCOREOOD_TIER_AVX2
  const __m256 av = _mm256_set1_ps(a);
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, elu_ps(_mm256_loadu_ps(x + i), av));
  if (i < n)
    detail::avx2_store_first(y + i, elu_ps(_mm256_maskload_ps(x + i, detail::avx2_mask(std::ptrdiff_t(n - i))), av),
                             std::ptrdiff_t(n - i));
#else
  // Portable: three simple loops over blocks of 64 (GCC does not if-convert a
  // select that feeds the exp arithmetic under -ftrapping-math, so the selects
  // get loops of their own); the block stays in L1.
  constexpr std::size_t B = 64;
  alignas(64) float t[B];
  for (; i < n; i += B) {
    const std::size_t len = std::min(B, n - i);
    elu_loops::arg(x + i, t, len);
    elu_loops::core(t, len);
    elu_loops::combine(x + i, t, y + i, len, a);
  }
#endif
  (void)i;
}


/// y[i] = elu(x[i]) for n contiguous values (y may be x): the kernel of forward(),
/// public so that a layer can apply it to data still in cache.
template <class T>
void apply(const T* xd, T* yd, std::size_t n, T a) {
  if constexpr (std::is_same_v<T, float>) {
    apply_float(xd, yd, n, a);
  } else {
    // double: Eigen's accurate expm1 in blocks (x[i] is read before y[i] is
    // written, so in place is safe); min(x, 0) keeps exp finite on large inputs.
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    constexpr std::size_t B = 512;
    alignas(64) T tmp[B];
    for (std::size_t i0 = 0; i0 < n; i0 += B) {
      const std::size_t len = std::min(B, n - i0);
      Eigen::Map<Arr> tv(tmp, Eigen::Index(len));
      tv = a * Eigen::Map<const Arr>(xd + i0, Eigen::Index(len)).min(T(0)).expm1();
      const T* xs = xd + i0;
      T* ys = yd + i0;
      for (std::size_t i = 0; i < len; ++i) ys[i] = xs[i] <= T(0) ? tmp[i] : xs[i];  // NaN stays NaN
    }
  }
}


/// y = elu(x) over a tensor (y already of x's shape; may be x).
template <class T>
void forward(const Tensor4<T>& x, Tensor4<T>& y, T a) {
  const T* xd = x.data();
  T* yd = y.data();
  cpu::detail::chunked(x.size(), [=](std::size_t b, std::size_t e) { apply(xd + b, yd + b, e - b, a); });
}

/// dx = dy * elu'(x) from the forward's output y (dx already of dy's shape; may be dy).
template <class T>
void backward(const T* y, const Tensor4<T>& dy, Tensor4<T>& dx, T a) {
  const T* g = dy.data();
  T* d = dx.data();
  cpu::detail::chunked(dy.size(), [=](std::size_t b, std::size_t e) { grad(y + b, g + b, d + b, e - b, a); });
}

}  // namespace scoreood::cpu::SCOREOOD_CPU_TIER::elu
