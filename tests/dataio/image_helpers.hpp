// Helpers shared by the image-file tests: deterministic test images, writers
// for folders of them, and a 16-bit PNG writer (stb_image_write has none).
#pragma once
#include "dataio_helpers.hpp"

#include <scoreood/core/tensor.hpp>
#include <scoreood/data/png.hpp>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace dataio_test {

/// 1×C×H×W with values k / 255 (exact in 8 bits), a hash of pixel, channel and
/// seed: every image differs, and PNG cannot squeeze it to a few bytes.
inline scoreood::Images pattern_image(std::size_t c, std::size_t h, std::size_t w, unsigned seed = 0) {
  scoreood::Images x = scoreood::Images::from_shape({1, c, h, w});
  for (std::size_t k = 0; k < c; ++k)
    for (std::size_t y = 0; y < h; ++y)
      for (std::size_t i = 0; i < w; ++i) {
        std::uint32_t v = std::uint32_t(i * 73856093u) ^ std::uint32_t(y * 19349663u) ^ std::uint32_t(k * 83492791u) ^
                          std::uint32_t(seed * 2654435761u);
        v ^= v >> 13, v *= 0x5bd1e995u, v ^= v >> 15;
        x(0, k, y, i) = float(v & 0xFF) / 255.0f;
      }
  return x;
}

/// A smooth 1×C×H×W image (JPEG keeps smooth images within a few / 255).
inline scoreood::Images smooth_image(std::size_t c, std::size_t h, std::size_t w) {
  scoreood::Images x = scoreood::Images::from_shape({1, c, h, w});
  for (std::size_t k = 0; k < c; ++k)
    for (std::size_t y = 0; y < h; ++y)
      for (std::size_t i = 0; i < w; ++i)
        x(0, k, y, i) = std::round(255.0f * (0.5f + 0.3f * std::sin(float(i) / 5.0f + float(k)) *
                                                        std::cos(float(y) / 6.0f))) / 255.0f;
  return x;
}

/// Largest |a - b| over two tensors of the same shape.
template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}

/// Concatenates 1×C×H×W images along N.
inline scoreood::Images stack(const std::vector<scoreood::Images>& xs) {
  REQUIRE(!xs.empty());
  const auto s = scoreood::shape_of(xs[0]);
  scoreood::Images out = scoreood::Images::from_shape({xs.size(), s[1], s[2], s[3]});
  const std::size_t per = s[1] * s[2] * s[3];
  for (std::size_t i = 0; i < xs.size(); ++i) {
    REQUIRE(scoreood::shape_of(xs[i]) == scoreood::Shape4{1, s[1], s[2], s[3]});
    std::copy_n(xs[i].data(), per, out.data() + i * per);
  }
  return out;
}

/// A 16-bit PNG (gray or RGB, no filtering) of `samples` (interleaved, row by row).
inline void write_png16(const fs::path& p, std::size_t w, std::size_t h, std::size_t c,
                        const std::vector<std::uint16_t>& samples) {
  REQUIRE(samples.size() == w * h * c);
  std::vector<unsigned char> raw;
  for (std::size_t y = 0; y < h; ++y) {
    raw.push_back(0);  // filter: none
    for (std::size_t i = 0; i < w * c; ++i) {
      const std::uint16_t v = samples[y * w * c + i];
      raw.push_back(static_cast<unsigned char>(v >> 8));  // big-endian
      raw.push_back(static_cast<unsigned char>(v & 0xFF));
    }
  }
  uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
  std::vector<char> idat(zlen);
  REQUIRE(compress2(reinterpret_cast<Bytef*>(idat.data()), &zlen, raw.data(), static_cast<uLong>(raw.size()), 6) == Z_OK);
  idat.resize(zlen);
  std::vector<char> png = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  std::vector<char> ihdr;
  scoreood::data::detail::png_put32(ihdr, static_cast<std::uint32_t>(w));
  scoreood::data::detail::png_put32(ihdr, static_cast<std::uint32_t>(h));
  ihdr.push_back(16);              // bit depth
  ihdr.push_back(c == 1 ? 0 : 2);  // gray / truecolour
  ihdr.insert(ihdr.end(), {0, 0, 0});
  scoreood::data::detail::png_chunk(png, "IHDR", ihdr);
  scoreood::data::detail::png_chunk(png, "IDAT", idat);
  scoreood::data::detail::png_chunk(png, "IEND", {});
  write_raw(p, Bytes(png.begin(), png.end()));
}

inline Bytes read_raw(const fs::path& p) {
  std::ifstream is(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(is), {});
}

/// Runs fn, requires an exception of type E whose message contains every one of `parts`.
template <class E>
void require_error_naming(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    FAIL("no exception; expected one naming " << parts.front());
  } catch (const E& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    if (std::getenv("SCOREOOD_SHOW_ERRORS")) WARN(msg);
    for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

}  // namespace dataio_test
