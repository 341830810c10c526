// libFuzzer target: the IDX reader (images and labels, raw or gzip).
#include "fuzz_common.hpp"

#include <scoreood/data/idx.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace so = scoreood;
  const auto p = so::fuzz::scratch_file("fuzz-images-idx3-ubyte");
  so::fuzz::write_file(p, data, size);
  try {
    const so::Images x = so::data::load_idx_images(p);
    for (float v : x)
      if (!(v >= 0.0f && v <= 1.0f)) __builtin_trap();  // pixels are bytes / 255
  } catch (const so::Error&) {
  }
  try {
    so::data::load_idx_labels(p);
  } catch (const so::Error&) {
  }
  return 0;
}
