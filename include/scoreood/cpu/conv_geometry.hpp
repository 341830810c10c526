/** @file conv_geometry.hpp
 *  @brief The sizes of one convolution over one image (shared by every ISA tier
 *  of the kernels and by nn::Conv2d). */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/tensor.hpp>

#include <algorithm>
#include <cstddef>

namespace scoreood::cpu {

/// Geometry of a square-kernel convolution over one C x H x W image.
struct ConvGeometry {
  std::size_t channels = 0, height = 0, width = 0;
  std::size_t kernel = 1, stride = 1, pad = 0, dilation = 1;
  std::size_t out_h = 0, out_w = 0;

  /// Fills out_h / out_w; returns false when the dilated kernel does not fit.
  bool compute_output() {
    const std::ptrdiff_t span = std::ptrdiff_t(dilation * (kernel - 1) + 1);
    const std::ptrdiff_t ph = std::ptrdiff_t(height + 2 * pad) - span;
    const std::ptrdiff_t pw = std::ptrdiff_t(width + 2 * pad) - span;
    if (ph < 0 || pw < 0 || stride == 0) return false;
    out_h = std::size_t(ph) / stride + 1;
    out_w = std::size_t(pw) / stride + 1;
    return true;
  }
  std::size_t rows() const { return channels * kernel * kernel; }   ///< K of the GEMM
  std::size_t cols() const { return out_h * out_w; }                ///< pixels per image
  std::size_t image_size() const { return channels * height * width; }
  bool is_pointwise() const { return kernel == 1 && stride == 1 && pad == 0; }  ///< col == image
  /// Stride 1 and same width: a kernel tap is a constant shift of the flattened plane.
  bool flat_shift() const { return stride == 1 && out_w == width; }

  /// Output columns [lo, hi) whose input column ox*stride + off lies inside [0, width).
  void valid_range(std::ptrdiff_t off, std::size_t n, std::size_t extent, std::size_t& lo, std::size_t& hi) const {
    const std::ptrdiff_t s = std::ptrdiff_t(stride);
    std::ptrdiff_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    std::ptrdiff_t h = std::ptrdiff_t(extent) - 1 - off < 0 ? 0 : (std::ptrdiff_t(extent) - 1 - off) / s + 1;
    l = std::min<std::ptrdiff_t>(l, std::ptrdiff_t(n));
    h = std::clamp<std::ptrdiff_t>(h, l, std::ptrdiff_t(n));
    lo = std::size_t(l);
    hi = std::size_t(h);
  }
};

namespace conv {

/// The geometry of `p` on input shape `in` (compute_output() false: the kernel does not fit).
inline ConvGeometry geometry(const backend::ConvParams& p, const Shape4& in) {
  ConvGeometry g;
  g.channels = in[1];
  g.height = in[2];
  g.width = in[3];
  g.kernel = p.kernel;
  g.stride = p.stride;
  g.pad = p.pad;
  g.dilation = p.dilation;
  g.compute_output();
  return g;
}

}  // namespace conv
}  // namespace scoreood::cpu
