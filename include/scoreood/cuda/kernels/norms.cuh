/** @file norms.cuh
 *  @brief Per-image L2 norms for the normality vectors: f_msma (Eq. 2) is
 *  ||sigma_i * s(x, i)||, i.e. row_norms(s, ..., scale = sigma_i). */
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

}  // namespace kernels

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
