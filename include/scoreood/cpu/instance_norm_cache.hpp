/** @file instance_norm_cache.hpp
 *  @brief What the instance norm++ kernels keep between forward and backward,
 *  the per-sample parameter rows and the parameter gradients: shared by every
 *  ISA tier of cpu/tiered/instance_norm.hpp and by the CPU backend. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace scoreood::cpu::norm {

/// What forward keeps for backward: the normalised input (or, in reference
/// mode, a pointer to the input and the T-precision mean and 1/std that
/// recompute it exactly) and per-sample statistics.
template <class T>
struct Cache {
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
struct Rows {
  const T* gamma;
  const T* alpha;
  const T* beta;
};

inline constexpr double kNormEps = 1e-5;  // both epsilons of NCSN's definition

/// Per-sample rows of a backend::NormParams: base + levels[n] * stride.
template <class T>
auto rows_of(const backend::NormParams<T>& p) {
  return [p](std::size_t n) {
    const std::size_t off = p.stride ? std::size_t(p.levels[n]) * p.stride : 0;
    return Rows<T>{p.gamma + off, p.alpha + off, p.beta ? p.beta + off : nullptr};
  };
}

/// The parameter gradients from backward()'s sums: per sample into its row (a conditional norm,
/// stride > 0), or summed over the batch in double first (a plain norm, stride 0).
template <class T>
void parameter_grads(const backend::NormParams<T>& p, const Cache<T>& cache, const std::vector<double>& S,
                     const std::vector<double>& Tx, const backend::NormGrads<T>& g) {
  const std::size_t C = p.channels, N = cache.shape()[0];
  if (p.stride) {
    for (std::size_t n = 0; n < N; ++n) {
      const std::size_t base = std::size_t(p.levels[n]) * p.stride;
      for (std::size_t c = 0; c < C; ++c) {
        const double z = cache.z[n * C + c], s = S[n * C + c];
        g.gamma[base + c] += T(Tx[n * C + c] + double(p.alpha[base + c]) * z * s);
        g.alpha[base + c] += T(double(p.gamma[base + c]) * z * s);
        if (g.beta) g.beta[base + c] += T(s);
      }
    }
    return;
  }
  for (std::size_t c = 0; c < C; ++c) {
    double dg = 0, da = 0, db = 0;
    for (std::size_t n = 0; n < N; ++n) {
      const double z = cache.z[n * C + c], s = S[n * C + c];
      dg += Tx[n * C + c] + double(p.alpha[c]) * z * s;
      da += double(p.gamma[c]) * z * s;
      db += s;
    }
    g.gamma[c] += T(dg);
    g.alpha[c] += T(da);
    if (g.beta) g.beta[c] += T(db);
  }
}

}  // namespace scoreood::cpu::norm
