/** @file threading.hpp
 *  @brief OpenMP helpers: static work splitting and grow-only per-thread scratch.
 *
 *  CPU kernels split a batch across threads and call single-threaded GEMMs per
 *  image: on small convolution GEMMs this beats letting Eigen split each GEMM
 *  (measured ~240 vs ~140 GFLOP/s on 2 cores for 32x288x784). Scratch buffers
 *  are thread_local and shared by every layer, so a network of 30 convolutions
 *  holds one im2col buffer per thread, and steady-state calls never allocate. */
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace scoreood::cpu {

/// Threads a new parallel region would use (1 without OpenMP).
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// True inside an active parallel region (kernels then run serially).
inline bool in_parallel() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

/// Threads worth using for `n` independent items of about `work` flops each:
/// 1 inside a parallel region or when the total is too small to amortise the fork.
inline int threads_for(std::size_t n, double work_per_item = 1e6) {
  const int nt = max_threads();
  if (nt <= 1 || in_parallel() || n < 2 || double(n) * work_per_item < 2e5) return 1;
  return int(std::min<std::size_t>(std::size_t(nt), n));
}

/// Contiguous share [begin, end) of `n` items for thread `t` of `nt`.
inline std::pair<std::size_t, std::size_t> split_range(std::size_t n, int t, int nt) {
  return {n * std::size_t(t) / std::size_t(nt), n * std::size_t(t + 1) / std::size_t(nt)};
}

/// Runs body(t, nt) on `nt` threads (inline when nt == 1). The body may use
/// `#pragma omp barrier` only when nt > 1 is guaranteed by the caller.
template <class Body>
void parallel_region(int nt, Body&& body) {
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    body(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  body(0, 1);
}

/// f(i) for i in [0, n), split statically; serial when small (work = cost of one item).
template <class F>
void parallel_for(std::size_t n, F&& f, double work_per_item = 1e3) {
  const int nt = threads_for(n, work_per_item);
  parallel_region(nt, [&](int t, int T) {
    const auto [b, e] = split_range(n, t, T);
    for (std::size_t i = b; i < e; ++i) f(i);
  });
}

/// Barrier that is a no-op when the region is serial.
inline void barrier([[maybe_unused]] int nt) {
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp barrier
  }
#endif
}

/// Slots of the per-thread scratch; each kernel family uses its own slot.
enum class Scratch : int {
  col = 0, dcol = 1, accum = 2, temp = 3, packed = 4, wide = 5,
  wino_u = 6, wino_v = 7, wino_m = 8, wino_small = 9, wino_grad = 10,  // Winograd convolutions (winograd.hpp)
  phase_acc = 11, phase_out = 12,  // strided backward on phase planes (phase_backward.hpp)
  count = 13
};

/// A grow-only per-thread buffer of at least n elements (contents unspecified).
/// The pointer stays valid until the same thread asks the same slot for more.
template <class T>
T* scratch(Scratch slot, std::size_t n) {
  thread_local std::array<std::vector<T>, std::size_t(Scratch::count)> buffers;
  auto& b = buffers[std::size_t(slot)];
  if (b.size() < n) {
    b.clear();
    b.shrink_to_fit();
    b.resize(n);
  }
  return b.data();
}

}  // namespace scoreood::cpu
