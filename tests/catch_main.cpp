// The one Catch2 main shared by every test program.
//
// SCOREOOD_ISA=avx512|avx2|baseline runs the whole program on that tier of the
// CPU kernels (ctest runs the layer and network tests once per tier); a tier
// this CPU lacks ends the program with 77, which ctest reports as skipped.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <scoreood/cpu/isa.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>

int main(int argc, char** argv) {
  namespace isa = scoreood::cpu::isa;
  if (const char* tier = std::getenv("SCOREOOD_ISA"); tier && *tier) {
    try {
      if (!isa::supported(isa::parse(tier))) {
        std::printf("skipped: this CPU has no %s tier (best: %s)\n", tier, isa::name(isa::detected()).data());
        return 77;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 2;
    }
  }
  return Catch::Session().run(argc, argv);
}
