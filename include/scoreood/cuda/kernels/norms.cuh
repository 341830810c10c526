/** @file norms.cuh
 *  @brief Per-image L2 norms for the normality vectors: f_msma (Eq. 2) is
 *  ||sigma_i * s(x, i)||, i.e. row_norms(s, ..., scale = sigma_i).
 *
 *  The feature reductions of ops<cuda> accumulate in double, with the
 *  operation order of score/normality.hpp:
 *    scaled_norms:    out[b] = || sigma s_b ||, each term double(sigma * s) squared;
 *    residual_norms:  out[g B + b] = || s_{g B + b} + z_b * inv || (inv = float 1 / sigma), group-major;
 *    clean_map:       out[b, p] = sum_c (sigma s_b[c, p])^2              (the anomaly map's msma term);
 *    residual_map:    out[b, p] = w sum_g sum_c (s_{g B + b}[c, p] + z_b[c, p] / sigma)^2. */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

namespace scoreood::gpu {
namespace kernels {

/// One block per row: out[n * out_stride] (+)= scale * ||a[n, :]||.
template <typename T>
__global__ void row_norms(const T* a, std::size_t dim, T scale, T* out, std::size_t out_stride, bool accumulate) {
  const std::size_t n = blockIdx.x;
  const T* row = a + n * dim;
  T acc = 0;
  for (std::size_t i = threadIdx.x; i < dim; i += blockDim.x) acc += row[i] * row[i];
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) {
    const T v = scale * sqrt(acc);
    out[n * out_stride] = accumulate ? out[n * out_stride] + v : v;
  }
}

/// One block per image: out[b] = || sigma * s_b || in double.
template <typename T>
__global__ void scaled_norms(const T* s, std::size_t dim, T sigma, double* out) {
  const T* row = s + std::size_t(blockIdx.x) * dim;
  double acc = 0;
  for (std::size_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const double v = double(sigma * row[i]);
    acc += v * v;
  }
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) out[blockIdx.x] = sqrt(acc);
}

/// One block per (group element g, image b), block g * B + b: out[g B + b] = || s + z_b * inv ||.
template <typename T>
__global__ void residual_norms_grouped(const T* s, const T* z, std::size_t dim, int B, T inv, double* out) {
  const std::size_t k = blockIdx.x, b = k % std::size_t(B);
  const T* sp = s + k * dim;
  const T* zp = z + b * dim;
  const double dinv = double(inv);
  double acc = 0;
  for (std::size_t i = threadIdx.x; i < dim; i += blockDim.x) {
    const double r = double(sp[i]) + double(zp[i]) * dinv;
    acc += r * r;
  }
  acc = detail::block_sum(acc);
  if (threadIdx.x == 0) out[k] = sqrt(acc);
}

/// One thread per (image, pixel): out[b HW + p] = sum_c (sigma s[b, c, p])^2.
template <typename T>
__global__ void clean_map(const T* s, int B, int C, std::size_t HW, double sigma, double* out) {
  const std::size_t n = std::size_t(B) * HW;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const std::size_t b = i / HW, p = i % HW;
    const T* sp = s + b * C * HW + p;
    double acc = 0;
    for (int c = 0; c < C; ++c) {
      const double v = sigma * double(sp[std::size_t(c) * HW]);
      acc += v * v;
    }
    out[i] = acc;
  }
}

/// One thread per (image, pixel): out[b HW + p] = w * sum_g sum_c (s[g B + b, c, p] + z[b, c, p] * inv)^2.
template <typename T>
__global__ void residual_map(const T* s, const T* z, int B, int C, std::size_t HW, int groups, double inv, double w,
                             double* out) {
  const std::size_t n = std::size_t(B) * HW, P = std::size_t(C) * HW;
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const std::size_t b = i / HW, p = i % HW;
    double acc = 0;
    for (int g = 0; g < groups; ++g) {
      const T* sp = s + (std::size_t(g) * B + b) * P + p;
      const T* zp = z + b * P + p;
      for (int c = 0; c < C; ++c) {
        const double r = double(sp[std::size_t(c) * HW]) + double(zp[std::size_t(c) * HW]) * inv;
        acc += r * r;
      }
    }
    out[i] = w * acc;
  }
}

}  // namespace kernels

/// out[b] = ||sigma s_b|| (double, device) for the B = rows images of s.
template <typename T>
void scaled_norms(const T* s, int rows, std::size_t dim, T sigma, double* out, cudaStream_t stream = nullptr) {
  detail::require_shape(rows >= 0 && dim >= 1, "scaled_norms", "need rows >= 0 and dim >= 1");
  if (rows == 0) return;
  kernels::scaled_norms<<<unsigned(rows), kBlock, 0, stream>>>(s, dim, sigma, out);
  SCOREOOD_CUDA_CHECK_LAUNCH("scaled_norms");
}

/// out[g B + b] = ||s_{g B + b} + z_b * inv|| (double, device) for `groups` copies of B images.
template <typename T>
void residual_norms_grouped(const T* s, const T* z, int B, int groups, std::size_t dim, T inv, double* out,
                            cudaStream_t stream = nullptr) {
  detail::require_shape(B >= 0 && groups >= 0 && dim >= 1, "residual_norms_grouped",
                        "need B >= 0, groups >= 0 and dim >= 1");
  if (B == 0 || groups == 0) return;
  kernels::residual_norms_grouped<<<unsigned(B) * unsigned(groups), kBlock, 0, stream>>>(s, z, dim, B, inv, out);
  SCOREOOD_CUDA_CHECK_LAUNCH("residual_norms_grouped");
}

/// out[b HW + p] = sum_c (sigma s[b, c, p])^2 (double, device).
template <typename T>
void clean_map(const T* s, int B, int C, std::size_t HW, double sigma, double* out, cudaStream_t stream = nullptr) {
  const std::size_t n = std::size_t(B) * HW;
  if (n == 0) return;
  kernels::clean_map<<<detail::grid_for(n), kBlock, 0, stream>>>(s, B, C, HW, sigma, out);
  SCOREOOD_CUDA_CHECK_LAUNCH("clean_map");
}

/// out[b HW + p] = w sum_g sum_c (s[g B + b, c, p] + z[b, c, p] * inv)^2 (double, device).
template <typename T>
void residual_map(const T* s, const T* z, int B, int C, std::size_t HW, int groups, double inv, double w,
                  double* out, cudaStream_t stream = nullptr) {
  const std::size_t n = std::size_t(B) * HW;
  if (n == 0) return;
  kernels::residual_map<<<detail::grid_for(n), kBlock, 0, stream>>>(s, z, B, C, HW, groups, inv, w, out);
  SCOREOOD_CUDA_CHECK_LAUNCH("residual_map");
}

/// out[n * out_stride] = (or +=) |scale| * ||a_n|| for the rows = images of a
/// (rows, dim) array. out_stride lets one call fill a column of an N x L
/// normality matrix (out = &matrix[0][level], out_stride = L).
template <typename T>
void row_norms(const T* a, int rows, std::size_t dim, T scale, T* out, std::size_t out_stride = 1,
               bool accumulate = false, cudaStream_t stream = nullptr) {
  detail::require_shape(rows >= 0 && dim >= 1 && out_stride >= 1, "row_norms",
                        "need rows >= 0, dim >= 1 and out_stride >= 1");
  if (rows == 0) return;
  kernels::row_norms<<<rows, kBlock, 0, stream>>>(a, dim, scale < T(0) ? -scale : scale, out, out_stride,
                                                  accumulate);
  SCOREOOD_CUDA_CHECK_LAUNCH("row_norms");
}

}  // namespace scoreood::gpu
