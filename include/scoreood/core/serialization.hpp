/** @file serialization.hpp
 *  @brief One checked binary container for checkpoints and detectors.
 *
 *  Layout: magic "SOOD" | u32 format version | u32 kind-string length | kind |
 *  body (written by the caller through ByteWriter) | u32 CRC-32 of everything
 *  before it. Saving is atomic (temporary file, flush, rename), so a crash
 *  never leaves a half-written model behind. Loading checks the magic, the
 *  version (a newer file is refused with a clear message), the kind and the
 *  checksum before the body is parsed; every read is bounds-checked. */
#pragma once
#include <scoreood/core/error.hpp>

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace scoreood::io {

inline constexpr char kMagic[4] = {'S', 'O', 'O', 'D'};
/// Bump when the container or any body layout changes incompatibly.
/// 2: detector files end with the decision threshold (version-1 files still load).
/// 3: trainer states end with the share of the budget spent, which the learning-rate
///    schedule follows (version-2 states still load, as a share of 0).
inline constexpr std::uint32_t kFormatVersion = 3;

/// Appends little-endian plain values, strings and arrays to a byte buffer.
class ByteWriter {
 public:
  template <class T>
    requires std::is_arithmetic_v<T>
  void put(T v) {
    const auto* p = reinterpret_cast<const char*>(&v);
    buf_.insert(buf_.end(), p, p + sizeof(T));
  }
  void put_string(std::string_view s) {
    put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    buf_.insert(buf_.end(), s.begin(), s.end());
  }
  template <class T>
    requires std::is_arithmetic_v<T>
  void put_array(std::span<const T> a) {
    put<std::uint64_t>(a.size());
    const auto* p = reinterpret_cast<const char*>(a.data());
    buf_.insert(buf_.end(), p, p + a.size_bytes());
  }
  template <class T>
  void put_vector(const std::vector<T>& v) { put_array(std::span<const T>(v)); }

  const std::vector<char>& bytes() const { return buf_; }
  std::vector<char>& bytes() { return buf_; }

 private:
  std::vector<char> buf_;
};

/// Reads what ByteWriter wrote; any read past the end throws FormatError naming the source.
class ByteReader {
 public:
  ByteReader(std::span<const char> data, std::string source) : data_(data), source_(std::move(source)) {}

  template <class T>
    requires std::is_arithmetic_v<T>
  T get() {
    need(sizeof(T), "value");
    T v;
    std::memcpy(&v, data_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  /// A length-prefixed string of at most `max_len` bytes; `what` names it in errors.
  std::string get_string(std::size_t max_len = 1u << 20, std::string_view what = "string") {
    const auto n = get<std::uint32_t>();
    if (n > max_len)
      fail(std::string(what) + ": length " + std::to_string(n) + " is implausible (at most " +
           std::to_string(max_len) + ")");
    need(n, what);
    std::string s(data_.data() + pos_, n);
    pos_ += n;
    return s;
  }
  /// A length-prefixed array; its length is checked against the bytes left
  /// before anything is allocated. `what` names it in errors.
  template <class T>
    requires std::is_arithmetic_v<T>
  std::vector<T> get_vector(std::string_view what = "array") {
    const auto n = get<std::uint64_t>();
    if (n > remaining() / sizeof(T))
      fail("truncated: " + std::string(what) + " of " + std::to_string(n) + " elements runs past the end (" +
           std::to_string(remaining()) + " bytes remain)");
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), data_.data() + pos_, n * sizeof(T));  // an empty vector's data() may be null
    pos_ += n * sizeof(T);
    return v;
  }
  /// Reads an array whose length must equal `expected` (a shape the caller knows).
  template <class T>
    requires std::is_arithmetic_v<T>
  void get_into(std::span<T> out, std::string_view what) {
    const auto n = get<std::uint64_t>();
    if (n != out.size())
      fail(std::string(what) + " has " + std::to_string(n) + " elements, expected " + std::to_string(out.size()));
    need(n * sizeof(T), what);
    if (n) std::memcpy(out.data(), data_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
  }
  void expect(bool ok, const std::string& what) const {
    if (!ok) fail(what);
  }
  /// Fails unless at least `bytes` are left: lets a reader refuse a size read
  /// from the file (a parameter count, a table) before it allocates for it.
  void expect_remaining(std::uint64_t bytes, std::string_view what) const {
    if (bytes > remaining())
      fail("truncated: " + std::string(what) + " needs at least " + std::to_string(bytes) + " bytes but only " +
           std::to_string(remaining()) + " remain");
  }
  /// Fails naming `what` and the index of the first NaN or infinity in `v`.
  template <class T>
    requires std::is_floating_point_v<T>
  void expect_finite(std::span<const T> v, std::string_view what) const {
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i]))
        fail(std::string(what) + "[" + std::to_string(i) + "] is " + std::to_string(v[i]) + ", not a finite number");
  }
  std::size_t remaining() const { return data_.size() - pos_; }
  bool at_end() const { return pos_ == data_.size(); }
  const std::string& source() const { return source_; }
  [[noreturn]] void fail(const std::string& what) const { detail::throw_format(source_, what); }

 private:
  void need(std::size_t n, std::string_view what) const {
    if (n > remaining()) fail("truncated: " + std::string(what) + " runs past the end of the data");
  }
  std::span<const char> data_;
  std::size_t pos_ = 0;
  std::string source_;
};

inline std::uint32_t crc32_of(std::span<const char> bytes) {
  uLong c = ::crc32(0L, Z_NULL, 0);
  std::size_t off = 0;
  while (off < bytes.size()) {  // zlib takes uInt lengths
    const auto n = static_cast<uInt>(std::min<std::size_t>(bytes.size() - off, 1u << 30));
    c = ::crc32(c, reinterpret_cast<const Bytef*>(bytes.data() + off), n);
    off += n;
  }
  return static_cast<std::uint32_t>(c);
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, then rename.
inline void write_file_atomic(const std::filesystem::path& path, std::span<const char> bytes) {
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    if (!os) throw Error(path.string() + ": cannot open for writing");
    os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    os.flush();
    if (!os) {
      os.close();
      std::filesystem::remove(tmp);
      throw Error(path.string() + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw Error(path.string() + ": cannot move the temporary file into place: " + ec.message());
  }
}

inline std::vector<char> read_file_bytes(const std::filesystem::path& path, std::size_t max_bytes = std::size_t(1) << 34) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw FormatError(path.string() + ": no such file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw FormatError(path.string() + ": cannot stat: " + ec.message());
  if (size > max_bytes) throw FormatError(path.string() + ": file is implausibly large");
  std::vector<char> data(size);
  std::ifstream is(path, std::ios::binary);
  if (!is.read(data.data(), static_cast<std::streamsize>(size))) throw FormatError(path.string() + ": read failed");
  return data;
}

/// Frames a body with magic, version, kind and checksum, and saves it atomically.
inline void save_container(const std::filesystem::path& path, std::string_view kind, const ByteWriter& body) {
  ByteWriter out;
  for (char c : kMagic) out.put<char>(c);
  out.put<std::uint32_t>(kFormatVersion);
  out.put_string(kind);
  auto& b = out.bytes();
  b.insert(b.end(), body.bytes().begin(), body.bytes().end());
  out.put<std::uint32_t>(crc32_of(b));
  write_file_atomic(path, b);
}

/// Loads and checks a container; returns the body bytes. `kind` must match.
inline std::vector<char> load_container(const std::filesystem::path& path, std::string_view kind) {
  const std::string src = path.string();
  std::vector<char> data = read_file_bytes(path);
  if (data.size() < 4 + 4 + 4 + 4) detail::throw_format(src, "truncated: too short to be a scoreood file");
  if (std::memcmp(data.data(), kMagic, 4) != 0) detail::throw_format(src, "not a scoreood file (bad magic)");
  ByteReader r(std::span<const char>(data).subspan(4, data.size() - 8), src);
  const auto version = r.get<std::uint32_t>();
  if (version > kFormatVersion)
    detail::throw_format(src, "written by a newer scoreood (format version " + std::to_string(version) +
                                  ", this build reads up to " + std::to_string(kFormatVersion) + ")");
  if (version < 1) detail::throw_format(src, "unknown format version " + std::to_string(version));
  const std::string got_kind = r.get_string(256);
  std::uint32_t stored;
  std::memcpy(&stored, data.data() + data.size() - 4, 4);
  if (crc32_of(std::span<const char>(data).first(data.size() - 4)) != stored)
    detail::throw_format(src, "checksum mismatch: the file is corrupt or truncated");
  if (got_kind != kind) detail::throw_format(src, "holds a '" + got_kind + "', expected a '" + std::string(kind) + "'");
  const std::size_t body_begin = 4 + 4 + 4 + got_kind.size();
  return std::vector<char>(data.begin() + static_cast<std::ptrdiff_t>(body_begin), data.end() - 4);
}

}  // namespace scoreood::io
