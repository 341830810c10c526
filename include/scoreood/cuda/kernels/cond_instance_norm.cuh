/** @file cond_instance_norm.cuh
 *  @brief Conditional instance norm++ (NCSN's ConditionalInstanceNorm2dPlus),
 *  forward and backward, with the per-plane statistics fused into one pass
 *  per (n, c) plane (one block per plane, warp-shuffle reductions).
 *
 *  For sample n with noise level l = labels[n] and channel c (S = H*W pixels):
 *    mu_c = mean(x_c), var_c = mean((x_c - mu_c)^2)     (biased, as instance norm)
 *    xhat = (x - mu_c) / sqrt(var_c + eps)               (eps = 1e-5)
 *    m = mean_c(mu_c), v = sum_c (mu_c - m)^2 / (C - 1) (torch.var: unbiased)
 *    z_c = (mu_c - m) / sqrt(v + eps)
 *    y = gamma_c * (xhat + alpha_c * z_c) + beta_c
 *  with (gamma | alpha | beta) = embed[l, 0:C | C:2C | 2C:3C], embed of shape (L, 3C).
 *  Needs C >= 2 (the unbiased variance over one channel is undefined). */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

namespace scoreood::gpu {

/// Shape of a CIN++ call: NCHW input, `levels` rows in the (levels, 3C) embedding.
struct CinShape {
  int batch = 0;
  int channels = 0;
  int plane = 0;  ///< H * W
  int levels = 0;
};

namespace detail {

inline constexpr double kCinEps = 1e-5;

inline void check_cin(const CinShape& s, const char* who) {
  require_shape(s.batch >= 0 && s.channels >= 2 && s.plane >= 1 && s.levels >= 1, who,
                "need batch >= 0, channels >= 2 (unbiased variance over channels), plane >= 1, levels >= 1; got batch " +
                    std::to_string(s.batch) + ", channels " + std::to_string(s.channels) + ", plane " +
                    std::to_string(s.plane) + ", levels " + std::to_string(s.levels));
}

/// Statistics of the C plane means of one sample: m and 1/sqrt(v + eps).
/// Every thread of the block calls it and gets both values.
template <typename T>
__device__ inline void channel_mean_stats(const T* mean_n, int C, T& m, T& inv_sd) {
  T s = 0;
  for (int k = threadIdx.x; k < C; k += blockDim.x) s += mean_n[k];
  m = block_sum(s) / T(C);
  T q = 0;
  for (int k = threadIdx.x; k < C; k += blockDim.x) {
    const T d = mean_n[k] - m;
    q += d * d;
  }
  const T v = block_sum(q) / T(C - 1);
  inv_sd = T(1) / sqrt(v + T(kCinEps));
}

}  // namespace detail

namespace kernels {

/// One block per plane: mean and 1/sqrt(biased var + eps), two passes over the
/// plane (mean first, then squared deviations: no cancellation).
template <typename T>
__global__ void cin_stats(const T* x, T* mean, T* rstd, int plane) {
  const std::size_t p = blockIdx.x;
  const T* xp = x + p * plane;
  T s = 0;
  for (int i = threadIdx.x; i < plane; i += blockDim.x) s += xp[i];
  const T mu = detail::block_sum(s) / T(plane);
  T q = 0;
  for (int i = threadIdx.x; i < plane; i += blockDim.x) {
    const T d = xp[i] - mu;
    q += d * d;
  }
  const T var = detail::block_sum(q) / T(plane);
  if (threadIdx.x == 0) {
    mean[p] = mu;
    rstd[p] = T(1) / sqrt(var + T(detail::kCinEps));
  }
}

/// One block per plane: y = gamma * (xhat + alpha * z) + beta.
template <typename T>
__global__ void cin_apply(const T* x, const int* labels, const T* embed, const T* mean, const T* rstd, T* y,
                          int C, int plane, int levels) {
  const std::size_t p = blockIdx.x;
  const int n = int(p / C), c = int(p % C);
  T m, inv_sd;
  detail::channel_mean_stats(mean + std::size_t(n) * C, C, m, inv_sd);
  const int l = labels[n];
  T* yp = y + p * plane;
  if (l < 0 || l >= levels) {  // bad label: poison the output rather than read out of bounds
    for (int i = threadIdx.x; i < plane; i += blockDim.x) yp[i] = T(NAN);
    return;
  }
  const T* e = embed + std::size_t(l) * 3 * C;
  const T gamma = e[c], alpha = e[C + c], beta = e[2 * C + c];
  const T mu = mean[p], r = rstd[p];
  const T shift = alpha * (mu - m) * inv_sd;  // alpha_c * z_c
  const T* xp = x + p * plane;
  for (int i = threadIdx.x; i < plane; i += blockDim.x) yp[i] = gamma * ((xp[i] - mu) * r + shift) + beta;
}

/// One block per plane: sum(dy) and sum(dy * xhat) over the plane, and the
/// parameter gradients accumulated into dembed (atomics: several samples
/// share a level).
template <typename T>
__global__ void cin_backward_sums(const T* x, const T* dy, const int* labels, const T* embed, const T* mean,
                                  const T* rstd, T* sum_dy, T* sum_dy_xhat, T* dembed, int C, int plane,
                                  int levels) {
  const std::size_t p = blockIdx.x;
  const int n = int(p / C), c = int(p % C);
  const T* xp = x + p * plane;
  const T* gp = dy + p * plane;
  const T mu = mean[p], r = rstd[p];
  T sg = 0, sgx = 0;
  for (int i = threadIdx.x; i < plane; i += blockDim.x) {
    sg += gp[i];
    sgx += gp[i] * (xp[i] - mu) * r;
  }
  sg = detail::block_sum(sg);
  sgx = detail::block_sum(sgx);
  T m, inv_sd;
  detail::channel_mean_stats(mean + std::size_t(n) * C, C, m, inv_sd);
  if (threadIdx.x == 0) {
    sum_dy[p] = sg;
    sum_dy_xhat[p] = sgx;
    const int l = labels[n];
    if (l >= 0 && l < levels) {
      const T* e = embed + std::size_t(l) * 3 * C;
      T* de = dembed + std::size_t(l) * 3 * C;
      const T gamma = e[c], alpha = e[C + c];
      const T z = (mu - m) * inv_sd;
      atomicAdd(de + c, sgx + alpha * z * sg);  // d gamma
      atomicAdd(de + C + c, gamma * z * sg);     // d alpha
      atomicAdd(de + 2 * C + c, sg);             // d beta
    }
  }
}

/// One block per plane: dx through the instance norm and, via mu_c, through
/// the channel statistics z (which couple all planes of a sample).
template <typename T>
__global__ void cin_backward_dx(const T* x, const T* dy, const int* labels, const T* embed, const T* mean,
                                const T* rstd, const T* sum_dy, const T* sum_dy_xhat, T* dx, int C, int plane,
                                int levels) {
  const std::size_t p = blockIdx.x;
  const int n = int(p / C), c = int(p % C);
  const int l = labels[n];
  T* dxp = dx + p * plane;
  if (l < 0 || l >= levels) {
    for (int i = threadIdx.x; i < plane; i += blockDim.x) dxp[i] = T(NAN);
    return;
  }
  const T* e = embed + std::size_t(l) * 3 * C;
  const T* mean_n = mean + std::size_t(n) * C;
  const T* sg_n = sum_dy + std::size_t(n) * C;
  T m, inv_sd;
  detail::channel_mean_stats(mean_n, C, m, inv_sd);
  // G_k = dL/dz_k = gamma_k * alpha_k * sum(dy_k); need mean_k G and sum_k G_k (mu_k - m).
  T sG = 0, sGd = 0;
  for (int k = threadIdx.x; k < C; k += blockDim.x) {
    const T G = e[k] * e[C + k] * sg_n[k];
    sG += G;
    sGd += G * (mean_n[k] - m);
  }
  sG = detail::block_sum(sG);
  sGd = detail::block_sum(sGd);
  const T Gc = e[c] * e[C + c] * sg_n[c];
  const T dc = mean_n[c] - m;
  const T dmu = inv_sd * (Gc - sG / T(C)) - inv_sd * inv_sd * inv_sd * dc * sGd / T(C - 1);
  const T gamma = e[c], mu = mean[p], r = rstd[p];
  const T inv_S = T(1) / T(plane);
  const T mean_g = sum_dy[p] * inv_S, mean_gx = sum_dy_xhat[p] * inv_S;
  const T* xp = x + p * plane;
  const T* gp = dy + p * plane;
  for (int i = threadIdx.x; i < plane; i += blockDim.x) {
    const T xhat = (xp[i] - mu) * r;
    dxp[i] = r * gamma * (gp[i] - mean_g - xhat * mean_gx) + dmu * inv_S;
  }
}

}  // namespace kernels

/// Forward pass. Writes y and the per-plane statistics mean, rstd (each
/// batch*channels values, kept for the backward pass). labels: `batch` ints in
/// [0, levels) on the device (an out-of-range label makes that sample's output NaN).
template <typename T>
void cin_forward(const T* x, const int* labels, const T* embed, T* y, T* mean, T* rstd, const CinShape& s,
                 cudaStream_t stream = nullptr) {
  detail::check_cin(s, "cin_forward");
  const unsigned planes = unsigned(std::size_t(s.batch) * s.channels);
  if (planes == 0) return;
  kernels::cin_stats<<<planes, kBlock, 0, stream>>>(x, mean, rstd, s.plane);
  SCOREOOD_CUDA_CHECK_LAUNCH("cin_stats");
  kernels::cin_apply<<<planes, kBlock, 0, stream>>>(x, labels, embed, mean, rstd, y, s.channels, s.plane, s.levels);
  SCOREOOD_CUDA_CHECK_LAUNCH("cin_apply");
}

/// Backward pass from the forward's x, mean, rstd. Writes dx (overwrites) and
/// ADDS the embedding gradient into dembed (levels, 3C), like every parameter
/// gradient in nn::ParameterStore. sum_dy and sum_dy_xhat are scratch of
/// batch*channels values each.
template <typename T>
void cin_backward(const T* x, const T* dy, const int* labels, const T* embed, const T* mean, const T* rstd, T* dx,
                  T* dembed, T* sum_dy, T* sum_dy_xhat, const CinShape& s, cudaStream_t stream = nullptr) {
  detail::check_cin(s, "cin_backward");
  const unsigned planes = unsigned(std::size_t(s.batch) * s.channels);
  if (planes == 0) return;
  kernels::cin_backward_sums<<<planes, kBlock, 0, stream>>>(x, dy, labels, embed, mean, rstd, sum_dy, sum_dy_xhat,
                                                            dembed, s.channels, s.plane, s.levels);
  SCOREOOD_CUDA_CHECK_LAUNCH("cin_backward_sums");
  kernels::cin_backward_dx<<<planes, kBlock, 0, stream>>>(x, dy, labels, embed, mean, rstd, sum_dy, sum_dy_xhat, dx,
                                                          s.channels, s.plane, s.levels);
  SCOREOOD_CUDA_CHECK_LAUNCH("cin_backward_dx");
}

}  // namespace scoreood::gpu
