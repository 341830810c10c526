// Uses a few headers of the vendored source tree; exits non-zero on any mismatch.
#include <scoreood/config.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) std::fprintf(stderr, "consumer_add_subdirectory: FAILED %s\n", what), ++failures;
  };
#ifndef _OPENMP
  check(false, "OpenMP flags reach the consumer");
#endif
  // Philox is a pure function of (seed, stream, index).
  const scoreood::CounterRng a(42, 7), b(42, 7);
  check(a.normal(12345) == b.normal(12345), "CounterRng is deterministic");
  const float u = a.uniform(3);
  check(u > 0.0f && u < 1.0f, "uniform() is in (0, 1)");

  // A checked container round trip through a temporary file.
  const auto path = std::filesystem::temp_directory_path() / ("scoreood-consumer-add_subdirectory-" + std::to_string(std::random_device{}()) + ".sood");
  scoreood::io::ByteWriter w;
  w.put<std::uint32_t>(2026);
  w.put_string("consumer");
  scoreood::io::save_container(path, "consumer-test", w);
  const auto body = scoreood::io::load_container(path, "consumer-test");
  scoreood::io::ByteReader r(body, path.string());
  check(r.get<std::uint32_t>() == 2026 && r.get_string() == "consumer" && r.at_end(), "container round trip");
  std::filesystem::remove(path);

  scoreood::Images x({2, 1, 4, 4});
  check(scoreood::to_string(scoreood::shape_of(x)) == "[2, 1, 4, 4]", "Images shape");
  check(std::string(SCOREOOD_VERSION_STRING).size() > 0, "version string");
  if (failures == 0) std::printf("consumer_add_subdirectory: OK (scoreood %s)\n", SCOREOOD_VERSION_STRING);
  return failures == 0 ? 0 : 1;
}
