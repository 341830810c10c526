/** @file instance_norm.hpp
 *  @brief Instance normalisation++ (NCSN), conditional on the noise level and plain.
 *
 *  For one sample and channel c with plane values x (P = H*W of them):
 *    mu_c = mean(x), var_c = mean((x - mu_c)^2)  (biased, as nn.InstanceNorm2d),
 *    xhat = (x - mu_c) / sqrt(var_c + 1e-5),
 *    z_c  = (mu_c - mean_k mu_k) / sqrt(var_k(mu_k) + 1e-5), where var_k is the
 *           UNBIASED variance over the C channel means (torch.var's default,
 *           which NCSN uses: a layer needs C >= 2, else torch yields NaN),
 *    out  = gamma_c * (xhat + alpha_c * z_c) + beta_c.
 *  The "++" term z puts back the colour shift between channels that instance
 *  normalisation removes. CondInstanceNormPlusPlus picks (gamma, alpha, beta)
 *  per sample from an embedding row (L, 3C) laid out like NCSN's nn.Embedding
 *  weight [gamma | alpha | beta]; InstanceNormPlusPlus has one set (alpha,
 *  gamma, beta registered in NCSN's order).
 *
 *  Statistics are fused: one pass per (n, c) plane with a shift by the
 *  plane's first value and double accumulators (no catastrophic cancellation
 *  for planes with large means). Work is parallel over samples; parameter
 *  gradients are reduced serially afterwards, so two samples with the same
 *  level never race on one embedding row.
 *
 *  Float with AVX-512: the statistics keep their partial sums in registers
 *  (two chains, widened to double every 256 values), the output pass applies
 *  the fused ELU in the same registers (nn::detail::elu_ps), and the backward
 *  recomputes xhat from x in registers in reference mode instead of writing
 *  a per-sample copy. Other types and targets take the portable loops. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/nn/layers/elu.hpp>
#include <scoreood/nn/parameter.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace scoreood::nn {

namespace detail {

/// What forward keeps for backward: the normalised input (or, in reference
/// mode, a pointer to the input and the T-precision mean and 1/std that
/// recompute it exactly) and per-sample statistics.
template <class T>
struct NormPlusPlusCache {
  Tensor4<T> xhat;                       ///< (x - mu) / sqrt(var + eps), shape of x (empty in reference mode)
  std::vector<double> z, inv_std, d, q;  ///< z_c, 1/sqrt(var_c + eps), mu_c - mean(mu) per (n, c); q per n
  const Tensor4<T>* x = nullptr;         ///< reference mode: the forward input (kept alive by the caller)
  const T* x_data = nullptr;
  Shape4 x_shape{};
  std::vector<T> mean_t, rstd_t;  ///< reference mode: xhat = (x - mean_t) * rstd_t, as forward computed it
  bool valid() const { return x ? true : xhat.size() > 0; }
  Shape4 shape() const { return x ? x_shape : shape_of(xhat); }
  /// Reference mode: the input must be the same tensor, unresized, at backward time.
  void check_input(const std::string& name) const {
    if (x && (x->data() != x_data || shape_of(*x) != x_shape))
      throw Error(name + ": the forward input was resized or freed before backward()");
  }
};

/// Per-sample (gamma, alpha, beta) pointers; beta is null when the layer has no bias.
template <class T>
struct NormRows {
  const T* gamma;
  const T* alpha;
  const T* beta;
};

inline constexpr double kNormEps = 1e-5;  // both epsilons of NCSN's definition

/// Lanes of independent partial sums: the compiler vectorises them without
/// -ffast-math, and each lane is short enough that T-precision partials,
/// folded into double every block, lose nothing that matters.
inline constexpr std::size_t kLanes = 16;
inline constexpr std::size_t kBlock = 256;  // elements per partial before folding into double

#if defined(__AVX512F__)
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
#if defined(__AVX512F__)
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
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    const __m512 mv = _mm512_set1_ps(mc), av = _mm512_set1_ps(a), gv = _mm512_set1_ps(g),
                 sv = _mm512_set1_ps(shift), ev = _mm512_set1_ps(elu_alpha);
    auto step = [&](__m512 v) {
      const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(v, mv), av);
      const __m512 y = _mm512_fmadd_ps(gv, xh, sv);
      return std::pair{xh, elu ? elu_ps(y, ev) : y};
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
  if (elu) Elu<T>::apply(dst, dst, P, elu_alpha);
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
  elu_grad(y, dy, g, P, alpha);
  plane_dot_sums(g, h, P, s, t);
}

/// Forward of IN++ for all samples; `rows(n)` gives sample n's parameters.
/// With a cache, also keeps what backward needs; without one it is read-only.
/// With an `elu` the output is elu(norm(x)), applied per
/// plane while it is in cache (a fused CIN++ -> ELU: one memory pass less).
/// With `by_reference` (and a cache) the cache keeps a pointer to x instead
/// of a normalised copy (one tensor write less); x must then stay alive and
/// unchanged until backward.
template <class T, class RowsFn>
void norm_pp_forward(const Tensor4<T>& x, Tensor4<T>& y, RowsFn rows, NormPlusPlusCache<T>* cache,
                     const Elu<T>* elu = nullptr, bool by_reference = false) {
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
    const NormRows<T> r = rows(n);
    for (std::size_t c = 0; c < C; ++c) {
      const double z = (mu[c] - M) * q;
      const T g = r.gamma[c];
      const T shift = T(double(g) * double(r.alpha[c]) * z + (r.beta ? double(r.beta[c]) : 0.0));
      const T a = T(rstd[c]), mc = T(mu[c]);
      const std::size_t off = (n * C + c) * P;
      norm_out_plane(xp + off, yp + off, hp ? hp + off : nullptr, P, mc, a, g, shift, elu != nullptr,
                     elu ? elu->alpha() : T(1));
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

#if defined(__AVX512F__)
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

/// dy * (y > 0 ? 1 : y + alpha), Elu::backward's expression, 16 lanes.
inline __m512 elu_grad_ps(__m512 d, __m512 yv, __m512 av) {
  const __mmask16 pos = _mm512_cmp_ps_mask(yv, _mm512_setzero_ps(), _CMP_GT_OQ);
  return _mm512_mul_ps(d, _mm512_mask_blend_ps(pos, _mm512_add_ps(yv, av), _mm512_set1_ps(1.f)));
}

/// sum(g) and sum(g * xhat) over a plane with g = dy, or with an ELU output y,
/// g = dy * (y > 0 ? 1 : y + alpha) (Elu::backward's expression), then stored to g_out.
inline void plane_bwd_sums(const float* dy, const float* y, float alpha, XhatSource h, float* g_out, std::size_t P,
                           double& s, double& t) {
  const __m512 av = _mm512_set1_ps(alpha), zero = _mm512_setzero_ps();
  auto grad = [&](__m512 d, __m512 yv) { return elu_grad_ps(d, yv, av); };
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
    if (y) g = elu_grad_ps(g, _mm512_loadu_ps(y + p), ev);
    __m512 o = _mm512_fmadd_ps(av, g, _mm512_fmadd_ps(cv, h.at(p), bv));
    if (res) o = _mm512_add_ps(o, _mm512_loadu_ps(res + p));
    _mm512_storeu_ps(out + p, o);
  }
  if (p < P) {
    const __mmask16 m = __mmask16((1u << (P - p)) - 1);
    __m512 g = _mm512_maskz_loadu_ps(m, dy + p);
    if (y) g = elu_grad_ps(g, _mm512_maskz_loadu_ps(m, y + p), ev);
    __m512 o = _mm512_fmadd_ps(av, g, _mm512_fmadd_ps(cv, h.at(p, m), bv));
    if (res) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(m, res + p));
    _mm512_mask_storeu_ps(out + p, m, o);
  }
}
#endif

/// Backward of IN++: writes dx, and per (n, c) the sums the parameter
/// gradients need: sum_dy = sum(dy), sum_dy_xhat = sum(dy * xhat).
/// With `elu_y` (the output of an ELU that followed this norm) `dy` is the
/// gradient of the ELU's output and the ELU backward is applied on the fly
/// (one memory pass less; dx holds dy * elu' in between, dy is not written).
template <class T, class RowsFn>
void norm_pp_backward(const NormPlusPlusCache<T>& cache, const Tensor4<T>& dy, Tensor4<T>& dx, RowsFn rows,
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
  // per element). The AVX-512 path recomputes dy * elu' instead (no store and reload).
  const T* g_in = elu_y ? out : dy.data();
#if defined(__AVX512F__)
  constexpr bool simd = std::is_same_v<T, float>;
  // xhat of (n, c) for the SIMD kernels: from the cache, or recomputed from x.
  [[maybe_unused]] auto xhat_source = [&](std::size_t n, std::size_t c) -> XhatSource {
    if constexpr (simd) {
      const std::size_t off = (n * C + c) * P;
      if (h_all) return XhatSource{h_all + off, _mm512_setzero_ps(), _mm512_setzero_ps(), false};
      return XhatSource{cache.x_data + off, _mm512_set1_ps(cache.mean_t[n * C + c]),
                        _mm512_set1_ps(cache.rstd_t[n * C + c]), true};
    } else {
      return XhatSource{nullptr, _mm512_setzero_ps(), _mm512_setzero_ps(), false};  // not used for double
    }
  };
#else
  constexpr bool simd = false;
#endif
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t ni = 0; ni < std::ptrdiff_t(N); ++ni) {
    const std::size_t n = std::size_t(ni);
    const NormRows<T> r = rows(n);
    double* S = sum_dy.data() + n * C;
    double* Tx = sum_dy_xhat.data() + n * C;
    // Portable path, reference mode: this sample's xhat, recomputed exactly as forward
    // did, into a per-thread buffer that stays in L2 for both passes. hn: this sample's planes.
    const T* hn = h_all ? h_all + n * C * P : nullptr;
    if constexpr (simd) {
#if defined(__AVX512F__)
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
#if defined(__AVX512F__)
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

inline void check_norm_input(const std::string& name, std::size_t channels, const Shape4& s) {
  if (s[1] != channels)
    throw ShapeError(name + ": input has " + std::to_string(s[1]) + " channels, layer expects " +
                     std::to_string(channels) + " (input shape " + to_string(s) + ")");
  if (s[0] == 0 || s[2] == 0 || s[3] == 0) throw ShapeError(name + ": empty input " + to_string(s));
}

inline void check_norm_channels(const std::string& name, std::size_t channels) {
  if (channels < 2)
    throw ValueError(name + ": instance norm++ needs at least 2 channels (the channel-mean term uses an "
                            "unbiased variance over channels), got " + std::to_string(channels));
}

}  // namespace detail

/// NCSN's ConditionalInstanceNorm2dPlus. Parameter "<name>.embed" of shape
/// (num_levels, 3C) = [gamma | alpha | beta] per level ((L, 2C) without bias).
/// @tparam T float for training, double for gradient checks.
template <class T>
class CondInstanceNormPlusPlus {
 public:
  CondInstanceNormPlusPlus(ParameterStore<T>& store, std::string name, std::size_t channels, std::size_t num_levels,
                           CounterRng init, bool bias = true)
      : name_(std::move(name)), C_(channels), L_(num_levels), bias_(bias) {
    detail::check_norm_channels(name_, C_);
    if (L_ == 0) throw ValueError(name_ + ": number of noise levels must be positive");
    embed_ = store.add(name_ + ".embed", {L_, (bias_ ? 3 : 2) * C_});
    T* e = embed_.value();
    const std::size_t row = (bias_ ? 3 : 2) * C_;
    for (std::size_t l = 0; l < L_; ++l)
      for (std::size_t j = 0; j < row; ++j) {
        const std::size_t i = l * row + j;
        e[i] = j < 2 * C_ ? T(1.0 + 0.02 * double(init.normal(i))) : T(0);  // gamma, alpha ~ N(1, 0.02); beta = 0
      }
  }

  void forward(const Tensor4<T>& x, std::span<const int> levels, Tensor4<T>& y) {
    check(x, levels);
    levels_.assign(levels.begin(), levels.end());
    detail::norm_pp_forward(x, y, rows_fn(levels_), &cache_);
  }

  void infer(const Tensor4<T>& x, std::span<const int> levels, Tensor4<T>& y) const {
    check(x, levels);
    detail::norm_pp_forward<T>(x, y, rows_fn(levels), nullptr);
  }

  /// forward() then elu.forward(y, y) in one pass over memory: same values,
  /// same backward (elu.backward, then this layer's backward).
  /// With `keep_input_reference` the layer keeps a pointer to x instead of a
  /// normalised copy (one tensor write less per forward, the same backward
  /// results): x must then stay alive and unchanged until backward(), as a
  /// Conv2d's input (a resized or reallocated x is detected and reported).
  void forward_elu(const Tensor4<T>& x, std::span<const int> levels, Tensor4<T>& y, Elu<T>& elu,
                   bool keep_input_reference = false) {
    check(x, levels);
    levels_.assign(levels.begin(), levels.end());
    detail::norm_pp_forward(x, y, rows_fn(levels_), &cache_, &elu, keep_input_reference);
    elu.attach_output(y);
  }

  /// infer() then elu.infer(y, y) in one pass over memory.
  void infer_elu(const Tensor4<T>& x, std::span<const int> levels, Tensor4<T>& y, const Elu<T>& elu) const {
    check(x, levels);
    detail::norm_pp_forward<T>(x, y, rows_fn(levels), nullptr, &elu);
  }

  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) { backward_impl(dy, dx, nullptr, T(1)); }

  /// elu.backward(dy, dy) then backward(dy, dx) for the ELU that forward_elu()
  /// fused, in one memory pass less; dy (the gradient of the ELU's output) is
  /// left unchanged. dx must be a separate tensor. With a `residual` (the
  /// input's shape, not dx) dx += residual in the same pass (a skip's gradient).
  void backward_elu(const Tensor4<T>& dy, Tensor4<T>& dx, const Elu<T>& elu, const Tensor4<T>* residual = nullptr) {
    if (&dx == &dy) throw Error(name_ + ": backward_elu needs dx distinct from dy");
    if (residual && (residual == &dx || shape_of(*residual) != cache_.shape()))
      throw ShapeError(name_ + ": the residual gradient must be a separate tensor of the input's shape " +
                       to_string(cache_.shape()));
    backward_impl(dy, dx, elu.output_for_backward(shape_of(dy)), elu.alpha(), residual ? residual->data() : nullptr);
  }

  std::size_t channels() const { return C_; }
  std::size_t num_levels() const { return L_; }
  const std::string& name() const { return name_; }
  ParamRef<T> embed() const { return embed_; }

 private:
  void backward_impl(const Tensor4<T>& dy, Tensor4<T>& dx, const T* elu_y, T elu_alpha, const T* residual = nullptr) {
    if (!cache_.valid()) throw Error(name_ + ": backward called before forward");
    cache_.check_input(name_);
    if (shape_of(dy) != cache_.shape())
      throw ShapeError(name_ + ": gradient shape " + to_string(shape_of(dy)) + " differs from the forward output " +
                       to_string(cache_.shape()));
    std::vector<double> S, Tx;
    detail::norm_pp_backward(cache_, dy, dx, rows_fn(levels_), S, Tx, elu_y, elu_alpha, residual);
    const std::size_t row = (bias_ ? 3 : 2) * C_;
    T* ge = embed_.grad();
    const T* e = embed_.value();
    for (std::size_t n = 0; n < levels_.size(); ++n) {
      const std::size_t base = std::size_t(levels_[n]) * row;
      for (std::size_t c = 0; c < C_; ++c) {
        const double z = cache_.z[n * C_ + c], s = S[n * C_ + c];
        ge[base + c] += T(Tx[n * C_ + c] + double(e[base + C_ + c]) * z * s);  // gamma
        ge[base + C_ + c] += T(double(e[base + c]) * z * s);                    // alpha
        if (bias_) ge[base + 2 * C_ + c] += T(s);                                // beta
      }
    }
  }

  void check(const Tensor4<T>& x, std::span<const int> levels) const {
    detail::check_norm_input(name_, C_, shape_of(x));
    if (levels.size() != x.shape()[0])
      throw ShapeError(name_ + ": " + std::to_string(levels.size()) + " noise-level indices for a batch of " +
                       std::to_string(x.shape()[0]));
    for (std::size_t n = 0; n < levels.size(); ++n)
      if (levels[n] < 0 || std::size_t(levels[n]) >= L_)
        throw ValueError(name_ + ": noise-level index " + std::to_string(levels[n]) + " of sample " +
                         std::to_string(n) + " is outside [0, " + std::to_string(L_) + ")");
  }

  auto rows_fn(std::span<const int> levels) const {
    const std::size_t row = (bias_ ? 3 : 2) * C_;
    const T* e = embed_.value();  // resolved now: the store is complete by the time layers run
    const bool bias = bias_;
    const std::size_t C = C_;
    return [=](std::size_t n) {
      const T* r = e + std::size_t(levels[n]) * row;
      return detail::NormRows<T>{r, r + C, bias ? r + 2 * C : nullptr};
    };
  }

  std::string name_;
  std::size_t C_, L_;
  bool bias_;
  ParamRef<T> embed_;
  std::vector<int> levels_;
  detail::NormPlusPlusCache<T> cache_;
};

/// NCSN's (unconditional) InstanceNorm2dPlus: parameters "<name>.alpha",
/// "<name>.gamma" (both ~ N(1, 0.02)) and "<name>.beta" (0, only with bias),
/// each of shape (C). `levels` is accepted for a uniform layer interface and ignored.
/// @tparam T float for training, double for gradient checks.
template <class T>
class InstanceNormPlusPlus {
 public:
  InstanceNormPlusPlus(ParameterStore<T>& store, std::string name, std::size_t channels, CounterRng init,
                       bool bias = true)
      : name_(std::move(name)), C_(channels), bias_(bias) {
    detail::check_norm_channels(name_, C_);
    alpha_ = store.add(name_ + ".alpha", {C_});
    gamma_ = store.add(name_ + ".gamma", {C_});
    if (bias_) beta_ = store.add(name_ + ".beta", {C_});
    for (std::size_t c = 0; c < C_; ++c) {
      alpha_.value()[c] = T(1.0 + 0.02 * double(init.normal(c)));
      gamma_.value()[c] = T(1.0 + 0.02 * double(init.normal(C_ + c)));
    }
  }

  void forward(const Tensor4<T>& x, std::span<const int> /*levels*/, Tensor4<T>& y) {
    detail::check_norm_input(name_, C_, shape_of(x));
    detail::norm_pp_forward(x, y, rows_fn(), &cache_);
  }
  void forward(const Tensor4<T>& x, Tensor4<T>& y) { forward(x, {}, y); }

  void infer(const Tensor4<T>& x, std::span<const int> /*levels*/, Tensor4<T>& y) const {
    detail::check_norm_input(name_, C_, shape_of(x));
    detail::norm_pp_forward<T>(x, y, rows_fn(), nullptr);
  }
  void infer(const Tensor4<T>& x, Tensor4<T>& y) const { infer(x, {}, y); }

  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
    if (!cache_.valid()) throw Error(name_ + ": backward called before forward");
    cache_.check_input(name_);
    if (shape_of(dy) != cache_.shape())
      throw ShapeError(name_ + ": gradient shape " + to_string(shape_of(dy)) + " differs from the forward output " +
                       to_string(cache_.shape()));
    std::vector<double> S, Tx;
    detail::norm_pp_backward(cache_, dy, dx, rows_fn(), S, Tx);
    const std::size_t N = cache_.shape()[0];
    const T* a = alpha_.value();
    const T* g = gamma_.value();
    for (std::size_t c = 0; c < C_; ++c) {
      double dg = 0, da = 0, db = 0;
      for (std::size_t n = 0; n < N; ++n) {
        const double z = cache_.z[n * C_ + c], s = S[n * C_ + c];
        dg += Tx[n * C_ + c] + double(a[c]) * z * s;
        da += double(g[c]) * z * s;
        db += s;
      }
      gamma_.grad()[c] += T(dg);
      alpha_.grad()[c] += T(da);
      if (bias_) beta_.grad()[c] += T(db);
    }
  }

  std::size_t channels() const { return C_; }
  const std::string& name() const { return name_; }

 private:
  auto rows_fn() const {
    const T* g = gamma_.value();
    const T* a = alpha_.value();
    const T* b = bias_ ? beta_.value() : nullptr;
    return [=](std::size_t) { return detail::NormRows<T>{g, a, b}; };
  }

  std::string name_;
  std::size_t C_;
  bool bias_;
  ParamRef<T> alpha_, gamma_, beta_;
  detail::NormPlusPlusCache<T> cache_;
};

}  // namespace scoreood::nn
