// libFuzzer target: the CIFAR-10 / CIFAR-100 binary reader (raw or gzip).
#include "fuzz_common.hpp"

#include <scoreood/data/cifar.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace so = scoreood;
  // "100" in the name settles sizes that fit both layouts as CIFAR-100.
  const auto p = so::fuzz::scratch_file(size % 2 ? "test_batch.bin" : "cifar100-test.bin");
  so::fuzz::write_file(p, data, size);
  for (auto layout : {so::data::CifarLayout::Auto, so::data::CifarLayout::Cifar10}) {
    try {
      const auto d = so::data::load_cifar(p, layout);
      if (d.labels.size() != d.images.shape()[0]) __builtin_trap();
      for (int l : d.labels)
        if (l < 0 || l >= 100) __builtin_trap();
    } catch (const so::Error&) {
    }
  }
  return 0;
}
