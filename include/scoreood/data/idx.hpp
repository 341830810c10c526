/** @file idx.hpp
 *  @brief IDX reader (MNIST, Fashion-MNIST, KMNIST, EMNIST…), raw or `.gz`.
 *
 *  Format (big-endian): bytes 0,0 | type (0x08 = unsigned byte) | number of
 *  dimensions | one u32 per dimension | the data. Images are magic 0x00000803
 *  (N × rows × cols), labels 0x00000801 (N). The header is checked against the
 *  file before anything is allocated (see input_file.hpp); a gzip stream's
 *  buffer grows with the data that really arrives. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/data/dataset.hpp>
#include <scoreood/data/input_file.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace scoreood::data {

namespace detail {

/// No IDX file we read is near this; anything above is a corrupt header.
inline constexpr std::uint64_t kMaxIdxPayload = std::uint64_t(1) << 34;

inline std::string hex32(std::uint32_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 7; i >= 0; --i) s += digits[(v >> (4 * i)) & 0xF];
  return s;
}

inline std::uint32_t read_be32(InputFile& f, std::string_view what) {
  unsigned char b[4];
  f.read_exact(b, 4, what);
  return (std::uint32_t(b[0]) << 24) | (std::uint32_t(b[1]) << 16) | (std::uint32_t(b[2]) << 8) | std::uint32_t(b[3]);
}

/// Reads and validates an IDX header of unsigned bytes with `ndims` dimensions;
/// returns the dimensions and checks that exactly their product of bytes follows.
template <std::size_t NDims>
std::array<std::uint32_t, NDims> read_idx_header(InputFile& f, std::string_view kind) {
  const std::uint32_t magic = read_be32(f, "the IDX header");
  const std::uint32_t expected = 0x00000800u | static_cast<std::uint32_t>(NDims);
  if (magic != expected) {
    std::string hint;
    if ((magic >> 16) == 0 && ((magic >> 8) & 0xFF) == 0x08)
      hint = (magic & 0xFF) == 1 ? " (this is an IDX label file)" : (magic & 0xFF) == 3 ? " (this is an IDX image file)" : "";
    else if ((magic >> 16) == 0)
      hint = " (IDX element type " + hex32((magic >> 8) & 0xFF) + " is not unsigned byte)";
    f.fail("bad magic number " + hex32(magic) + ", expected " + hex32(expected) + " for IDX " + std::string(kind) + hint);
  }
  std::array<std::uint32_t, NDims> dims{};
  std::uint64_t payload = 1;
  for (std::size_t i = 0; i < NDims; ++i) {
    dims[i] = read_be32(f, "the IDX header");
    if (dims[i] == 0) f.fail("zero dimension in the IDX header (dimension " + std::to_string(i) + ")");
    if (dims[i] > kMaxIdxPayload / payload)  // divide first: the product could overflow 64 bits
      f.fail("IDX header claims an implausible size (more than 2^34 bytes of " + std::string(kind) + ")");
    payload *= dims[i];
  }
  const std::uint64_t header = 4 + 4 * NDims;
  std::string dims_text;
  for (std::size_t i = 0; i < NDims; ++i) dims_text += (i ? "x" : "") + std::to_string(dims[i]);
  if (!f.gzipped()) {
    // Raw file: the size must match exactly, checked before allocating.
    const std::uint64_t want = header + payload;
    if (f.file_size() < want)
      f.fail("truncated: the header declares " + dims_text + " (" + std::to_string(want) + " bytes) but the file has " +
             std::to_string(f.file_size()) + " bytes");
    if (f.file_size() > want)
      f.fail("wrong dimensions: the header declares " + dims_text + " (" + std::to_string(want) +
             " bytes) but the file has " + std::to_string(f.file_size()) + " bytes");
  } else if (payload > f.max_decoded_size()) {
    f.fail("truncated or corrupt header: it declares " + dims_text + " (" + std::to_string(payload) +
           " bytes) but a gzip file of " + std::to_string(f.file_size()) + " bytes cannot hold more than " +
           std::to_string(f.max_decoded_size()));
  }
  return dims;
}

/// Reads the `n` payload bytes a validated header declared. A raw file's size
/// was checked exactly, so the buffer is allocated at once; a gzip stream may
/// still be shorter than its header claims (up to deflate's ~1032:1 ratio), so
/// its buffer grows as data really arrives and a lying header costs no more
/// memory than the data it comes with.
inline std::vector<unsigned char> read_idx_payload(InputFile& f, std::uint64_t n, const std::string& what) {
  std::vector<unsigned char> bytes;
  if (!f.gzipped()) {
    bytes.resize(n);
    f.read_exact(bytes.data(), bytes.size(), what);
    return bytes;
  }
  std::uint64_t chunk = std::uint64_t(1) << 20;
  while (bytes.size() < n) {
    const std::size_t old = bytes.size();
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, n - old));
    bytes.resize(old + want);
    const std::size_t got = f.read(bytes.data() + old, want);
    if (got < want)
      f.fail("truncated: " + what + " needs " + std::to_string(n) + " bytes but only " + std::to_string(old + got) +
             " remain");
    chunk = std::min<std::uint64_t>(chunk * 2, std::uint64_t(1) << 28);
  }
  return bytes;
}

}  // namespace detail

/// Reads an IDX image file (magic 0x00000803) as N×1×rows×cols floats in [0, 1].
inline Images load_idx_images(const std::filesystem::path& path) {
  detail::InputFile f(path);
  const auto dims = detail::read_idx_header<3>(f, "images");
  const std::size_t n = dims[0], h = dims[1], w = dims[2];
  const std::vector<unsigned char> bytes =
      detail::read_idx_payload(f, std::uint64_t(n) * h * w, "pixel data of " + std::to_string(n) + " images");
  f.expect_end("the declared images");
  Images x = Images::from_shape({n, std::size_t(1), h, w});
  detail::bytes_to_unit_float(bytes.data(), x.data(), bytes.size());
  return x;
}

/// Reads an IDX label file (magic 0x00000801).
inline std::vector<int> load_idx_labels(const std::filesystem::path& path) {
  detail::InputFile f(path);
  const auto dims = detail::read_idx_header<1>(f, "labels");
  const std::vector<unsigned char> bytes = detail::read_idx_payload(f, dims[0], std::to_string(dims[0]) + " labels");
  f.expect_end("the declared labels");
  return std::vector<int>(bytes.begin(), bytes.end());
}

/// The label file that belongs beside an image file, by the MNIST naming
/// convention ("images-idx3" → "labels-idx1"), or nothing.
inline std::optional<std::filesystem::path> idx_labels_path(const std::filesystem::path& images_file) {
  std::string name = images_file.filename().string();
  const auto pos = name.find("images-idx3");
  if (pos == std::string::npos) return std::nullopt;
  name.replace(pos, 11, "labels-idx1");
  return images_file.parent_path() / name;
}

/// Loads an IDX image file and, when it exists beside it, the matching label
/// file (t10k-images-idx3-ubyte.gz → t10k-labels-idx1-ubyte.gz).
inline Dataset load_idx(const std::filesystem::path& images_file) {
  Dataset d;
  d.images = load_idx_images(images_file);
  d.source = images_file.string();
  if (auto lp = idx_labels_path(images_file)) {
    std::error_code ec;
    if (std::filesystem::exists(*lp, ec)) {
      d.labels = load_idx_labels(*lp);
      if (d.labels.size() != d.images.shape()[0])
        throw FormatError(lp->string() + ": holds " + std::to_string(d.labels.size()) + " labels but " +
                          images_file.string() + " holds " + std::to_string(d.images.shape()[0]) + " images");
    }
  }
  return d;
}

}  // namespace scoreood::data
