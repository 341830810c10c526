/** @file image_file.hpp
 *  @brief Decodes one image file (PNG, JPEG, BMP, and GIF/TGA/PSD/PNM/HDR as
 *  stb_image reads them) into 1×C×H×W floats in [0, 1].
 *
 *  C is 1 for gray and gray + alpha, 3 for RGB and RGBA: alpha is dropped, not
 *  composited. 8-bit samples become value / 255 (as the IDX and CIFAR readers),
 *  16-bit PNG samples value / 65535. JPEG EXIF orientation is not applied
 *  (stb_image ignores it). Every failure is a FormatError that names the file
 *  and, for a decoding failure, stb_image's reason. Needs scoreood::image_io
 *  (see stb.hpp); without it these functions throw saying so. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/data/stb.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace scoreood::data {

/// Files above this are refused before reading (stb takes lengths as int).
inline constexpr std::uint64_t kMaxImageFileBytes = std::uint64_t(1) << 30;
/// Images above this many pixels (e.g. 16384 × 8192) are refused before decoding:
/// a decoded image costs up to 12 bytes per pixel as floats.
inline constexpr std::uint64_t kMaxImagePixels = std::uint64_t(1) << 27;

/// What an image file holds, read from its header.
struct ImageInfo {
  std::size_t width = 0, height = 0;
  std::size_t channels = 0;  ///< as stored: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
  bool sixteen_bit = false;  ///< 16 bits per sample (PNG, PNM)

  /// The channels read_image() returns: 1 for gray (± alpha), 3 for colour (± alpha).
  std::size_t decoded_channels() const { return channels <= 2 ? 1 : 3; }
};

namespace detail {

/// The format a file's first bytes announce, for messages ("" when none known).
inline std::string_view image_kind(const unsigned char* b, std::size_t n) {
  if (n >= 8 && std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return "PNG";
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "JPEG";
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
  if (n >= 4 && std::memcmp(b, "GIF8", 4) == 0) return "GIF";
  if (n >= 4 && std::memcmp(b, "8BPS", 4) == 0) return "PSD";
  return "";
}

/// stb_image's reason for the last failure on this thread, never empty.
inline std::string stb_reason() {
#if SCOREOOD_HAS_IMAGE_IO
  const char* r = stbi_failure_reason();
  // Some stb paths (a PNG cut inside a chunk name) leave an empty reason.
  if (r && *r) return std::string("stb_image: ") + r;
#endif
  return "stb_image gave no reason (truncated or corrupt data?)";
}

/// Checks a path before opening: exists, is a file, is not empty, is not huge.
inline std::uint64_t checked_image_file_size(const std::filesystem::path& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) throw FormatError(path.string() + ": no such file");
  if (std::filesystem::is_directory(st)) throw FormatError(path.string() + ": is a folder, not an image file");
  const std::uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) throw FormatError(path.string() + ": cannot read: " + ec.message());
  if (size == 0) throw FormatError(path.string() + ": empty file (0 bytes), not an image");
  if (size > kMaxImageFileBytes)
    throw FormatError(path.string() + ": " + std::to_string(size) + " bytes is more than the " +
                      std::to_string(kMaxImageFileBytes >> 20) + " MiB an image file may have");
  return size;
}

inline std::vector<unsigned char> read_image_bytes(const std::filesystem::path& path) {
  const std::uint64_t size = checked_image_file_size(path);
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  std::ifstream is(path, std::ios::binary);
  if (!is) throw FormatError(path.string() + ": cannot open for reading");
  is.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<std::uint64_t>(is.gcount()) != size) throw FormatError(path.string() + ": read error");
  return bytes;
}

inline void check_image_pixels(const std::filesystem::path& path, std::size_t w, std::size_t h) {
  if (w == 0 || h == 0)
    throw FormatError(path.string() + ": image of " + std::to_string(w) + "x" + std::to_string(h) + " pixels is empty");
  if (std::uint64_t(w) * h > kMaxImagePixels)
    throw FormatError(path.string() + ": image of " + std::to_string(w) + "x" + std::to_string(h) +
                      " pixels is larger than the limit of 2^27 pixels");
}

inline std::uint32_t le32(const unsigned char* p) {
  return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) | (std::uint32_t(p[3]) << 24);
}
inline std::uint32_t le16(const unsigned char* p) { return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8); }

/// stb_image decodes a cut-off uncompressed BMP without complaint (missing rows
/// read as zeros), so its size is checked against what the header declares.
inline void check_bmp_complete(const std::filesystem::path& path, const std::vector<unsigned char>& b) {
  if (b.size() < 30 || b[0] != 'B' || b[1] != 'M') return;  // too short: stb reports it
  const std::uint64_t offset = le32(b.data() + 10);
  const std::uint32_t header = le32(b.data() + 14);
  std::uint64_t w = 0, h = 0, bpp = 0;
  std::uint32_t compression = 0;
  if (header == 12) {  // OS/2 BITMAPCOREHEADER
    w = le16(b.data() + 18), h = le16(b.data() + 20), bpp = le16(b.data() + 24);
  } else {
    if (b.size() < 34) return;
    const auto sw = static_cast<std::int32_t>(le32(b.data() + 18));
    const auto sh = static_cast<std::int32_t>(le32(b.data() + 22));
    w = static_cast<std::uint64_t>(sw < 0 ? -std::int64_t(sw) : sw);
    h = static_cast<std::uint64_t>(sh < 0 ? -std::int64_t(sh) : sh);  // negative height: top-down rows
    bpp = le16(b.data() + 28);
    compression = le32(b.data() + 30);
  }
  // Only uncompressed layouts (BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS) have a fixed size.
  if ((compression != 0 && compression != 3 && compression != 6) || w > (1u << 24) || h > (1u << 24) || bpp > 32) return;
  const std::uint64_t row = (w * bpp + 31) / 32 * 4;  // rows are padded to 4 bytes
  const std::uint64_t need = offset + row * h;
  if (b.size() < need)
    throw FormatError(path.string() + ": truncated BMP: its header declares " + std::to_string(w) + "x" +
                      std::to_string(h) + " pixels at " + std::to_string(bpp) + " bits (" + std::to_string(need) +
                      " bytes) but the file has " + std::to_string(b.size()) + " bytes");
}

/// A hint for a failed decode: a PNG or JPEG whose end marker is missing was cut short.
inline std::string truncation_hint(std::string_view kind, const std::vector<unsigned char>& b) {
  static constexpr unsigned char iend[8] = {'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
  if (kind == "PNG" && (b.size() < 8 || std::memcmp(b.data() + b.size() - 8, iend, 8) != 0))
    return " (the file does not end with PNG's IEND chunk: truncated?)";
  if (kind == "JPEG") {
    // Encoders may pad after the end-of-image marker FF D9; look at the last bytes.
    const std::size_t from = b.size() > 64 ? b.size() - 64 : 0;
    for (std::size_t i = b.size(); i-- > from + 1;)
      if (b[i - 1] == 0xFF && b[i] == 0xD9) return "";
    return " (no JPEG end-of-image marker: truncated?)";
  }
  return "";
}

inline ImageInfo image_info_of(const std::filesystem::path& path, const std::vector<unsigned char>& bytes) {
#if SCOREOOD_HAS_IMAGE_IO
  int w = 0, h = 0, c = 0;
  const int len = static_cast<int>(bytes.size());
  if (!stbi_info_from_memory(bytes.data(), len, &w, &h, &c)) {
    const std::string_view kind = image_kind(bytes.data(), bytes.size());
    if (kind.empty())
      throw FormatError(path.string() + ": not an image stb_image can read (PNG, JPEG, BMP, GIF, TGA, PSD, PNM, HDR; " +
                        std::to_string(bytes.size()) + " bytes): " + stb_reason());
    throw FormatError(path.string() + ": cannot read the header of this " + std::string(kind) + " file (" +
                      std::to_string(bytes.size()) + " bytes): " + stb_reason() + truncation_hint(kind, bytes));
  }
  ImageInfo info;
  info.width = static_cast<std::size_t>(w);
  info.height = static_cast<std::size_t>(h);
  info.channels = static_cast<std::size_t>(c);
  info.sixteen_bit = stbi_is_16_bit_from_memory(bytes.data(), len) != 0;
  check_image_pixels(path, info.width, info.height);
  return info;
#else
  (void)bytes;
  throw_no_image_io(path.string());
#endif
}

}  // namespace detail

/// Reads only as much of `path` as its header needs (for sizes before decoding).
inline ImageInfo read_image_info(const std::filesystem::path& path) {
#if SCOREOOD_HAS_IMAGE_IO
  detail::checked_image_file_size(path);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw FormatError(path.string() + ": cannot open for reading");
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_file(f.get(), &w, &h, &c)) {
    // Read the whole file for the same message a full decode gives.
    detail::image_info_of(path, detail::read_image_bytes(path));
    throw FormatError(path.string() + ": cannot read the image header: " + detail::stb_reason());
  }
  ImageInfo info;
  info.width = static_cast<std::size_t>(w);
  info.height = static_cast<std::size_t>(h);
  info.channels = static_cast<std::size_t>(c);
  info.sixteen_bit = stbi_is_16_bit_from_file(f.get()) != 0;
  detail::check_image_pixels(path, info.width, info.height);
  return info;
#else
  detail::throw_no_image_io(path.string());
#endif
}

/// Decodes `path` into a 1×C×H×W tensor (C = 1 or 3, see the file comment).
inline Images read_image(const std::filesystem::path& path) {
#if SCOREOOD_HAS_IMAGE_IO
  const std::vector<unsigned char> bytes = detail::read_image_bytes(path);
  const ImageInfo info = detail::image_info_of(path, bytes);
  detail::check_bmp_complete(path, bytes);
  const int want = static_cast<int>(info.decoded_channels());
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, stored = 0;
  void* raw = info.sixteen_bit ? static_cast<void*>(stbi_load_16_from_memory(bytes.data(), len, &w, &h, &stored, want))
                               : static_cast<void*>(stbi_load_from_memory(bytes.data(), len, &w, &h, &stored, want));
  std::unique_ptr<void, void (*)(void*)> pixels(raw, &stbi_image_free);
  if (!pixels) {
    const std::string_view kind = detail::image_kind(bytes.data(), bytes.size());
    throw FormatError(path.string() + ": cannot decode this " + (kind.empty() ? std::string("image") : std::string(kind)) +
                      " file (" + std::to_string(bytes.size()) + " bytes): " + detail::stb_reason() +
                      detail::truncation_hint(kind, bytes));
  }
  if (static_cast<std::size_t>(w) != info.width || static_cast<std::size_t>(h) != info.height)
    throw FormatError(path.string() + ": decoded size " + std::to_string(w) + "x" + std::to_string(h) +
                      " differs from the header's " + std::to_string(info.width) + "x" + std::to_string(info.height));
  const std::size_t C = static_cast<std::size_t>(want), H = info.height, W = info.width, hw = H * W;
  Images out = Images::from_shape({std::size_t(1), C, H, W});
  float* dst = out.data();
  // stb gives interleaved samples (RGBRGB…); the tensor is planar (RRR…GGG…BBB…).
  if (info.sixteen_bit) {
    const auto* src = static_cast<const std::uint16_t*>(pixels.get());
    for (std::size_t p = 0; p < hw; ++p)
      for (std::size_t c = 0; c < C; ++c) dst[c * hw + p] = static_cast<float>(src[p * C + c]) / 65535.0f;
  } else {
    const auto* src = static_cast<const unsigned char*>(pixels.get());
    for (std::size_t p = 0; p < hw; ++p)
      for (std::size_t c = 0; c < C; ++c) dst[c * hw + p] = static_cast<float>(src[p * C + c]) / 255.0f;
  }
  return out;
#else
  detail::throw_no_image_io(path.string());
#endif
}

}  // namespace scoreood::data
