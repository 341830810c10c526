/** @file instance_norm.hpp
 *  @brief The CPU's instance norm++ kernels (nn::CondInstanceNormPlusPlus,
 *  nn::InstanceNormPlusPlus): forward with the fused ELU, backward with the
 *  fused ELU backward and residual add. The maths is in nn/layers/instance_norm.hpp.
 *
 *  Statistics are fused: one pass per (n, c) plane with a shift by the
 *  plane's first value and double accumulators (no catastrophic cancellation
 *  for planes with large means). Work is parallel over samples; parameter
 *  gradients are reduced serially afterwards, so two samples with the same
 *  level never race on one embedding row.
 *
 *  Float with AVX-512 or AVX2: the statistics keep their partial sums in
 *  registers (two chains, widened to double every 256 values), the output pass
 *  applies the fused ELU in the same registers (cpu::elu::elu_ps), and the
 *  backward recomputes xhat from x in registers in reference mode instead of
 *  writing a per-sample copy (the AVX2 kernels are the AVX-512 ones on 8 lanes).
 *  double and the baseline tier take the portable loops. */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace scoreood::cpu::SCOREOOD_CPU_TIER::norm {

using scoreood::cpu::norm::Cache;
using scoreood::cpu::norm::kNormEps;
using scoreood::cpu::norm::Rows;

/// Lanes of independent partial sums: the compiler vectorises them without
/// -ffast-math, and each lane is short enough that T-precision partials,
/// folded into double every block, lose nothing that matters.
inline constexpr std::size_t kLanes = 16;
inline constexpr std::size_t kBlock = 256;  // elements per partial before folding into double

#if SCOREOOD_TIER_AVX512
/// Adds the 16 float lanes of v, widened to double, into (lo, hi).
inline void fold_to_double(__m512 v, __m512d& lo, __m512d& hi) {
  lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
  hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}
inline double reduce_double(__m512d lo, __m512d hi) { return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi)); }
#endif

/// sum(x - k) and sum((x - k)^2) over a plane.
template <class T>
void plane_sums(const T* x, std::size_t P, T k, double& s, double& s2) {
#if SCOREOOD_TIER_AVX512
  if constexpr (std::is_same_v<T, float>) {
    // x is read once (this pass streams it from memory): two independent
    // register accumulators per sum hide the add latency; each lane holds at
    // most kBlock / 32 terms before it is widened into double, in registers.
    const __m512 kv = _mm512_set1_ps(k);
    __m512d s_lo = _mm512_setzero_pd(), s_hi = s_lo, q_lo = s_lo, q_hi = s_lo;
    std::size_t p = 0;
    while (p < P) {
      const std::size_t e = std::min(P, p + kBlock);
      __m512 a1 = _mm512_setzero_ps(), b1 = a1, a2 = a1, b2 = a1;
      for (; p + 32 <= e; p += 32) {
        const __m512 u = _mm512_sub_ps(_mm512_loadu_ps(x + p), kv);
        const __m512 v = _mm512_sub_ps(_mm512_loadu_ps(x + p + 16), kv);
        a1 = _mm512_add_ps(a1, u);
        a2 = _mm512_fmadd_ps(u, u, a2);
        b1 = _mm512_add_ps(b1, v);
        b2 = _mm512_fmadd_ps(v, v, b2);
      }
      for (; p < e; p += 16) {  // 16 at a time, the last one masked
        const __mmask16 m = e - p >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (e - p)) - 1);
        const __m512 u = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + p), kv);
        a1 = _mm512_add_ps(a1, u);
        a2 = _mm512_fmadd_ps(u, u, a2);
      }
      p = e;
      fold_to_double(_mm512_add_ps(a1, b1), s_lo, s_hi);
      fold_to_double(_mm512_add_ps(a2, b2), q_lo, q_hi);
    }
    s += reduce_double(s_lo, s_hi);
    s2 += reduce_double(q_lo, q_hi);
    return;
  }
#elif SCOREOOD_TIER_AVX2
  if constexpr (std::is_same_v<T, float>) {
    // The AVX-512 loop on 8 lanes; a short last vector is masked after the shift by k.
    const __m256 kv = _mm256_set1_ps(k);
    __m256d s_lo = _mm256_setzero_pd(), s_hi = s_lo, q_lo = s_lo, q_hi = s_lo;
    std::size_t p = 0;
    while (p < P) {
      const std::size_t e = std::min(P, p + kBlock);
      __m256 a1 = _mm256_setzero_ps(), b1 = a1, a2 = a1, b2 = a1;
      for (; p + 16 <= e; p += 16) {
        const __m256 u = _mm256_sub_ps(_mm256_loadu_ps(x + p), kv);
        const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + p + 8), kv);
        a1 = _mm256_add_ps(a1, u);
        a2 = _mm256_fmadd_ps(u, u, a2);
        b1 = _mm256_add_ps(b1, v);
        b2 = _mm256_fmadd_ps(v, v, b2);
      }
      for (; p < e; p += 8) {
        const __m256i m = detail::avx2_mask(std::ptrdiff_t(e - p));
        const __m256 u = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + p, m), kv), _mm256_castsi256_ps(m));
        a1 = _mm256_add_ps(a1, u);
        a2 = _mm256_fmadd_ps(u, u, a2);
      }
      p = e;
      detail::avx2_fold_to_double(_mm256_add_ps(a1, b1), s_lo, s_hi);
      detail::avx2_fold_to_double(_mm256_add_ps(a2, b2), q_lo, q_hi);
    }
    s += detail::avx2_reduce_double(s_lo, s_hi);
    s2 += detail::avx2_reduce_double(q_lo, q_hi);
    return;
  }
#endif
  for (std::size_t b = 0; b < P; b += kBlock) {
    const std::size_t e = std::min(P, b + kBlock);
    T a1[kLanes] = {}, a2[kLanes] = {};
    std::size_t p = b;
    for (; p + kLanes <= e; p += kLanes)
      for (std::size_t j = 0; j < kLanes; ++j) {
        const T v = x[p + j] - k;
        a1[j] += v;
        a2[j] += v * v;
      }
    for (; p < e; ++p) {
      const T v = x[p] - k;
      a1[0] += v;
      a2[0] += v * v;
    }
    for (std::size_t j = 0; j < kLanes; ++j) {
      s += double(a1[j]);
      s2 += double(a2[j]);
    }
  }
}

/// One output plane of the forward: xh = (x - mc) * a (kept in h when h is
/// not null), y = g * xh + shift, then elu(y) when `elu` (alpha = elu_alpha),
/// all in one pass while the plane is in cache.
template <class T>
void norm_out_plane(const T* src, T* dst, T* h, std::size_t P, T mc, T a, T g, T shift, bool elu, T elu_alpha) {
#if SCOREOOD_TIER_AVX512
  if constexpr (std::is_same_v<T, float>) {
    const __m512 mv = _mm512_set1_ps(mc), av = _mm512_set1_ps(a), gv = _mm512_set1_ps(g),
                 sv = _mm512_set1_ps(shift), ev = _mm512_set1_ps(elu_alpha);
    auto step = [&](__m512 v) {
      const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(v, mv), av);
      const __m512 y = _mm512_fmadd_ps(gv, xh, sv);
      return std::pair{xh, elu ? elu::elu_ps(y, ev) : y};
    };
    std::size_t p = 0;
    for (; p + 16 <= P; p += 16) {  // unmasked: full-width stores are cheaper than masked ones
      const auto [xh, y] = step(_mm512_loadu_ps(src + p));
      if (h) _mm512_storeu_ps(h + p, xh);
      _mm512_storeu_ps(dst + p, y);
    }
    if (p < P) {
      const __mmask16 m = __mmask16((1u << (P - p)) - 1);
      const auto [xh, y] = step(_mm512_maskz_loadu_ps(m, src + p));
      if (h) _mm512_mask_storeu_ps(h + p, m, xh);
      _mm512_mask_storeu_ps(dst + p, m, y);
    }
    return;
  }
#elif SCOREOOD_TIER_AVX2
  if constexpr (std::is_same_v<T, float>) {
    const __m256 mv = _mm256_set1_ps(mc), av = _mm256_set1_ps(a), gv = _mm256_set1_ps(g),
                 sv = _mm256_set1_ps(shift), ev = _mm256_set1_ps(elu_alpha);
    auto step = [&](__m256 v) {
      const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(v, mv), av);
      const __m256 y = _mm256_fmadd_ps(gv, xh, sv);
      return std::pair{xh, elu ? elu::elu_ps(y, ev) : y};
    };
    std::size_t p = 0;
    for (; p + 8 <= P; p += 8) {
      const auto [xh, y] = step(_mm256_loadu_ps(src + p));
      if (h) _mm256_storeu_ps(h + p, xh);
      _mm256_storeu_ps(dst + p, y);
    }
    if (p < P) {
      const std::ptrdiff_t left = std::ptrdiff_t(P - p);
      const auto [xh, y] = step(_mm256_maskload_ps(src + p, detail::avx2_mask(left)));
      if (h) detail::avx2_store_first(h + p, xh, left);
      detail::avx2_store_first(dst + p, y, left);
    }
    return;
  }
#endif
  if (h) {
    for (std::size_t p = 0; p < P; ++p) {
      const T xh = (src[p] - mc) * a;
      h[p] = xh;
      dst[p] = g * xh + shift;
    }
  } else {
    for (std::size_t p = 0; p < P; ++p) dst[p] = g * ((src[p] - mc) * a) + shift;
  }
  if (elu) elu::apply(dst, dst, P, elu_alpha);
}

/// sum(dy) and sum(dy * h) over a plane.
template <class T>
void plane_dot_sums(const T* dy, const T* h, std::size_t P, double& s, double& t) {
  s = 0;
  t = 0;
  for (std::size_t b = 0; b < P; b += kBlock) {
    const std::size_t e = std::min(P, b + kBlock);
    T a1[kLanes] = {}, a2[kLanes] = {};
    std::size_t p = b;
    for (; p + kLanes <= e; p += kLanes)
      for (std::size_t j = 0; j < kLanes; ++j) {
        a1[j] += dy[p + j];
        a2[j] += dy[p + j] * h[p + j];
      }
    for (; p < e; ++p) {
      a1[0] += dy[p];
      a2[0] += dy[p] * h[p];
    }
    for (std::size_t j = 0; j < kLanes; ++j) {
      s += double(a1[j]);
      t += double(a2[j]);
    }
  }
}

/// The ELU backward fused with plane_dot_sums (portable path): g = dy * elu'
/// (from its output y, Elu::backward's kernel) is written to `g` and summed
/// as there while the plane is in cache.
template <class T>
void plane_elu_dot_sums(const T* dy, const T* y, T alpha, const T* h, T* g, std::size_t P, double& s, double& t) {
  elu::grad(y, dy, g, P, alpha);
  plane_dot_sums(g, h, P, s, t);
}

/// Forward of IN++ for all samples; `rows(n)` gives sample n's parameters.
/// With a cache, also keeps what backward needs; without one it is read-only.
/// With an `elu_alpha` the output is elu(norm(x)), applied per
/// plane while it is in cache (a fused CIN++ -> ELU: one memory pass less).
/// With `by_reference` (and a cache) the cache keeps a pointer to x instead
/// of a normalised copy (one tensor write less); x must then stay alive and
/// unchanged until backward.
template <class T, class RowsFn>
void forward(const Tensor4<T>& x, Tensor4<T>& y, RowsFn rows, Cache<T>* cache, const T* elu_alpha = nullptr,
             bool by_reference = false) {
  const std::size_t N = x.shape()[0], C = x.shape()[1], P = x.shape()[2] * x.shape()[3];
  if (y.shape() != x.shape()) y.resize(x.shape());
  T* mean_t = nullptr;
  T* rstd_t = nullptr;
  if (cache && by_reference) {
    cache->xhat = Tensor4<T>();
    cache->x = &x;
    cache->x_data = x.data();
    cache->x_shape = shape_of(x);
    cache->mean_t.resize(N * C);
    cache->rstd_t.resize(N * C);
    mean_t = cache->mean_t.data();
    rstd_t = cache->rstd_t.data();
  } else if (cache) {
    cache->x = nullptr;
    if (cache->xhat.shape() != x.shape()) cache->xhat.resize(x.shape());
  }
  if (cache) {
    cache->z.assign(N * C, 0.0);
    cache->inv_std.assign(N * C, 0.0);
    cache->d.assign(N * C, 0.0);
    cache->q.assign(N, 0.0);
  }
  std::vector<double> mu_all(N * C), rstd_all(N * C);
  const T* xp = x.data();
  T* yp = y.data();
  T* hp = cache && !by_reference ? cache->xhat.data() : nullptr;
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t ni = 0; ni < std::ptrdiff_t(N); ++ni) {
    const std::size_t n = std::size_t(ni);
    double* mu = mu_all.data() + n * C;
    double* rstd = rstd_all.data() + n * C;
    for (std::size_t c = 0; c < C; ++c) {
      // One pass, shifted by the first value so a large mean does not cancel the variance.
      const T* src = xp + (n * C + c) * P;
      const T k = src[0];
      double s = 0, s2 = 0;
      plane_sums(src, P, k, s, s2);
      const double m = s / double(P);
      const double var = std::max(0.0, s2 / double(P) - m * m);
      mu[c] = double(k) + m;
      rstd[c] = 1.0 / std::sqrt(var + kNormEps);
    }
    double M = 0;
    for (std::size_t c = 0; c < C; ++c) M += mu[c];
    M /= double(C);
    double V = 0;
    for (std::size_t c = 0; c < C; ++c) V += (mu[c] - M) * (mu[c] - M);
    V /= double(C - 1);  // unbiased, as torch.var
    const double q = 1.0 / std::sqrt(V + kNormEps);
    const Rows<T> r = rows(n);
    for (std::size_t c = 0; c < C; ++c) {
      const double z = (mu[c] - M) * q;
      const T g = r.gamma[c];
      const T shift = T(double(g) * double(r.alpha[c]) * z + (r.beta ? double(r.beta[c]) : 0.0));
      const T a = T(rstd[c]), mc = T(mu[c]);
      const std::size_t off = (n * C + c) * P;
      norm_out_plane(xp + off, yp + off, hp ? hp + off : nullptr, P, mc, a, g, shift, elu_alpha != nullptr,
                     elu_alpha ? *elu_alpha : T(1));
      if (cache) {
        if (!hp) {
          mean_t[n * C + c] = mc;
          rstd_t[n * C + c] = a;
        }
        cache->z[n * C + c] = z;
        cache->inv_std[n * C + c] = rstd[c];
        cache->d[n * C + c] = mu[c] - M;
      }
    }
    if (cache) cache->q[n] = q;
  }
}

#if SCOREOOD_TIER_AVX512
/// Backward kernels for float: xhat comes from the cache (copy mode) or is
/// recomputed from x with forward's two operations (reference mode), in
/// registers, so no per-sample buffer is written and read back.
struct XhatSource {
  const float* p;  ///< xhat, or x in reference mode
  __m512 mc, ra;   ///< reference mode: xhat = (x - mc) * ra
  bool ref;
  __m512 at(std::size_t i) const { return make(_mm512_loadu_ps(p + i)); }
  __m512 at(std::size_t i, __mmask16 m) const { return make(_mm512_maskz_loadu_ps(m, p + i)); }
  __m512 make(__m512 v) const { return ref ? _mm512_mul_ps(_mm512_sub_ps(v, mc), ra) : v; }
};

/// sum(g) and sum(g * xhat) over a plane with g = dy, or with an ELU output y,
/// g = dy * (y > 0 ? 1 : y + alpha) (Elu::backward's expression), then stored to g_out.
inline void plane_bwd_sums(const float* dy, const float* y, float alpha, XhatSource h, float* g_out, std::size_t P,
                           double& s, double& t) {
  const __m512 av = _mm512_set1_ps(alpha), zero = _mm512_setzero_ps();
  auto grad = [&](__m512 d, __m512 yv) { return elu::elu_grad_ps(d, yv, av); };
  __m512d s_lo = _mm512_setzero_pd(), s_hi = s_lo, t_lo = s_lo, t_hi = s_lo;
  std::size_t p = 0;
  while (p < P) {
    const std::size_t e = std::min(P, p + kBlock);
    __m512 a1 = zero, b1 = zero, a2 = zero, b2 = zero;  // two independent chains per sum
    for (; p + 32 <= e; p += 32) {
      __m512 g0 = _mm512_loadu_ps(dy + p), g1 = _mm512_loadu_ps(dy + p + 16);
      if (y) {
        g0 = grad(g0, _mm512_loadu_ps(y + p));
        g1 = grad(g1, _mm512_loadu_ps(y + p + 16));
        if (g_out) {
          _mm512_storeu_ps(g_out + p, g0);
          _mm512_storeu_ps(g_out + p + 16, g1);
        }
      }
      a1 = _mm512_add_ps(a1, g0);
      a2 = _mm512_fmadd_ps(g0, h.at(p), a2);
      b1 = _mm512_add_ps(b1, g1);
      b2 = _mm512_fmadd_ps(g1, h.at(p + 16), b2);
    }
    for (; p < e; p += 16) {  // masked lanes load 0: g = 0 adds nothing
      const __mmask16 m = e - p >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (e - p)) - 1);
      __m512 g0 = _mm512_maskz_loadu_ps(m, dy + p);
      if (y) {
        g0 = grad(g0, _mm512_maskz_loadu_ps(m, y + p));
        if (g_out) _mm512_mask_storeu_ps(g_out + p, m, g0);
      }
      a1 = _mm512_add_ps(a1, g0);
      a2 = _mm512_fmadd_ps(g0, h.at(p, m), a2);
    }
    p = e;
    fold_to_double(_mm512_add_ps(a1, b1), s_lo, s_hi);
    fold_to_double(_mm512_add_ps(a2, b2), t_lo, t_hi);
  }
  s = reduce_double(s_lo, s_hi);
  t = reduce_double(t_lo, t_hi);
}

/// out = a * g + (cc * xhat + b) (+ residual) over a plane, with g = dy, or
/// with an ELU output y, g = dy * elu' recomputed (the same operations as
/// plane_bwd_sums, so the same values) rather than stored and read back.
inline void plane_bwd_out(const float* dy, const float* y, float alpha, XhatSource h, float a, float b, float cc,
                          const float* res, float* out, std::size_t P) {
  const __m512 av = _mm512_set1_ps(a), bv = _mm512_set1_ps(b), cv = _mm512_set1_ps(cc), ev = _mm512_set1_ps(alpha);
  std::size_t p = 0;
  for (; p + 16 <= P; p += 16) {
    __m512 g = _mm512_loadu_ps(dy + p);
    if (y) g = elu::elu_grad_ps(g, _mm512_loadu_ps(y + p), ev);
    __m512 o = _mm512_fmadd_ps(av, g, _mm512_fmadd_ps(cv, h.at(p), bv));
    if (res) o = _mm512_add_ps(o, _mm512_loadu_ps(res + p));
    _mm512_storeu_ps(out + p, o);
  }
  if (p < P) {
    const __mmask16 m = __mmask16((1u << (P - p)) - 1);
    __m512 g = _mm512_maskz_loadu_ps(m, dy + p);
    if (y) g = elu::elu_grad_ps(g, _mm512_maskz_loadu_ps(m, y + p), ev);
    __m512 o = _mm512_fmadd_ps(av, g, _mm512_fmadd_ps(cv, h.at(p, m), bv));
    if (res) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(m, res + p));
    _mm512_mask_storeu_ps(out + p, m, o);
  }
}
inline XhatSource xhat_source_of(const float* p, float mc, float ra, bool ref) {
  return XhatSource{p, _mm512_set1_ps(mc), _mm512_set1_ps(ra), ref};
}
#elif SCOREOOD_TIER_AVX2
/// The AVX-512 backward kernels above on 8 lanes (a short last vector loads
/// zeros: g = 0 there, so it adds nothing to either sum).
struct XhatSource {
  const float* p;  ///< xhat, or x in reference mode
  __m256 mc, ra;   ///< reference mode: xhat = (x - mc) * ra
  bool ref;
  __m256 at(std::size_t i) const { return make(_mm256_loadu_ps(p + i)); }
  __m256 at(std::size_t i, __m256i m) const { return make(_mm256_maskload_ps(p + i, m)); }
  __m256 make(__m256 v) const { return ref ? _mm256_mul_ps(_mm256_sub_ps(v, mc), ra) : v; }
};
inline XhatSource xhat_source_of(const float* p, float mc, float ra, bool ref) {
  return XhatSource{p, _mm256_set1_ps(mc), _mm256_set1_ps(ra), ref};
}

inline void plane_bwd_sums(const float* dy, const float* y, float alpha, XhatSource h, float* g_out, std::size_t P,
                           double& s, double& t) {
  const __m256 av = _mm256_set1_ps(alpha), zero = _mm256_setzero_ps();
  __m256d s_lo = _mm256_setzero_pd(), s_hi = s_lo, t_lo = s_lo, t_hi = s_lo;
  std::size_t p = 0;
  while (p < P) {
    const std::size_t e = std::min(P, p + kBlock);
    __m256 a1 = zero, b1 = zero, a2 = zero, b2 = zero;
    for (; p + 16 <= e; p += 16) {
      __m256 g0 = _mm256_loadu_ps(dy + p), g1 = _mm256_loadu_ps(dy + p + 8);
      if (y) {
        g0 = elu::elu_grad_ps(g0, _mm256_loadu_ps(y + p), av);
        g1 = elu::elu_grad_ps(g1, _mm256_loadu_ps(y + p + 8), av);
        if (g_out) {
          _mm256_storeu_ps(g_out + p, g0);
          _mm256_storeu_ps(g_out + p + 8, g1);
        }
      }
      a1 = _mm256_add_ps(a1, g0);
      a2 = _mm256_fmadd_ps(g0, h.at(p), a2);
      b1 = _mm256_add_ps(b1, g1);
      b2 = _mm256_fmadd_ps(g1, h.at(p + 8), b2);
    }
    for (; p < e; p += 8) {
      const std::ptrdiff_t left = std::ptrdiff_t(e - p);
      const __m256i m = detail::avx2_mask(left);
      __m256 g0 = _mm256_maskload_ps(dy + p, m);
      if (y) {
        g0 = elu::elu_grad_ps(g0, _mm256_maskload_ps(y + p, m), av);
        if (g_out) detail::avx2_store_first(g_out + p, g0, left);
      }
      a1 = _mm256_add_ps(a1, g0);
      a2 = _mm256_fmadd_ps(g0, h.at(p, m), a2);
    }
    p = e;
    detail::avx2_fold_to_double(_mm256_add_ps(a1, b1), s_lo, s_hi);
    detail::avx2_fold_to_double(_mm256_add_ps(a2, b2), t_lo, t_hi);
  }
  s = detail::avx2_reduce_double(s_lo, s_hi);
  t = detail::avx2_reduce_double(t_lo, t_hi);
}

inline void plane_bwd_out(const float* dy, const float* y, float alpha, XhatSource h, float a, float b, float cc,
                          const float* res, float* out, std::size_t P) {
  const __m256 av = _mm256_set1_ps(a), bv = _mm256_set1_ps(b), cv = _mm256_set1_ps(cc), ev = _mm256_set1_ps(alpha);
  std::size_t p = 0;
  for (; p + 8 <= P; p += 8) {
    __m256 g = _mm256_loadu_ps(dy + p);
    if (y) g = elu::elu_grad_ps(g, _mm256_loadu_ps(y + p), ev);
    __m256 o = _mm256_fmadd_ps(av, g, _mm256_fmadd_ps(cv, h.at(p), bv));
    if (res) o = _mm256_add_ps(o, _mm256_loadu_ps(res + p));
    _mm256_storeu_ps(out + p, o);
  }
  if (p < P) {
    const std::ptrdiff_t left = std::ptrdiff_t(P - p);
    const __m256i m = detail::avx2_mask(left);
    __m256 g = _mm256_maskload_ps(dy + p, m);
    if (y) g = elu::elu_grad_ps(g, _mm256_maskload_ps(y + p, m), ev);
    __m256 o = _mm256_fmadd_ps(av, g, _mm256_fmadd_ps(cv, h.at(p, m), bv));
    if (res) o = _mm256_add_ps(o, _mm256_maskload_ps(res + p, m));
    detail::avx2_store_first(out + p, o, left);
  }
}
#endif

/// Backward of IN++: writes dx, and per (n, c) the sums the parameter
/// gradients need: sum_dy = sum(dy), sum_dy_xhat = sum(dy * xhat).
/// With `elu_y` (the output of an ELU that followed this norm) `dy` is the
/// gradient of the ELU's output and the ELU backward is applied on the fly
/// (one memory pass less; dx holds dy * elu' in between, dy is not written).
template <class T, class RowsFn>
void backward(const Cache<T>& cache, const Tensor4<T>& dy, Tensor4<T>& dx, RowsFn rows,
                      std::vector<double>& sum_dy, std::vector<double>& sum_dy_xhat, const T* elu_y = nullptr,
                      T elu_alpha = T(1), const T* residual = nullptr) {
  const Shape4 sh = cache.shape();
  const std::size_t N = sh[0], C = sh[1], P = sh[2] * sh[3];
  if (shape_of(dx) != sh) dx.resize(sh);
  sum_dy.assign(N * C, 0.0);
  sum_dy_xhat.assign(N * C, 0.0);
  const T* h_all = cache.x ? nullptr : cache.xhat.data();
  T* out = dx.data();
  // Portable path with the ELU fused: the second pass reads dy * elu' back from dx (in place,
  // per element). The AVX-512 and AVX2 paths recompute dy * elu' instead (no store and reload).
  const T* g_in = elu_y ? out : dy.data();
#if SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2
  constexpr bool simd = std::is_same_v<T, float>;
  // xhat of (n, c) for the SIMD kernels: from the cache, or recomputed from x.
  [[maybe_unused]] auto xhat_source = [&](std::size_t n, std::size_t c) -> XhatSource {
    if constexpr (simd) {
      const std::size_t off = (n * C + c) * P;
      if (h_all) return xhat_source_of(h_all + off, 0.f, 0.f, false);
      return xhat_source_of(cache.x_data + off, cache.mean_t[n * C + c], cache.rstd_t[n * C + c], true);
    } else {
      return xhat_source_of(nullptr, 0.f, 0.f, false);  // not used for double
    }
  };
#else
  constexpr bool simd = false;
#endif
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t ni = 0; ni < std::ptrdiff_t(N); ++ni) {
    const std::size_t n = std::size_t(ni);
    const Rows<T> r = rows(n);
    double* S = sum_dy.data() + n * C;
    double* Tx = sum_dy_xhat.data() + n * C;
    // Portable path, reference mode: this sample's xhat, recomputed exactly as forward
    // did, into a per-thread buffer that stays in L2 for both passes. hn: this sample's planes.
    const T* hn = h_all ? h_all + n * C * P : nullptr;
    if constexpr (simd) {
#if SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2
      for (std::size_t c = 0; c < C; ++c) {
        const std::size_t off = (n * C + c) * P;
        plane_bwd_sums(dy.data() + off, elu_y ? elu_y + off : nullptr, float(elu_alpha), xhat_source(n, c), nullptr,
                       P, S[c], Tx[c]);
      }
#endif
    } else {
      if (!h_all) {
        thread_local std::vector<T> buf;
        buf.resize(C * P);
        const T* xs = cache.x_data + n * C * P;
        for (std::size_t c = 0; c < C; ++c) {
          const T mc = cache.mean_t[n * C + c], a = cache.rstd_t[n * C + c];
          const T* src = xs + c * P;
          T* dst = buf.data() + c * P;
          for (std::size_t p = 0; p < P; ++p) dst[p] = (src[p] - mc) * a;
        }
        hn = buf.data();
      }
      for (std::size_t c = 0; c < C; ++c) {
        const std::size_t off = (n * C + c) * P;
        if (elu_y) plane_elu_dot_sums(dy.data() + off, elu_y + off, elu_alpha, hn + c * P, out + off, P, S[c],
                                      Tx[c]);
        else plane_dot_sums(g_in + off, hn + c * P, P, S[c], Tx[c]);
      }
    }
    // Through the channel-mean term: z_c = d_c * q with d = mu - mean(mu) and
    // q = (var_unbiased(mu) + eps)^(-1/2); dL/dz_c = gamma_c * alpha_c * S_c.
    const double q = cache.q[n];
    const double* d = cache.d.data() + n * C;
    double dz_dot_d = 0;
    for (std::size_t c = 0; c < C; ++c) dz_dot_d += double(r.alpha[c]) * double(r.gamma[c]) * S[c] * d[c];
    thread_local std::vector<double> dd;
    dd.resize(C);
    double dd_mean = 0;
    for (std::size_t c = 0; c < C; ++c) {
      const double dz = double(r.alpha[c]) * double(r.gamma[c]) * S[c];
      dd[c] = q * dz - q * q * q * d[c] * dz_dot_d / double(C - 1);
      dd_mean += dd[c];
    }
    dd_mean /= double(C);
    for (std::size_t c = 0; c < C; ++c) {
      const std::size_t off = (n * C + c) * P;
      const double gam = double(r.gamma[c]);
      const double rs = cache.inv_std[n * C + c];
      const double mean_dy = S[c] / double(P), mean_dyh = Tx[c] / double(P);
      // Instance norm: gamma*rstd*(dy - mean(dy) - xhat*mean(dy*xhat)); channel mean mu_c: dmu_c / P.
      const T a = T(gam * rs);
      const T b = T(-gam * rs * mean_dy + (dd[c] - dd_mean) / double(P));
      const T cc = T(-gam * rs * mean_dyh);
#if SCOREOOD_TIER_AVX512 || SCOREOOD_TIER_AVX2
      if constexpr (simd) {
        plane_bwd_out(dy.data() + off, elu_y ? elu_y + off : nullptr, float(elu_alpha), xhat_source(n, c), a, b, cc,
                      residual ? residual + off : nullptr, out + off, P);
        continue;
      }
#endif
      if (residual) {
        // A gradient arriving by another path (a residual block's skip), added while in cache.
        const T* rs_in = residual + off;
        for (std::size_t p = 0; p < P; ++p) out[off + p] = (a * g_in[off + p] + cc * hn[c * P + p] + b) + rs_in[p];
      } else {
        for (std::size_t p = 0; p < P; ++p) out[off + p] = a * g_in[off + p] + cc * hn[c * P + p] + b;
      }
    }
  }
}


}  // namespace scoreood::cpu::SCOREOOD_CPU_TIER::norm
