// Catch2 runner for the CUDA tests (compiled by the host compiler, once).
// Without a usable GPU only the host-side checks of the test references
// ([host]) run, then the program prints "skipped: no GPU" and exits with 77,
// which ctest reports as Skipped (SKIP_RETURN_CODE 77). With the environment
// variable SCOREOOD_REQUIRE_GPU set (scripts/device-check sets it) a missing
// GPU is a failure instead.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    const char* why = e != cudaSuccess ? cudaGetErrorString(e) : "no device";
    if (std::getenv("SCOREOOD_REQUIRE_GPU")) {
      std::printf("FAILED: no GPU (%s) but SCOREOOD_REQUIRE_GPU is set\n", why);
      return 1;
    }
    session.configData().testsOrTags = {"[host]"};
    const int failed = session.run();
    if (failed != 0) return failed;
    std::printf("skipped: no GPU (%s)\n", why);
    return 77;
  }
  return session.run();
}
