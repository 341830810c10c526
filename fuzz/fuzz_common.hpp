// Shared by the libFuzzer targets: inputs are written to a per-process
// scratch file (the readers take paths), model containers get their CRC-32
// fixed so the body parser is reached, and only scoreood::Error counts as a
// clean refusal: anything else escapes, and libFuzzer reports it as a crash.
#pragma once
#include <scoreood/core/serialization.hpp>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace scoreood::fuzz {

/// A file in the temporary folder, unique to this process, named `name`
/// (the name matters to readers that look at it, e.g. ".gz" or "100").
inline std::filesystem::path scratch_file(const std::string& name) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("scoreood-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir / name;
}

inline void write_file(const std::filesystem::path& p, std::span<const char> bytes) {
  std::ofstream os(p, std::ios::binary | std::ios::trunc);
  os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
inline void write_file(const std::filesystem::path& p, const std::uint8_t* data, std::size_t size) {
  write_file(p, std::span<const char>(reinterpret_cast<const char*>(data), size));
}

/// The input with its last four bytes replaced by the CRC-32 of the rest, as
/// io::save_container writes it: mutations then reach the body parser instead
/// of stopping at "checksum mismatch". Inputs too short to be a container are
/// returned as they are.
inline std::vector<char> with_valid_crc(const std::uint8_t* data, std::size_t size) {
  std::vector<char> b(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size);
  if (b.size() >= 16) {
    const std::uint32_t crc = io::crc32_of(std::span<const char>(b).first(b.size() - 4));
    std::memcpy(b.data() + b.size() - 4, &crc, 4);
  }
  return b;
}

}  // namespace scoreood::fuzz
