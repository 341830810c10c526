/** @file bodies.hpp
 *  @brief Every tier body, in dependency order, for one ISA tier: cpu/kernels.hpp
 *  includes this file once per tier, with SCOREOOD_CPU_TIER naming the tier's
 *  namespace (a new tier body is listed here, and only here). */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif

namespace scoreood::cpu::SCOREOOD_CPU_TIER {
namespace tier = ::scoreood::cpu::SCOREOOD_CPU_TIER;  ///< the tier's own kernels, from nested namespaces
}

#include <scoreood/cpu/tiered/avx2_lanes.hpp>
#include <scoreood/cpu/tiered/elu.hpp>
#include <scoreood/cpu/tiered/im2col.hpp>
#include <scoreood/cpu/tiered/packed_gemm.hpp>
#include <scoreood/cpu/tiered/winograd.hpp>
#include <scoreood/cpu/tiered/phase_backward.hpp>
#include <scoreood/cpu/tiered/instance_norm.hpp>
#include <scoreood/cpu/tiered/upsample.hpp>
#include <scoreood/cpu/tiered/conv2d.hpp>
