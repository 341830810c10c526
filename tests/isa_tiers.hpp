// The ISA tiers of the CPU kernels (cpu/isa.hpp), for tests that run each in turn.
#pragma once
#include <catch2/catch.hpp>
#include <scoreood/cpu/isa.hpp>

#include <vector>

namespace scoreood::testing {

/// Every tier this CPU runs, baseline first.
inline std::vector<cpu::isa::Tier> cpu_tiers() {
  std::vector<cpu::isa::Tier> out;
  for (auto t : {cpu::isa::Tier::baseline, cpu::isa::Tier::avx2, cpu::isa::Tier::avx512})
    if (cpu::isa::supported(t)) out.push_back(t);
  return out;
}

}  // namespace scoreood::testing

/// Runs the rest of the test case once per tier of this CPU (a Catch2 generator), that tier active.
#define SCOREOOD_FOR_EACH_CPU_TIER()                                                   \
  const auto scoreood_tier = GENERATE(from_range(::scoreood::testing::cpu_tiers()));      \
  const ::scoreood::cpu::isa::ScopedTier scoreood_scoped_tier(scoreood_tier);          \
  INFO("ISA tier " << ::scoreood::cpu::isa::name(scoreood_tier))
