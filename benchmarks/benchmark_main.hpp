// The main of every CPU benchmark program: Google Benchmark's, with the CPU
// kernels' ISA tier (cpu/isa.hpp; SCOREOOD_ISA forces one) in the context
// printed above the table and in --benchmark_format=json.
#pragma once
#include <benchmark/benchmark.h>
#include <scoreood/cpu/isa.hpp>

#include <string>

#define SCOREOOD_BENCHMARK_MAIN()                                                                     \
  int main(int argc, char** argv) {                                                                   \
    namespace isa = ::scoreood::cpu::isa;                                                             \
    ::benchmark::AddCustomContext("scoreood_isa_tier", std::string(isa::name(isa::active())));        \
    ::benchmark::AddCustomContext("scoreood_isa_best", std::string(isa::name(isa::detected())));      \
    ::benchmark::Initialize(&argc, argv);                                                             \
    if (::benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;                               \
    ::benchmark::RunSpecifiedBenchmarks();                                                            \
    ::benchmark::Shutdown();                                                                          \
    return 0;                                                                                         \
  }                                                                                                   \
  static_assert(true, "the macro's call takes a semicolon")
