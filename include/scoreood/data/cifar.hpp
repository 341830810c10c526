/** @file cifar.hpp
 *  @brief CIFAR-10 / CIFAR-100 binary reader (`.bin` or `.bin.gz`).
 *
 *  CIFAR-10 records: 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B,
 *  each plane row-major 32×32). CIFAR-100 records: coarse label, fine label,
 *  then the same 3072 bytes; the fine label (0..99) is returned. The format
 *  has no header, so the layout is decided by the size (a multiple of 3073 or
 *  of 3074 bytes) and, when both fit, by the file name containing "100". */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/data/dataset.hpp>
#include <scoreood/data/input_file.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace scoreood::data {

enum class CifarLayout { Auto, Cifar10, Cifar100 };

namespace detail {
inline constexpr std::size_t kCifarPixels = 3 * 32 * 32;
/// The full CIFAR training set is 50 000 records (~150 MB); refuse anything 40× that.
inline constexpr std::uint64_t kMaxCifarBytes = std::uint64_t(6) << 30;
}  // namespace detail

/// Reads a CIFAR binary file. With `Auto`, the layout follows from the size and name.
inline Dataset load_cifar(const std::filesystem::path& path, CifarLayout layout = CifarLayout::Auto) {
  detail::InputFile f(path);
  const std::vector<unsigned char> bytes = f.read_all(std::min(f.max_decoded_size(), detail::kMaxCifarBytes));
  const std::size_t size = bytes.size();
  if (size == 0) f.fail("no data (empty after decompression)");
  const bool fits10 = size % (detail::kCifarPixels + 1) == 0;
  const bool fits100 = size % (detail::kCifarPixels + 2) == 0;
  if (layout == CifarLayout::Auto) {
    if (fits10 && fits100) {
      layout = path.filename().string().find("100") != std::string::npos ? CifarLayout::Cifar100 : CifarLayout::Cifar10;
    } else if (fits10) {
      layout = CifarLayout::Cifar10;
    } else if (fits100) {
      layout = CifarLayout::Cifar100;
    } else {
      f.fail("size " + std::to_string(size) + " bytes is not a whole number of CIFAR-10 records (3073 bytes) or " +
             "CIFAR-100 records (3074 bytes): truncated or not a CIFAR file");
    }
  }
  const std::size_t label_bytes = layout == CifarLayout::Cifar100 ? 2 : 1;
  const std::size_t record = detail::kCifarPixels + label_bytes;
  const char* layout_name = label_bytes == 2 ? "CIFAR-100" : "CIFAR-10";
  if (size % record != 0)
    f.fail("size " + std::to_string(size) + " bytes is not a whole number of " + layout_name + " records (" +
           std::to_string(record) + " bytes): truncated or wrong layout");
  const std::size_t n = size / record;

  Dataset d;
  d.source = path.string();
  d.labels.resize(n);
  const int max_label = label_bytes == 2 ? 100 : 10;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char* r = bytes.data() + i * record;
    if (label_bytes == 2 && r[0] >= 20)
      f.fail("record " + std::to_string(i) + " has coarse label " + std::to_string(r[0]) +
             " (CIFAR-100 has 20): not a CIFAR-100 file");
    const int label = r[label_bytes - 1];
    if (label >= max_label)
      f.fail("record " + std::to_string(i) + " has label " + std::to_string(label) + ", outside 0.." +
             std::to_string(max_label - 1) + " of " + layout_name + ": wrong layout or not a CIFAR file");
    d.labels[i] = label;
  }
  d.images = Images::from_shape({n, std::size_t(3), std::size_t(32), std::size_t(32)});
  float* out = d.images.data();
  const auto sn = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static) if (n > 256)
  for (std::ptrdiff_t i = 0; i < sn; ++i)
    detail::bytes_to_unit_float(bytes.data() + std::size_t(i) * record + label_bytes,
                                out + std::size_t(i) * detail::kCifarPixels, detail::kCifarPixels);
  return d;
}

}  // namespace scoreood::data
