/** @file dsm.cuh
 *  @brief Denoising score matching (Eq. 1 / Eq. 4 of the paper) on the device.
 *
 *  Per sample n with noise level sigma_n, clean x_n, noisy xt_n = x_n + sigma_n z
 *  and network output s_n (D values each):
 *    r_n    = s_n + (xt_n - x_n) / sigma_n^2
 *    loss_n = 0.5 * sigma_n^2 * ||r_n||^2,   loss = mean_n loss_n
 *    dloss/ds_n = sigma_n^2 * r_n / N
 *  The same residual gives the reconstruction normality score f_rec (Eq. 3)
 *  and, summed over the group, f_rot (Eq. 5): residual_norms().
 *
 *  dsm_loss_noise() is the form score::dsm_loss uses, from the noise z itself:
 *    loss_n = 0.5 || sigma_n s_n + z_n ||^2 (summed in double),  dloss/ds_n = sigma_n (sigma_n s_n + z_n) / N. */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

#include <type_traits>

namespace scoreood::gpu {
namespace kernels {

/// One block per sample: per-sample loss and (optionally) the gradient.
template <typename T>
__global__ void dsm_loss(const T* s, const T* x, const T* xt, const T* sigma, T* loss, T* grad, std::size_t dim,
                         int batch) {
  const std::size_t n = blockIdx.x;
  const T sg = sigma[n];
  const T inv_s2 = T(1) / (sg * sg);
  const T gscale = sg * sg / T(batch);
  const std::size_t off = n * dim;
  T acc = 0;
  for (std::size_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const T r = s[off + i] + (xt[off + i] - x[off + i]) * inv_s2;
    acc += r * r;
    if (grad) grad[off + i] = gscale * r;
  }
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) loss[n] = T(0.5) * sg * sg * acc;
}

/// One block per sample: out[n] (+)= || s_n + (xt_n - x_n) / sigma_n^2 ||.
template <typename T>
__global__ void residual_norms(const T* s, const T* x, const T* xt, const T* sigma, T sigma_all, T* out,
                               std::size_t dim, bool accumulate) {
  const std::size_t n = blockIdx.x;
  const T sg = sigma ? sigma[n] : sigma_all;
  const T inv_s2 = T(1) / (sg * sg);
  const std::size_t off = n * dim;
  T acc = 0;
  for (std::size_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const T r = s[off + i] + (xt[off + i] - x[off + i]) * inv_s2;
    acc += r * r;
  }
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) out[n] = accumulate ? out[n] + sqrt(acc) : sqrt(acc);
}

/// One block per sample: per-sample sum of (sigma s + z)^2 in double, and the gradient.
template <typename T>
__global__ void dsm_loss_noise(const T* s, const T* z, const T* sigma, double* sum_sq, T* grad, std::size_t dim,
                               int batch) {
  const std::size_t n = blockIdx.x;
  const T sg = sigma[n];
  const std::size_t off = n * dim;
  double acc = 0;
  for (std::size_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const T r = sg * s[off + i] + z[off + i];
    acc += double(r) * double(r);
    if (grad) grad[off + i] = sg * r / T(batch);
  }
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) sum_sq[n] = acc;
}

/// One block: *out = scale * sum(v[0..n)).
template <typename T>
__global__ void scaled_sum(const T* v, std::size_t n, T scale, T* out) {
  T acc = 0;
  for (std::size_t i = threadIdx.x; i < n; i += blockDim.x) acc += v[i];
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) *out = scale * acc;
}

}  // namespace kernels

/// DSM loss of a batch. loss_per_sample: `batch` values; loss_mean (nullable):
/// one value, the mean over the batch; grad (nullable): d(loss_mean)/ds with
/// the shape of s. sigma: `batch` per-sample noise levels on the device.
template <typename T>
void dsm_loss(const T* s, const T* x, const T* xt, const T* sigma, int batch, std::size_t dim, T* loss_per_sample,
              std::type_identity_t<T>* loss_mean, std::type_identity_t<T>* grad, cudaStream_t stream = nullptr) {
  detail::require_shape(batch >= 0 && dim >= 1, "dsm_loss", "need batch >= 0 and dim >= 1");
  if (batch == 0) return;
  kernels::dsm_loss<<<batch, kBlock, 0, stream>>>(s, x, xt, sigma, loss_per_sample, grad, dim, batch);
  SCOREOOD_CUDA_CHECK_LAUNCH("dsm_loss");
  if (loss_mean) {
    kernels::scaled_sum<<<1, kBlock, 0, stream>>>(loss_per_sample, std::size_t(batch), T(1) / T(batch), loss_mean);
    SCOREOOD_CUDA_CHECK_LAUNCH("scaled_sum");
  }
}

/// Per sample n: sum_sq[n] = || sigma_n s_n + z_n ||^2 (double, device); grad (nullable) =
/// sigma_n (sigma_n s_n + z_n) / batch. The loss is 0.5 * mean_n sum_sq[n].
template <typename T>
void dsm_loss_noise(const T* s, const T* z, const T* sigma, int batch, std::size_t dim, double* sum_sq,
                    std::type_identity_t<T>* grad, cudaStream_t stream = nullptr) {
  detail::require_shape(batch >= 0 && dim >= 1, "dsm_loss_noise", "need batch >= 0 and dim >= 1");
  if (batch == 0) return;
  kernels::dsm_loss_noise<<<unsigned(batch), kBlock, 0, stream>>>(s, z, sigma, sum_sq, grad, dim, batch);
  SCOREOOD_CUDA_CHECK_LAUNCH("dsm_loss_noise");
}

/// out[n] (+)= ||s_n + (xt_n - x_n) / sigma_n^2||, sigma_n = sigma[n], or
/// sigma_all when sigma is null (one level for the whole batch).
template <typename T>
void residual_norms(const T* s, const T* x, const T* xt, const std::type_identity_t<T>* sigma,
                    std::type_identity_t<T> sigma_all, int batch, std::size_t dim, T* out, bool accumulate = false,
                    cudaStream_t stream = nullptr) {
  detail::require_shape(batch >= 0 && dim >= 1, "residual_norms", "need batch >= 0 and dim >= 1");
  detail::require(sigma != nullptr || sigma_all > T(0), "residual_norms", "sigma_all must be > 0 when sigma is null");
  if (batch == 0) return;
  kernels::residual_norms<<<batch, kBlock, 0, stream>>>(s, x, xt, sigma, sigma_all, out, dim, accumulate);
  SCOREOOD_CUDA_CHECK_LAUNCH("residual_norms");
}

/// *out = scale * sum of n device values (one block; for batch-sized vectors).
template <typename T>
void scaled_sum(const T* v, std::size_t n, T scale, T* out, cudaStream_t stream = nullptr) {
  kernels::scaled_sum<<<1, kBlock, 0, stream>>>(v, n, scale, out);
  SCOREOOD_CUDA_CHECK_LAUNCH("scaled_sum");
}

}  // namespace scoreood::gpu
