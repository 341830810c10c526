/** @file norm_pp.cuh
 *  @brief Instance norm++ (NCSN) with per-sample parameter rows, the fused ELU
 *  and the fused residual gradient: the kernels behind ops<cuda>::norm_forward /
 *  norm_backward, with nn/layers/instance_norm.hpp's formulas and its
 *  precision (statistics, gradient sums and the channel-mean term in double).
 *
 *  Sample n reads gamma[l * stride + c], alpha[l * stride + c] and beta (nullable)
 *  likewise, with l = levels[n] (levels null: l = 0). A conditional norm has
 *  stride = its embedding row ([gamma | alpha | beta] per level); a plain norm
 *  stride 0. For one plane (n, c) of P = H*W values:
 *    mu = mean(x), var = mean((x - mu)^2)    (one pass shifted by x[0], in double)
 *    xhat = (x - float(mu)) * float(1 / sqrt(var + 1e-5))
 *    z_c = (mu_c - mean_k mu_k) / sqrt(var_k(mu_k) + 1e-5)   (unbiased over the C means)
 *    y = gamma_c * xhat + float(gamma_c * alpha_c * z_c + beta_c),  then elu(y) when fused.
 *  Backward: g = dy (or dy * elu'(y) from the ELU's output y), per plane S = sum g,
 *  Tx = sum g * xhat, then dx = a g + cc xhat + b (+ residual) with the per-plane
 *  coefficients of the CPU code, and the parameter gradients
 *    d gamma += Tx + alpha z S,  d alpha += gamma z S,  d beta += S
 *  added per sample into row l (stride > 0), or summed over the batch in double
 *  and added once (stride 0), as the CPU layers do. Needs C >= 2. */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

namespace scoreood::gpu {

/// Per-sample parameter rows of an instance norm++ in device memory.
template <typename T>
struct NormRowsDevice {
  const T* gamma = nullptr;
  const T* alpha = nullptr;
  const T* beta = nullptr;  ///< null: no bias
  std::size_t stride = 0;   ///< between the rows of consecutive levels (0: one row for all)
  const int* levels = nullptr;  ///< one per sample on the device; null: level 0 for all
  SCOREOOD_HOST_DEVICE std::size_t row(int n) const { return levels ? std::size_t(levels[n]) * stride : 0; }
};

/// Where the parameter gradients go (same layout as the rows; accumulated).
template <typename T>
struct NormGradsDevice {
  T* gamma = nullptr;
  T* alpha = nullptr;
  T* beta = nullptr;
};

/// Geometry of an instance norm++ call.
struct NormShape {
  int batch = 0, channels = 0;
  std::size_t plane = 0;  ///< H * W
  std::size_t planes() const { return std::size_t(batch) * channels; }
  std::size_t size() const { return planes() * plane; }
};

namespace detail {

inline constexpr double kNormPPEps = 1e-5;

/// Threads for a one-block-per-plane kernel: whole warps, no more than the plane needs.
inline int plane_threads(std::size_t n) {
  const std::size_t t = (n + 31) / 32 * 32;
  return int(std::clamp<std::size_t>(t, 32, kBlock));
}

inline void check_norm_pp(const NormShape& s, const char* who) {
  require_shape(s.batch >= 0 && s.channels >= 2 && s.plane >= 1, who,
                "need batch >= 0, channels >= 2 (unbiased variance over channels) and a non-empty plane; got batch " +
                    std::to_string(s.batch) + ", channels " + std::to_string(s.channels) + ", plane " +
                    std::to_string(s.plane));
}

/// mean and 1/sqrt(unbiased var + eps) of the C plane means of a sample; every thread gets both.
__device__ inline void channel_mean_terms(const double* mu_n, int C, double& M, double& q) {
  double s = 0;
  for (int k = threadIdx.x; k < C; k += blockDim.x) s += mu_n[k];
  M = block_sum(s) / double(C);
  double v = 0;
  for (int k = threadIdx.x; k < C; k += blockDim.x) {
    const double d = mu_n[k] - M;
    v += d * d;
  }
  q = 1.0 / sqrt(block_sum(v) / double(C - 1) + kNormPPEps);
}

template <typename T>
__device__ inline T elu_value(T v, T alpha) {
  return v > T(0) ? v : alpha * expm1(v);
}
/// dy * elu'(x) from the ELU's output y: 1 for y > 0, else y + alpha (nn::Elu's backward).
template <typename T>
__device__ inline T elu_grad_from_output(T dy, T y, T alpha) {
  return dy * (y > T(0) ? T(1) : y + alpha);
}

}  // namespace detail

namespace kernels {

/// One block per plane: mu and 1/sqrt(var + eps) in double (one pass, shifted by the first value).
template <typename T>
__global__ void norm_pp_stats(const T* x, double* mu, double* rstd, std::size_t P) {
  const std::size_t p = blockIdx.x;
  const T* xp = x + p * P;
  const double k = double(xp[0]);
  double s = 0, s2 = 0;
  for (std::size_t i = threadIdx.x; i < P; i += blockDim.x) {
    const double d = double(xp[i]) - k;
    s += d;
    s2 += d * d;
  }
  s = detail::block_sum(s);
  s2 = detail::block_sum(s2);
  if (threadIdx.x == 0) {
    const double m = s / double(P);
    const double var = fmax(0.0, s2 / double(P) - m * m);
    mu[p] = k + m;
    rstd[p] = 1.0 / sqrt(var + detail::kNormPPEps);
  }
}

/// One block per sample: the output coefficients of each plane, (mc, a, gamma, shift).
template <typename T>
__global__ void norm_pp_forward_coeffs(const double* mu, const double* rstd, NormRowsDevice<T> rows, int C,
                                       T* coeff) {
  const int n = blockIdx.x;
  const double* mu_n = mu + std::size_t(n) * C;
  double M, q;
  detail::channel_mean_terms(mu_n, C, M, q);
  const std::size_t r = rows.row(n);
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const std::size_t pc = std::size_t(n) * C + c;
    const double z = (mu_n[c] - M) * q;
    const T g = rows.gamma[r + c];
    const T shift = T(double(g) * double(rows.alpha[r + c]) * z + (rows.beta ? double(rows.beta[r + c]) : 0.0));
    T* o = coeff + 4 * pc;
    o[0] = T(mu_n[c]);
    o[1] = T(rstd[pc]);
    o[2] = g;
    o[3] = shift;
  }
}

/// y = gamma * ((x - mc) * a) + shift (then elu when `elu`), elementwise; y may be x.
template <typename T>
__global__ void norm_pp_apply(const T* x, T* y, const T* coeff, std::size_t P, std::size_t n_all, bool elu,
                              T elu_alpha) {
  for (std::size_t i = detail::global_index(); i < n_all; i += detail::global_stride()) {
    const T* o = coeff + 4 * (i / P);
    const T v = o[2] * ((x[i] - o[0]) * o[1]) + o[3];
    y[i] = elu ? detail::elu_value(v, elu_alpha) : v;
  }
}

/// One block per plane: S = sum g and Tx = sum g * xhat (double), g = dy or dy * elu'(y).
template <typename T>
__global__ void norm_pp_backward_sums(const T* x, const T* dy, const T* elu_y, T elu_alpha, const double* mu,
                                      const double* rstd, double* sums, std::size_t P) {
  const std::size_t p = blockIdx.x;
  const std::size_t off = p * P;
  const T mc = T(mu[p]), a = T(rstd[p]);
  double s = 0, t = 0;
  for (std::size_t i = threadIdx.x; i < P; i += blockDim.x) {
    const T g = elu_y ? detail::elu_grad_from_output(dy[off + i], elu_y[off + i], elu_alpha) : dy[off + i];
    const T h = (x[off + i] - mc) * a;
    s += double(g);
    t += double(g) * double(h);
  }
  s = detail::block_sum(s);
  t = detail::block_sum(t);
  if (threadIdx.x == 0) {
    sums[2 * p] = s;
    sums[2 * p + 1] = t;
  }
}

/// One block per sample: the coefficients (a, b, cc) of dx = a g + cc xhat + b per plane, and z per plane.
template <typename T>
__global__ void norm_pp_backward_coeffs(const double* mu, const double* rstd, const double* sums,
                                        NormRowsDevice<T> rows, int C, std::size_t P, T* coeff, double* z) {
  const int n = blockIdx.x;
  const std::size_t base = std::size_t(n) * C;
  const double* mu_n = mu + base;
  double M, q;
  detail::channel_mean_terms(mu_n, C, M, q);
  const std::size_t r = rows.row(n);
  // dz_c = alpha_c gamma_c S_c; the channel-mean term couples the planes through sum_c dz_c d_c.
  double dot = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x)
    dot += double(rows.alpha[r + c]) * double(rows.gamma[r + c]) * sums[2 * (base + c)] * (mu_n[c] - M);
  dot = detail::block_sum(dot);
  auto dd = [&](int c) {
    const double dz = double(rows.alpha[r + c]) * double(rows.gamma[r + c]) * sums[2 * (base + c)];
    return q * dz - q * q * q * (mu_n[c] - M) * dot / double(C - 1);
  };
  double dd_sum = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dd_sum += dd(c);
  const double dd_mean = detail::block_sum(dd_sum) / double(C);
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const std::size_t pc = base + c;
    const double gam = double(rows.gamma[r + c]), rs = rstd[pc];
    const double S = sums[2 * pc], Tx = sums[2 * pc + 1];
    T* o = coeff + 3 * pc;
    o[0] = T(gam * rs);
    o[1] = T(-gam * rs * S / double(P) + (dd(c) - dd_mean) / double(P));
    o[2] = T(-gam * rs * Tx / double(P));
    z[pc] = (mu_n[c] - M) * q;
  }
}

/// dx = a g + cc xhat + b (+ residual), elementwise; dx must not alias dy or x.
template <typename T>
__global__ void norm_pp_backward_apply(const T* x, const T* dy, const T* elu_y, T elu_alpha, const double* mu,
                                       const double* rstd, const T* coeff, const T* residual, T* dx, std::size_t P,
                                       std::size_t n_all) {
  for (std::size_t i = detail::global_index(); i < n_all; i += detail::global_stride()) {
    const std::size_t p = i / P;
    const T* o = coeff + 3 * p;
    const T g = elu_y ? detail::elu_grad_from_output(dy[i], elu_y[i], elu_alpha) : dy[i];
    const T h = (x[i] - T(mu[p])) * T(rstd[p]);
    const T v = o[0] * g + o[2] * h + o[1];
    dx[i] = residual ? v + residual[i] : v;
  }
}

/// One thread per channel, samples in order: the parameter gradients (deterministic, no atomics).
template <typename T>
__global__ void norm_pp_param_grads(const double* sums, const double* z, NormRowsDevice<T> rows, NormGradsDevice<T> grads,
                                    int N, int C) {
  for (int c = int(detail::global_index()); c < C; c += int(detail::global_stride())) {
    if (rows.stride == 0) {
      // One row for all samples: summed in double, added once (InstanceNormPlusPlus::backward).
      double dg = 0, da = 0, db = 0;
      const double g = double(rows.gamma[c]), a = double(rows.alpha[c]);
      for (int n = 0; n < N; ++n) {
        const std::size_t pc = std::size_t(n) * C + c;
        const double S = sums[2 * pc];
        dg += sums[2 * pc + 1] + a * z[pc] * S;
        da += g * z[pc] * S;
        db += S;
      }
      if (grads.gamma) grads.gamma[c] += T(dg);
      if (grads.alpha) grads.alpha[c] += T(da);
      if (grads.beta) grads.beta[c] += T(db);
      continue;
    }
    for (int n = 0; n < N; ++n) {  // per sample into its level's row (CondInstanceNormPlusPlus::backward)
      const std::size_t pc = std::size_t(n) * C + c, r = rows.row(n) + c;
      const double S = sums[2 * pc];
      if (grads.gamma) grads.gamma[r] += T(sums[2 * pc + 1] + double(rows.alpha[r]) * z[pc] * S);
      if (grads.alpha) grads.alpha[r] += T(double(rows.gamma[r]) * z[pc] * S);
      if (grads.beta) grads.beta[r] += T(S);
    }
  }
}

}  // namespace kernels

/// Forward. Writes y (may be x) and the per-plane statistics mu, rstd (planes() doubles each,
/// kept for the backward pass); coeff is scratch of 4 * planes() values.
template <typename T>
void norm_pp_forward(const T* x, T* y, const NormRowsDevice<T>& rows, const NormShape& s, double* mu, double* rstd,
                     T* coeff, bool elu, T elu_alpha, cudaStream_t stream = nullptr) {
  detail::check_norm_pp(s, "norm_pp_forward");
  if (s.batch == 0) return;
  kernels::norm_pp_stats<<<unsigned(s.planes()), detail::plane_threads(s.plane), 0, stream>>>(x, mu, rstd, s.plane);
  SCOREOOD_CUDA_CHECK_LAUNCH("norm_pp_stats");
  kernels::norm_pp_forward_coeffs<<<unsigned(s.batch), detail::plane_threads(std::size_t(s.channels)), 0, stream>>>(
      mu, rstd, rows, s.channels, coeff);
  SCOREOOD_CUDA_CHECK_LAUNCH("norm_pp_forward_coeffs");
  kernels::norm_pp_apply<<<detail::grid_for(s.size()), kBlock, 0, stream>>>(x, y, coeff, s.plane, s.size(), elu,
                                                                            elu_alpha);
  SCOREOOD_CUDA_CHECK_LAUNCH("norm_pp_apply");
}

/// Backward from the forward's input x and statistics. Writes dx (overwrites; distinct from dy
/// and x) and ADDS the parameter gradients. elu_y: the fused ELU's output (null: no ELU);
/// residual (nullable): a gradient added to dx. Scratch: sums 2 * planes() doubles, z planes()
/// doubles, coeff 3 * planes() values.
template <typename T>
void norm_pp_backward(const T* x, const T* dy, const T* elu_y, T elu_alpha, const T* residual, T* dx,
                      const NormRowsDevice<T>& rows, const NormGradsDevice<T>& grads, const NormShape& s,
                      const double* mu, const double* rstd, double* sums, double* z, T* coeff,
                      cudaStream_t stream = nullptr) {
  detail::check_norm_pp(s, "norm_pp_backward");
  if (s.batch == 0) return;
  kernels::norm_pp_backward_sums<<<unsigned(s.planes()), detail::plane_threads(s.plane), 0, stream>>>(
      x, dy, elu_y, elu_alpha, mu, rstd, sums, s.plane);
  SCOREOOD_CUDA_CHECK_LAUNCH("norm_pp_backward_sums");
  kernels::norm_pp_backward_coeffs<<<unsigned(s.batch), detail::plane_threads(std::size_t(s.channels)), 0, stream>>>(
      mu, rstd, sums, rows, s.channels, s.plane, coeff, z);
  SCOREOOD_CUDA_CHECK_LAUNCH("norm_pp_backward_coeffs");
  kernels::norm_pp_backward_apply<<<detail::grid_for(s.size()), kBlock, 0, stream>>>(
      x, dy, elu_y, elu_alpha, mu, rstd, coeff, residual, dx, s.plane, s.size());
  SCOREOOD_CUDA_CHECK_LAUNCH("norm_pp_backward_apply");
  if (grads.gamma || grads.alpha || grads.beta) {
    kernels::norm_pp_param_grads<<<unsigned((s.channels + kBlock - 1) / kBlock), kBlock, 0, stream>>>(
        sums, z, rows, grads, s.batch, s.channels);
    SCOREOOD_CUDA_CHECK_LAUNCH("norm_pp_param_grads");
  }
}

}  // namespace scoreood::gpu
