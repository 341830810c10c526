/** @file heatmap.hpp
 *  @brief An image and its anomaly map side by side, as one PNG a person can
 *  look at (ScoreOOD::anomaly_map, `scoreood explain`).
 *
 *  Left: the image (gray or RGB, values in [0, 1]). Right: the map in a
 *  black - red - yellow - white ramp, scaled from 0 to `map_max` (by default
 *  the map's own maximum, so every map uses the whole ramp; pass one value for
 *  a set to compare maps with each other). Both are enlarged `scale` times by
 *  pixel repetition, so a 28x28 image stays legible. Needs the image_io
 *  component (stb), like every image file. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/data/image_write.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

namespace scoreood::data {

/// The heat ramp at t in [0, 1]: black -> red -> yellow -> white.
inline std::array<unsigned char, 3> heat_colour(double t) {
  t = std::clamp(std::isfinite(t) ? t : 1.0, 0.0, 1.0);
  auto u8 = [](double v) { return static_cast<unsigned char>(std::lround(255.0 * std::clamp(v, 0.0, 1.0))); };
  return {u8(3 * t), u8(3 * t - 1), u8(3 * t - 2)};
}

/// Writes image `index` of `images` (N x C x H x W, C = 1 or 3) beside map `index` of `maps`
/// (N x 1 x H x W, values >= 0) to `path` as an RGB PNG of (2W + gap) x H, times `scale`.
/// `map_max` <= 0: the map's own maximum.
inline void write_heatmap_png(const std::filesystem::path& path, const Images& images, const Images& maps,
                              std::size_t index, std::size_t scale = 4, double map_max = 0) {
  const auto is = images.shape(), ms = maps.shape();
  const std::size_t C = is[1], H = is[2], W = is[3];
  if (index >= is[0] || index >= ms[0])
    throw ShapeError(path.string() + ": image " + std::to_string(index) + " is outside the batch");
  if (C != 1 && C != 3) throw ShapeError(path.string() + ": images must have 1 or 3 channels");
  if (ms[1] != 1 || ms[2] != H || ms[3] != W)
    throw ShapeError(path.string() + ": the map " + to_string(shape_of(maps)) + " does not fit the image " +
                     to_string(shape_of(images)));
  if (scale == 0 || scale > 64) throw ValueError(path.string() + ": scale must be 1..64");
  const float* m = maps.data() + index * H * W;
  double top = map_max;
  if (!(top > 0)) top = *std::max_element(m, m + H * W);
  if (!(top > 0)) top = 1;  // an all-zero map stays black
  const std::size_t gap = 2, Wo = (2 * W + gap) * scale, Ho = H * scale;
  std::vector<unsigned char> px(Wo * Ho * 3, 255);
  const float* x = images.data() + index * C * H * W;
  for (std::size_t y = 0; y < H; ++y)
    for (std::size_t xx = 0; xx < W; ++xx) {
      std::array<unsigned char, 3> left;
      for (std::size_t c = 0; c < 3; ++c) {
        const double v = x[(C == 1 ? 0 : c) * H * W + y * W + xx];
        left[c] = static_cast<unsigned char>(std::lround(255.0 * std::clamp(std::isfinite(v) ? v : 0.0, 0.0, 1.0)));
      }
      const auto right = heat_colour(double(m[y * W + xx]) / top);
      for (std::size_t a = 0; a < scale; ++a)
        for (std::size_t b = 0; b < scale; ++b) {
          unsigned char* row = px.data() + ((y * scale + a) * Wo) * 3;
          std::copy(left.begin(), left.end(), row + (xx * scale + b) * 3);
          std::copy(right.begin(), right.end(), row + ((W + gap + xx) * scale + b) * 3);
        }
    }
  write_png(path, px, Wo, Ho, 3);
}

}  // namespace scoreood::data
