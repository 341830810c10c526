/** @file backend.hpp
 *  @brief Backend tag types. A network policy carries its backend as a template
 *  argument (`SmallUNet<backend::cpu>`); the CUDA specialisations live under cuda/.
 *
 *  The tags live in `scoreood::backend` because `scoreood::cpu` and
 *  `scoreood::cuda` are the namespaces of the kernels themselves. */
#pragma once
#include <string_view>

namespace scoreood::backend {

/// CPU fallback: Eigen GEMM and OpenMP. Always available.
struct cpu {
  static constexpr std::string_view name = "cpu";
};
/// Hand-written CUDA kernels plus cuDNN convolutions (needs nvcc).
struct cuda {
  static constexpr std::string_view name = "cuda";
};

}  // namespace scoreood::backend
