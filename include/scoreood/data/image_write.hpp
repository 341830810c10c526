/** @file image_write.hpp
 *  @brief Writes one image as PNG, JPEG or BMP through stb_image_write (8 bits
 *  per sample), e.g. a score heat map or a test fixture.
 *
 *  Float images (values in [0, 1], clamped, NaN as 0) are rounded to
 *  round(v · 255), so PNG and BMP read back by read_image() are exact for
 *  values k / 255. Files are written atomically (a temporary file, then a
 *  rename). Needs scoreood::image_io (see stb.hpp); write_png_grid (png.hpp)
 *  needs only zlib. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/data/stb.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::data {

namespace detail {

/// Image `index` of `images` (C = 1 or 3) as interleaved 8-bit samples.
inline std::vector<unsigned char> interleaved_u8(const Images& images, std::size_t index, const std::string& where) {
  const auto s = shape_of(images);
  if (s[1] != 1 && s[1] != 3) throw ShapeError(where + ": expected 1 or 3 channels, got shape " + to_string(s));
  if (index >= s[0])
    throw ValueError(where + ": image " + std::to_string(index) + " of a batch of " + std::to_string(s[0]));
  if (s[2] == 0 || s[3] == 0) throw ShapeError(where + ": empty image, shape " + to_string(s));
  const std::size_t C = s[1], hw = s[2] * s[3];
  const float* src = images.data() + index * C * hw;
  std::vector<unsigned char> out(C * hw);
  for (std::size_t c = 0; c < C; ++c)
    for (std::size_t p = 0; p < hw; ++p) {
      const float v = src[c * hw + p];
      const float clamped = std::isnan(v) ? 0.0f : std::clamp(v, 0.0f, 1.0f);
      out[p * C + c] = static_cast<unsigned char>(std::lround(clamped * 255.0f));
    }
  return out;
}

inline void check_raw_image(std::span<const unsigned char> pixels, std::size_t width, std::size_t height,
                            std::size_t channels, const std::string& where) {
  if (channels < 1 || channels > 4) throw ValueError(where + ": channels must be 1..4, got " + std::to_string(channels));
  if (width == 0 || height == 0 || width > (1u << 24) || height > (1u << 24))
    throw ValueError(where + ": image size " + std::to_string(width) + "x" + std::to_string(height) + " cannot be written");
  if (pixels.size() != width * height * channels)
    throw ShapeError(where + ": " + std::to_string(pixels.size()) + " samples for a " + std::to_string(width) + "x" +
                     std::to_string(height) + "x" + std::to_string(channels) + " image");
}

#if SCOREOOD_HAS_IMAGE_IO
/// stb_image_write's callback: appends the encoded bytes to a std::vector<char>.
inline void append_encoded(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<char>*>(context);
  const char* p = static_cast<const char*>(data);
  out->insert(out->end(), p, p + size);
}
#endif

/// Encodes with `format` ("png", "jpeg", "bmp") and writes atomically.
inline void write_encoded(const std::filesystem::path& path, std::string_view format, const unsigned char* pixels,
                          std::size_t width, std::size_t height, std::size_t channels, int quality) {
#if SCOREOOD_HAS_IMAGE_IO
  std::vector<char> bytes;
  const int w = static_cast<int>(width), h = static_cast<int>(height), c = static_cast<int>(channels);
  int ok = 0;
  if (format == "png")
    ok = stbi_write_png_to_func(&append_encoded, &bytes, w, h, c, pixels, w * c);
  else if (format == "jpeg")
    ok = stbi_write_jpg_to_func(&append_encoded, &bytes, w, h, c, pixels, quality);
  else
    ok = stbi_write_bmp_to_func(&append_encoded, &bytes, w, h, c, pixels);
  if (!ok || bytes.empty()) throw Error(path.string() + ": stb_image_write could not encode the " + std::string(format));
  io::write_file_atomic(path, bytes);
#else
  (void)format, (void)pixels, (void)width, (void)height, (void)channels, (void)quality;
  throw_no_image_io(path.string());
#endif
}

}  // namespace detail

/// Writes 8-bit samples, interleaved row by row (gray, gray + alpha, RGB or RGBA
/// for channels 1..4), as a PNG.
inline void write_png(const std::filesystem::path& path, std::span<const unsigned char> pixels, std::size_t width,
                      std::size_t height, std::size_t channels) {
  detail::check_raw_image(pixels, width, height, channels, "write_png(" + path.string() + ")");
  detail::write_encoded(path, "png", pixels.data(), width, height, channels, 0);
}

/// Writes image `index` of `images` (N×C×H×W, C = 1 gray or 3 RGB) as a PNG.
inline void write_png(const std::filesystem::path& path, const Images& images, std::size_t index = 0) {
  const std::string where = "write_png(" + path.string() + ")";
  const auto px = detail::interleaved_u8(images, index, where);
  detail::write_encoded(path, "png", px.data(), images.shape()[3], images.shape()[2], images.shape()[1], 0);
}

/// Writes image `index` of `images` as a baseline JPEG of `quality` 1..100
/// (lossy: values come back within a few / 255; gray is stored as YCbCr).
inline void write_jpeg(const std::filesystem::path& path, const Images& images, std::size_t index = 0, int quality = 95) {
  const std::string where = "write_jpeg(" + path.string() + ")";
  if (quality < 1 || quality > 100) throw ValueError(where + ": quality must be 1..100, got " + std::to_string(quality));
  const auto px = detail::interleaved_u8(images, index, where);
  detail::write_encoded(path, "jpeg", px.data(), images.shape()[3], images.shape()[2], images.shape()[1], quality);
}

/// Writes image `index` of `images` as an uncompressed 24-bit BMP (gray is
/// stored as RGB and read back as colour).
inline void write_bmp(const std::filesystem::path& path, const Images& images, std::size_t index = 0) {
  const std::string where = "write_bmp(" + path.string() + ")";
  const auto px = detail::interleaved_u8(images, index, where);
  detail::write_encoded(path, "bmp", px.data(), images.shape()[3], images.shape()[2], images.shape()[1], 0);
}

}  // namespace scoreood::data
