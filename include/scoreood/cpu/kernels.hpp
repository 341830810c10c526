/** @file kernels.hpp
 *  @brief The hot CPU kernels, compiled once per ISA tier (cpu/isa.hpp).
 *
 *  The files of cpu/tiered/ (convolutions with their GEMM, Winograd and
 *  phase-plane kernels, im2col, instance norm++, ELU, upsampling) are tier
 *  bodies: this header includes their list (cpu/tiered/bodies.hpp) three times, into
 *      scoreood::cpu::baseline   the build's own flags,
 *      scoreood::cpu::avx2       inside a target region for AVX2 + FMA,
 *      scoreood::cpu::avx512     inside a target region for AVX-512 (F, BW, DQ, VL),
 *  with SCOREOOD_TIER_AVX2 / SCOREOOD_TIER_AVX512 saying which hand-written
 *  intrinsics a copy may use. Each copy is complete and self-consistent (its
 *  packing layout, its choice of paths); ops<backend::cpu> picks one per call
 *  from isa::active(). Without tiers (not x86-64, or not GCC/Clang) only
 *  baseline exists, and it uses the AVX-512 kernels where the build's own flags
 *  enable AVX-512, as before run-time dispatch. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/conv_geometry.hpp>
#include <scoreood/cpu/elementwise.hpp>
#include <scoreood/cpu/gemm.hpp>
#include <scoreood/cpu/instance_norm_cache.hpp>
#include <scoreood/cpu/isa.hpp>
#include <scoreood/cpu/threading.hpp>

// Everything a tier body includes, included here first, outside any target
// region: the standard library and Eigen are compiled once, for the build's flags.
#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if SCOREOOD_ISA_DISPATCH || defined(__AVX512F__)
#include <immintrin.h>
#endif

// ---------------------------------------------------------------- baseline
#define SCOREOOD_CPU_TIER baseline
#if SCOREOOD_ISA_DISPATCH
#define SCOREOOD_TIER_AVX512 0
#elif defined(__AVX512F__)
#define SCOREOOD_TIER_AVX512 1  // one tier, built for AVX-512 by the build's flags
#else
#define SCOREOOD_TIER_AVX512 0
#endif
#define SCOREOOD_TIER_AVX2 0
#include <scoreood/cpu/tiered/bodies.hpp>
#undef SCOREOOD_CPU_TIER
#undef SCOREOOD_TIER_AVX512
#undef SCOREOOD_TIER_AVX2

#if SCOREOOD_ISA_DISPATCH
// ---------------------------------------------------------------- AVX2 + FMA
SCOREOOD_TARGET_PUSH(SCOREOOD_TARGET_AVX2)
#define SCOREOOD_CPU_TIER avx2
#define SCOREOOD_TIER_AVX512 0
#define SCOREOOD_TIER_AVX2 1
#include <scoreood/cpu/tiered/bodies.hpp>
#undef SCOREOOD_CPU_TIER
#undef SCOREOOD_TIER_AVX512
#undef SCOREOOD_TIER_AVX2
SCOREOOD_TARGET_POP

// ---------------------------------------------------------------- AVX-512
SCOREOOD_TARGET_PUSH(SCOREOOD_TARGET_AVX512)
#define SCOREOOD_CPU_TIER avx512
#define SCOREOOD_TIER_AVX512 1
#define SCOREOOD_TIER_AVX2 0
#include <scoreood/cpu/tiered/bodies.hpp>
#undef SCOREOOD_CPU_TIER
#undef SCOREOOD_TIER_AVX512
#undef SCOREOOD_TIER_AVX2
SCOREOOD_TARGET_POP
#endif

/// Evaluates `call` with `k` naming the active tier's namespace, e.g.
///     SCOREOOD_CPU_DISPATCH(k::conv::forward(p, w, b, x, y, residual))
/// (one switch per kernel call, on a relaxed atomic: nothing next to a convolution).
#define SCOREOOD_CPU_DISPATCH(call)                                                        \
  [&]() -> decltype(auto) {                                                                \
    SCOREOOD_CPU_DISPATCH_TIERS(call)                                                      \
    { namespace k = ::scoreood::cpu::baseline; return call; }                              \
  }()
#if SCOREOOD_ISA_DISPATCH
#define SCOREOOD_CPU_DISPATCH_TIERS(call)                                                  \
  switch (::scoreood::cpu::isa::active()) {                                                \
    case ::scoreood::cpu::isa::Tier::avx512: { namespace k = ::scoreood::cpu::avx512; return call; } \
    case ::scoreood::cpu::isa::Tier::avx2: { namespace k = ::scoreood::cpu::avx2; return call; }     \
    default: break;                                                                        \
  }
#else
#define SCOREOOD_CPU_DISPATCH_TIERS(call)
#endif
