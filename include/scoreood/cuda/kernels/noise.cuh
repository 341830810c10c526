/** @file noise.cuh
 *  @brief Random numbers on the device from scoreood::CounterRng (Philox
 *  4x32-10, core/rng.hpp). The generator is a pure function of (seed, stream,
 *  index) shared with the CPU, so element i here equals rng.normal(i) on the
 *  host for the same generator: the same seed gives the same noise on both.
 *
 *  Index convention (the CPU path must use the same): the noise of a batch is
 *  indexed by the flat NCHW element index, offset by `offset`. */
#pragma once
#include <scoreood/core/rng.hpp>
#include <scoreood/cuda/kernels/common.cuh>

#include <type_traits>

namespace scoreood::gpu {
namespace kernels {

template <typename T>
__global__ void fill_normal(T* out, std::size_t n, CounterRng rng, std::uint64_t offset) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) out[i] = T(rng.normal(offset + i));
}

template <typename T>
__global__ void fill_uniform(T* out, std::size_t n, CounterRng rng, std::uint64_t offset) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride())
    out[i] = T(rng.uniform(offset + i));
}

template <typename I>
__global__ void fill_uniform_int(I* out, std::size_t n, std::uint32_t bound, CounterRng rng, std::uint64_t offset) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride())
    out[i] = I(rng.uniform_int(offset + i, bound));
}

/// xt = x + sigma[n] * z with z_i = rng.normal(offset + i); z written when non-null.
template <typename T>
__global__ void add_noise(const T* x, T* xt, T* z_out, const T* sigma, std::size_t dim, std::size_t n_all,
                          CounterRng rng, std::uint64_t offset) {
  for (std::size_t i = detail::global_index(); i < n_all; i += detail::global_stride()) {
    const T z = T(rng.normal(offset + i));
    xt[i] = x[i] + sigma[i / dim] * z;
    if (z_out) z_out[i] = z;
  }
}

/// out[i] = table[index[i]]; an index outside [0, table_size) gives NaN.
template <typename T>
__global__ void gather(const T* table, const int* index, T* out, std::size_t n, int table_size) {
  for (std::size_t i = detail::global_index(); i < n; i += detail::global_stride()) {
    const int k = index[i];
    out[i] = (k >= 0 && k < table_size) ? table[k] : T(NAN);
  }
}

}  // namespace kernels

/// out[i] = rng.normal(offset + i), bit-identical to the host's CounterRng.
template <typename T>
void fill_normal(T* out, std::size_t n, const CounterRng& rng, std::uint64_t offset = 0, cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::fill_normal<<<detail::grid_for(n), kBlock, 0, stream>>>(out, n, rng, offset);
  SCOREOOD_CUDA_CHECK_LAUNCH("fill_normal");
}

/// out[i] = rng.uniform(offset + i), in (0, 1).
template <typename T>
void fill_uniform(T* out, std::size_t n, const CounterRng& rng, std::uint64_t offset = 0,
                  cudaStream_t stream = nullptr) {
  if (n == 0) return;
  kernels::fill_uniform<<<detail::grid_for(n), kBlock, 0, stream>>>(out, n, rng, offset);
  SCOREOOD_CUDA_CHECK_LAUNCH("fill_uniform");
}

/// out[i] = rng.uniform_int(offset + i, bound), in [0, bound): noise-level
/// indices and group elements per sample.
template <typename I>
void fill_uniform_int(I* out, std::size_t n, std::uint32_t bound, const CounterRng& rng, std::uint64_t offset = 0,
                      cudaStream_t stream = nullptr) {
  detail::require(bound > 0, "fill_uniform_int", "bound must be > 0");
  if (n == 0) return;
  kernels::fill_uniform_int<<<detail::grid_for(n), kBlock, 0, stream>>>(out, n, bound, rng, offset);
  SCOREOOD_CUDA_CHECK_LAUNCH("fill_uniform_int");
}

/// Perturbs a batch of `batch` images of `dim` values: xt = x + sigma[n] * z,
/// z_i = rng.normal(offset + i) (i the flat element index); z_out may be null.
template <typename T>
void add_noise(const T* x, T* xt, std::type_identity_t<T>* z_out, const std::type_identity_t<T>* sigma, int batch,
               std::size_t dim, const CounterRng& rng,
               std::uint64_t offset = 0, cudaStream_t stream = nullptr) {
  detail::require_shape(batch >= 0 && dim >= 1, "add_noise", "need batch >= 0 and dim >= 1");
  const std::size_t n = std::size_t(batch) * dim;
  if (n == 0) return;
  kernels::add_noise<<<detail::grid_for(n), kBlock, 0, stream>>>(x, xt, z_out, sigma, dim, n, rng, offset);
  SCOREOOD_CUDA_CHECK_LAUNCH("add_noise");
}

/// out[i] = table[index[i]] (for example sigma per sample from the level index).
template <typename T>
void gather(const T* table, const int* index, T* out, std::size_t n, int table_size, cudaStream_t stream = nullptr) {
  detail::require(table_size > 0, "gather", "table_size must be > 0");
  if (n == 0) return;
  kernels::gather<<<detail::grid_for(n), kBlock, 0, stream>>>(table, index, out, n, table_size);
  SCOREOOD_CUDA_CHECK_LAUNCH("gather");
}

}  // namespace scoreood::gpu
