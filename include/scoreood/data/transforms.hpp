/** @file transforms.hpp
 *  @brief Image transforms for building OOD sets: colour → gray, bilinear resize.
 *
 *  Used to turn CIFAR into a far-OOD set for Fashion-MNIST (`:gray28` in
 *  data::load). The resize matches PyTorch's `F.interpolate(mode="bilinear",
 *  align_corners=False, antialias=False)` so numbers compare with Python code. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace scoreood::data {

/// ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), the same weights as PIL's
/// convert("L") and torchvision's rgb_to_grayscale. 1-channel input is returned as is.
inline Images to_grayscale(const Images& x) {
  const auto s = shape_of(x);
  if (s[1] == 1) return x;
  if (s[1] != 3) throw ShapeError("to_grayscale: expected 1 or 3 channels, got shape " + to_string(s));
  const std::size_t n = s[0], hw = s[2] * s[3];
  Images out = Images::from_shape({n, std::size_t(1), s[2], s[3]});
  const float* src = x.data();
  float* dst = out.data();
  const auto sn = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static) if (n * hw > (1u << 16))
  for (std::ptrdiff_t i = 0; i < sn; ++i) {
    const float* r = src + std::size_t(i) * 3 * hw;
    const float* g = r + hw;
    const float* b = g + hw;
    float* o = dst + std::size_t(i) * hw;
    for (std::size_t p = 0; p < hw; ++p) o[p] = 0.299f * r[p] + 0.587f * g[p] + 0.114f * b[p];
  }
  return out;
}

namespace detail {
/// Source taps of one output axis: PyTorch's half-pixel rule
/// src = max((dst + 0.5) * in/out - 0.5, 0), neighbours i0 and min(i0 + 1, in - 1).
struct LinearTaps {
  std::vector<std::size_t> i0, i1;
  std::vector<float> w0, w1;
};
inline LinearTaps linear_taps(std::size_t in, std::size_t out) {
  LinearTaps t;
  t.i0.resize(out);
  t.i1.resize(out);
  t.w0.resize(out);
  t.w1.resize(out);
  // PyTorch computes the scale as a float ratio of the sizes.
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (std::size_t d = 0; d < out; ++d) {
    const float src = std::max(scale * (static_cast<float>(d) + 0.5f) - 0.5f, 0.0f);
    const std::size_t i0 = std::min(static_cast<std::size_t>(src), in - 1);
    const float lambda = std::clamp(src - static_cast<float>(i0), 0.0f, 1.0f);
    t.i0[d] = i0;
    t.i1[d] = i0 + (i0 < in - 1 ? 1 : 0);
    t.w0[d] = 1.0f - lambda;
    t.w1[d] = lambda;
  }
  return t;
}
}  // namespace detail

/// Bilinear resize of every channel to h × w with half-pixel centres and no
/// antialiasing (PyTorch `F.interpolate(..., mode="bilinear", align_corners=False)`).
inline Images resize_bilinear(const Images& x, std::size_t h, std::size_t w) {
  const auto s = shape_of(x);
  if (h == 0 || w == 0) throw ValueError("resize_bilinear: target size must be positive, got " + std::to_string(h) + "x" + std::to_string(w));
  if (s[2] == 0 || s[3] == 0) throw ShapeError("resize_bilinear: empty images, shape " + to_string(s));
  const auto ty = detail::linear_taps(s[2], h);
  const auto tx = detail::linear_taps(s[3], w);
  const std::size_t planes = s[0] * s[1], in_hw = s[2] * s[3];
  Images out = Images::from_shape({s[0], s[1], h, w});
  const float* src = x.data();
  float* dst = out.data();
  const auto sp = static_cast<std::ptrdiff_t>(planes);
#pragma omp parallel for schedule(static) if (planes * h * w > (1u << 16))
  for (std::ptrdiff_t p = 0; p < sp; ++p) {
    const float* in = src + std::size_t(p) * in_hw;
    float* o = dst + std::size_t(p) * h * w;
    for (std::size_t y = 0; y < h; ++y) {
      const float* r0 = in + ty.i0[y] * s[3];
      const float* r1 = in + ty.i1[y] * s[3];
      for (std::size_t xx = 0; xx < w; ++xx) {
        const float top = tx.w0[xx] * r0[tx.i0[xx]] + tx.w1[xx] * r0[tx.i1[xx]];
        const float bot = tx.w0[xx] * r1[tx.i0[xx]] + tx.w1[xx] * r1[tx.i1[xx]];
        o[y * w + xx] = ty.w0[y] * top + ty.w1[y] * bot;
      }
    }
  }
  return out;
}

}  // namespace scoreood::data
