/** @file common.cuh
 *  @brief Launch shapes and warp/block reductions shared by the kernels.
 *
 *  Conventions for every kernel header: tensors are NCHW, contiguous, in
 *  device memory; kernels are templates on the value type (so the header-only
 *  library never defines the same __global__ symbol twice); each host-side
 *  launcher checks its arguments, launches on the given stream and checks the
 *  launch. Nothing synchronises unless a function says so. */
#pragma once
#include <scoreood/cuda/error.cuh>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

namespace scoreood::gpu {

/// Threads per block for every kernel in this folder (a multiple of 32: the
/// block reductions rely on whole warps).
inline constexpr int kBlock = 256;

namespace detail {

/// Blocks for a grid-stride loop over n elements (capped: the loop covers the rest).
inline unsigned grid_for(std::size_t n) {
  const std::size_t blocks = (n + kBlock - 1) / kBlock;
  return static_cast<unsigned>(std::clamp<std::size_t>(blocks, 1, 65535));
}

/// Argument checks shared by the launchers: name the function and the argument.
inline void require(bool ok, const char* who, const std::string& what) {
  if (!ok) throw ValueError(std::string(who) + ": " + what);
}
inline void require_shape(bool ok, const char* who, const std::string& what) {
  if (!ok) throw ShapeError(std::string(who) + ": " + what);
}

/// First index and stride of a 1-D grid-stride loop.
__device__ inline std::size_t global_index() { return std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline std::size_t global_stride() { return std::size_t(blockDim.x) * gridDim.x; }

/// Sum over the 32 lanes of a warp; lane 0 holds the total.
template <typename T>
__device__ inline T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

/// Sum over the whole block, returned to every thread. blockDim.x must be a
/// multiple of 32 and at most 1024; every thread of the block must call it
/// (it contains __syncthreads). Safe to call several times in a row.
template <typename T>
__device__ inline T block_sum(T v) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < warps ? partial[lane] : T(0);
    w = warp_sum(w);
    if (lane == 0) partial[0] = w;
  }
  __syncthreads();
  const T total = partial[0];
  __syncthreads();  // the next call may overwrite partial[]
  return total;
}

}  // namespace detail
}  // namespace scoreood::gpu
