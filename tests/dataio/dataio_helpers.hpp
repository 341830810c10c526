// Helpers shared by the dataio tests: temp folders and writers for small IDX,
// CIFAR and gzip fixtures (written at run time, never committed).
#pragma once
#include <catch2/catch.hpp>
#include <scoreood/core/error.hpp>

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>
#include <unistd.h>

namespace dataio_test {

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("scoreood_dataio_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

inline void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}

/// IDX image bytes: header for (n, rows, cols), then `pixels` (may be shorter/longer on purpose).
inline Bytes idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols, const Bytes& pixels,
                        std::uint32_t magic = 0x00000803) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, n);
  put_be32(b, rows);
  put_be32(b, cols);
  b.insert(b.end(), pixels.begin(), pixels.end());
  return b;
}
inline Bytes idx_labels(const Bytes& labels, std::uint32_t n_declared) {
  Bytes b;
  put_be32(b, 0x00000801);
  put_be32(b, n_declared);
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

inline void write_raw(const fs::path& p, const Bytes& b) {
  std::ofstream os(p, std::ios::binary | std::ios::trunc);
  os.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
inline Bytes gzip_bytes(const Bytes& b) {
  // deflateInit2 with windowBits 15 + 16 writes a gzip wrapper.
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(b.size())) + 64);
  zs.next_in = const_cast<Bytef*>(b.data());
  zs.avail_in = static_cast<uInt>(b.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}
inline void write_gz(const fs::path& p, const Bytes& b) { write_raw(p, gzip_bytes(b)); }

inline Bytes ramp(std::size_t n, unsigned mul = 7) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>((i * mul + i / 3) & 0xFF);
  return b;
}

/// Exact equality of two tensors (shape and every value), usable inside CHECK.
template <class A, class B>
bool same(const A& a, const B& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

/// Runs fn, requires a scoreood::FormatError whose message names `path` and contains `problem`.
inline void require_format_error(const std::function<void()>& fn, const fs::path& path, const std::string& problem) {
  try {
    fn();
    FAIL("no exception; expected FormatError containing '" << problem << "' for " << path.string());
  } catch (const scoreood::FormatError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    if (std::getenv("SCOREOOD_SHOW_ERRORS")) WARN(msg);
    CHECK(msg.find(path.string()) != std::string::npos);
    CHECK(msg.find(problem) != std::string::npos);
  }
}

}  // namespace dataio_test
