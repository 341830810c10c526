/** @file png.hpp
 *  @brief Writes a batch of images as one PNG grid (8-bit gray or RGB), with
 *  zlib's deflate and nothing else: signature, IHDR, IDAT, IEND, CRC-32. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::data {

namespace detail {
inline void png_put32(std::vector<char>& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((v >> s) & 0xFF));
}
inline void png_chunk(std::vector<char>& out, std::string_view type, const std::vector<char>& data) {
  png_put32(out, static_cast<std::uint32_t>(data.size()));
  const std::size_t start = out.size();
  out.insert(out.end(), type.begin(), type.end());
  out.insert(out.end(), data.begin(), data.end());
  // The CRC covers the chunk type and data, not the length.
  png_put32(out, io::crc32_of(std::span<const char>(out.data() + start, out.size() - start)));
}
}  // namespace detail

/// Lays out `images` (N×C×H×W, C = 1 or 3, values in [0, 1], clamped) in a grid
/// of `cols` columns with `pad` black pixels between and around the tiles, and
/// writes it as an 8-bit PNG (gray for C = 1, RGB for C = 3).
inline void write_png_grid(const std::filesystem::path& path, const Images& images, std::size_t cols, std::size_t pad = 2) {
  const auto s = shape_of(images);
  const std::string where = "write_png_grid(" + path.string() + ")";
  if (s[0] == 0) throw ValueError(where + ": no images");
  if (s[1] != 1 && s[1] != 3) throw ShapeError(where + ": expected 1 or 3 channels, got shape " + to_string(s));
  if (cols == 0) throw ValueError(where + ": cols must be positive");
  const std::size_t n = s[0], C = s[1], H = s[2], W = s[3];
  cols = std::min(cols, n);
  const std::size_t rows = (n + cols - 1) / cols;
  const std::size_t width = cols * (W + pad) + pad, height = rows * (H + pad) + pad;
  if (width > (1u << 24) || height > (1u << 24)) throw ValueError(where + ": grid too large for a PNG");

  // Raw scanlines: a filter byte (0 = none) then width × C samples.
  const std::size_t stride = 1 + width * C;
  std::vector<unsigned char> raw(stride * height, 0);
  const float* src = images.data();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t oy = pad + (i / cols) * (H + pad), ox = pad + (i % cols) * (W + pad);
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t y = 0; y < H; ++y)
        for (std::size_t x = 0; x < W; ++x) {
          const float v = src[((i * C + c) * H + y) * W + x];
          const float clamped = std::isnan(v) ? 0.0f : std::clamp(v, 0.0f, 1.0f);
          raw[(oy + y) * stride + 1 + (ox + x) * C + c] = static_cast<unsigned char>(std::lround(clamped * 255.0f));
        }
  }
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  std::vector<char> idat(zlen);
  if (compress2(reinterpret_cast<Bytef*>(idat.data()), &zlen, raw.data(), static_cast<uLong>(raw.size()), 6) != Z_OK)
    throw Error(where + ": zlib compression failed");
  idat.resize(zlen);

  std::vector<char> png = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  std::vector<char> ihdr;
  detail::png_put32(ihdr, static_cast<std::uint32_t>(width));
  detail::png_put32(ihdr, static_cast<std::uint32_t>(height));
  ihdr.push_back(8);                    // bit depth
  ihdr.push_back(C == 1 ? 0 : 2);       // colour type: gray / truecolour
  ihdr.insert(ihdr.end(), {0, 0, 0});   // deflate, adaptive filtering, no interlace
  detail::png_chunk(png, "IHDR", ihdr);
  detail::png_chunk(png, "IDAT", idat);
  detail::png_chunk(png, "IEND", {});
  io::write_file_atomic(path, png);
}

}  // namespace scoreood::data
