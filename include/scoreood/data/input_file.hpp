/** @file input_file.hpp
 *  @brief A bounded byte stream over a raw or gzip-compressed file.
 *
 *  Readers never trust a header: they ask `max_decoded_size()` before they
 *  allocate. For a raw file that is its size; for gzip it is the most the
 *  deflate format can expand to (about 1032:1), so a 100-byte file that claims
 *  2^31 images is refused before any allocation, and data that really is
 *  shorter than claimed is caught while streaming ("truncated"). Compression is
 *  detected by content (the gzip magic 1f 8b); a file named `.gz` that is not
 *  gzip is an error rather than being read as raw bytes. */
#pragma once
#include <scoreood/core/error.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::data::detail {

/// True when the file name ends with `suffix` (ASCII, case-sensitive).
inline bool name_ends_with(const std::filesystem::path& p, std::string_view suffix) {
  const std::string s = p.filename().string();
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Sequential reader of a file's (decompressed) bytes. Every error is a
/// FormatError whose message starts with the path.
class InputFile {
 public:
  /// Deflate cannot expand by more than ~1032:1; the slack covers headers and tiny files.
  static constexpr std::uint64_t kMaxGzipRatio = 1040;

  explicit InputFile(const std::filesystem::path& path) : path_(path), name_(path.string()) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail("no such file");
    if (!std::filesystem::is_regular_file(path, ec)) fail("not a regular file");
    file_size_ = std::filesystem::file_size(path, ec);
    if (ec) fail("cannot read its size: " + ec.message());
    if (file_size_ == 0) fail("empty file");
    in_.open(path, std::ios::binary);
    if (!in_) fail("cannot open for reading");
    // Decide raw vs gzip by the first two bytes.
    unsigned char magic[2] = {0, 0};
    in_.read(reinterpret_cast<char*>(magic), 2);
    const auto got = static_cast<std::size_t>(in_.gcount());
    in_.clear();
    in_.seekg(0);
    gzip_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (!gzip_ && name_ends_with(path, ".gz")) fail("named .gz but is not gzip-compressed (no 1f 8b magic)");
    if (gzip_) {
      zs_ = std::make_unique<z_stream>();
      std::memset(zs_.get(), 0, sizeof(z_stream));
      if (inflateInit2(zs_.get(), 15 + 16) != Z_OK) fail("zlib inflateInit2 failed");
      inbuf_.resize(1 << 16);
    }
  }
  ~InputFile() {
    if (zs_) inflateEnd(zs_.get());
  }
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  bool gzipped() const { return gzip_; }
  std::uint64_t file_size() const { return file_size_; }
  /// Upper bound on how many bytes this file can yield.
  std::uint64_t max_decoded_size() const { return gzip_ ? file_size_ * kMaxGzipRatio + 4096 : file_size_; }
  /// Bytes handed out so far.
  std::uint64_t position() const { return pos_; }
  const std::string& name() const { return name_; }
  const std::filesystem::path& path() const { return path_; }

  [[noreturn]] void fail(const std::string& what) const { scoreood::detail::throw_format(name_, what); }

  /// Reads up to n bytes; returns fewer only at the end of the data.
  std::size_t read(void* dst, std::size_t n) {
    auto* out = static_cast<unsigned char*>(dst);
    std::size_t done = 0;
    if (!gzip_) {
      while (done < n) {
        in_.read(reinterpret_cast<char*>(out + done), static_cast<std::streamsize>(n - done));
        const auto g = static_cast<std::size_t>(in_.gcount());
        if (g == 0) {
          if (in_.bad()) fail("read error");
          break;
        }
        done += g;
      }
      pos_ += done;
      return done;
    }
    while (done < n && !finished_) {
      if (zs_->avail_in == 0 && !refill()) {
        fail("truncated gzip stream (the file ends inside the compressed data)");
      }
      const std::size_t want = std::min<std::size_t>(n - done, 1u << 30);
      zs_->next_out = out + done;
      zs_->avail_out = static_cast<uInt>(want);
      const int rc = inflate(zs_.get(), Z_NO_FLUSH);
      done += want - zs_->avail_out;
      if (rc == Z_STREAM_END) {
        // Concatenated gzip members are valid gzip; anything else after the end is ignored.
        if (zs_->avail_in == 0) refill();
        if (zs_->avail_in >= 2 && zs_->next_in[0] == 0x1f && zs_->next_in[1] == 0x8b) {
          if (inflateReset(zs_.get()) != Z_OK) fail("zlib inflateReset failed");
        } else {
          finished_ = true;
        }
      } else if (rc == Z_BUF_ERROR) {
        if (zs_->avail_in == 0 && eof_) fail("truncated gzip stream (the file ends inside the compressed data)");
      } else if (rc != Z_OK) {
        fail(std::string("corrupt gzip data: ") + (zs_->msg ? zs_->msg : "inflate error " + std::to_string(rc)));
      }
    }
    pos_ += done;
    return done;
  }

  /// Reads exactly n bytes or throws "truncated: <what> …".
  void read_exact(void* dst, std::size_t n, std::string_view what) {
    const std::size_t got = read(dst, n);
    if (got != n)
      fail("truncated: " + std::string(what) + " needs " + std::to_string(n) + " bytes but only " +
           std::to_string(got) + " remain");
  }

  /// Reads everything that is left, refusing more than `cap` bytes in total
  /// (grows the buffer as data really arrives, so a lying size cannot make it allocate).
  std::vector<unsigned char> read_all(std::uint64_t cap) {
    std::vector<unsigned char> buf;
    std::size_t chunk = 1 << 20;
    for (;;) {
      const std::size_t old = buf.size();
      if (old >= cap) {
        unsigned char probe;
        if (read(&probe, 1) == 1) fail("more than " + std::to_string(cap) + " bytes of data: implausibly large");
        break;
      }
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, cap - old));
      buf.resize(old + want);
      const std::size_t got = read(buf.data() + old, want);
      buf.resize(old + got);
      if (got < want) break;
      chunk = std::min<std::size_t>(chunk * 2, std::size_t(1) << 28);
    }
    return buf;
  }

  /// After the declared payload: the data must end here (this also lets gzip
  /// verify its CRC-32). `what` describes what the header declared.
  void expect_end(std::string_view what) {
    std::array<unsigned char, 4096> scratch;
    std::uint64_t extra = 0;
    for (;;) {
      const std::size_t got = read(scratch.data(), scratch.size());
      extra += got;
      if (got < scratch.size() || extra > (std::uint64_t(1) << 32)) break;
    }
    if (extra)
      fail(std::to_string(extra) + (extra > (std::uint64_t(1) << 32) ? "+" : "") +
           " bytes beyond the end of " + std::string(what) + ": the header does not match the file size");
  }

 private:
  bool refill() {
    if (eof_) return false;
    in_.read(reinterpret_cast<char*>(inbuf_.data()), static_cast<std::streamsize>(inbuf_.size()));
    const auto g = static_cast<std::size_t>(in_.gcount());
    if (g < inbuf_.size()) {
      if (in_.bad()) fail("read error");
      eof_ = true;
    }
    zs_->next_in = inbuf_.data();
    zs_->avail_in = static_cast<uInt>(g);
    return g > 0;
  }

  std::filesystem::path path_;
  std::string name_;
  std::ifstream in_;
  std::uint64_t file_size_ = 0;
  std::uint64_t pos_ = 0;
  bool gzip_ = false;
  bool eof_ = false;
  bool finished_ = false;
  std::unique_ptr<z_stream> zs_;
  std::vector<unsigned char> inbuf_;
};

/// Bytes 0..255 → floats in [0, 1] (pixel / 255), in parallel.
inline void bytes_to_unit_float(const unsigned char* src, float* dst, std::size_t n) {
  const auto sn = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static) if (n > (1u << 16))
  for (std::ptrdiff_t i = 0; i < sn; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
}

}  // namespace scoreood::data::detail
