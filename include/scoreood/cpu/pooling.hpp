/** @file pooling.hpp
 *  @brief The CPU's average pools (nn::AvgPool2d, nn::MeanPool2x2): planes (n, c) in parallel.
 *
 *  AvgPool2d is computed separably (a row pass then a column pass), 2k adds per
 *  output instead of k^2: NCSN's chained residual pooling uses 5x5, stride 1, padding 2. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/elementwise.hpp>
#include <scoreood/cpu/threading.hpp>

#include <algorithm>
#include <cstddef>

namespace scoreood::cpu::pool {

using backend::PoolParams;

namespace detail {
/// Sizes of one plane's pass, padded sizes included.
struct Plan {
  std::size_t H, W, Ho, Wo, k, s, p, Hp, Wp;
};
inline Plan plan(const PoolParams& p, const Shape4& in, const Shape4& out) {
  const std::size_t pd = p.pad;
  return {in[2], in[3], out[2], out[3], p.kernel, p.stride, pd, in[2] + 2 * pd, in[3] + 2 * pd};
}
/// Number of real (non-padding) positions in window o of an axis of length n.
inline std::size_t count(const PoolParams& p, std::size_t o, std::size_t n) {
  const std::ptrdiff_t start = std::ptrdiff_t(o * p.stride) - std::ptrdiff_t(p.pad);
  const std::ptrdiff_t end = std::min<std::ptrdiff_t>(start + std::ptrdiff_t(p.kernel), std::ptrdiff_t(n));
  return std::size_t(end - std::max<std::ptrdiff_t>(start, 0));
}
/// Divides an output row by PyTorch's divisor: k*k with count_include_pad
/// (windows never pass the padded border without ceil_mode), else the number
/// of real pixels in the window.
template <class T>
void scale_row(const PoolParams& p, const Plan& pl, std::size_t oy, T* o) {
  if (p.count_include_pad) {
    kernels::scale(o, T(1) / T(pl.k * pl.k), pl.Wo);
  } else {
    const std::size_t cy = count(p, oy, pl.H);
    for (std::size_t ox = 0; ox < pl.Wo; ++ox) o[ox] /= T(cy * count(p, ox, pl.W));
  }
}

}  // namespace detail

/// y = avgpool(x), y already of the output's shape.
template <class T>
void avg_forward(const PoolParams& p, const Tensor4<T>& x, Tensor4<T>& y) {
  const Shape4 in = shape_of(x), out = shape_of(y);
  using detail::scale_row;
  const detail::Plan pl = detail::plan(p, in, out);
  const T* xd = x.data();
  T* yd = y.data();
  parallel_for(in[0] * in[1], [&](std::size_t plane) {
    // Row sums over zero-padded rows: rs[iy + p][ox] = sum_j xpad[iy][ox*s + j].
    T* buf = scratch<T>(Scratch::temp, pl.Hp * pl.Wo + pl.Wp);
    T* rs = buf;
    T* row = buf + pl.Hp * pl.Wo;
    std::fill(rs, rs + pl.p * pl.Wo, T(0));
    std::fill(rs + (pl.p + pl.H) * pl.Wo, rs + pl.Hp * pl.Wo, T(0));
    std::fill(row, row + pl.Wp, T(0));
    const T* xp = xd + plane * pl.H * pl.W;
    for (std::size_t iy = 0; iy < pl.H; ++iy) {
      std::copy(xp + iy * pl.W, xp + (iy + 1) * pl.W, row + pl.p);
      T* r = rs + (iy + pl.p) * pl.Wo;
      std::fill(r, r + pl.Wo, T(0));
      for (std::size_t j = 0; j < pl.k; ++j) {
        const T* src = row + j;
        if (pl.s == 1) {  // contiguous: plain vector adds
          kernels::add_to(r, src, pl.Wo);
        } else {
          for (std::size_t ox = 0; ox < pl.Wo; ++ox) r[ox] += src[ox * pl.s];
        }
      }
    }
    T* yp = yd + plane * pl.Ho * pl.Wo;
    for (std::size_t oy = 0; oy < pl.Ho; ++oy) {
      T* o = yp + oy * pl.Wo;
      const T* r0 = rs + oy * pl.s * pl.Wo;
      std::copy(r0, r0 + pl.Wo, o);
      for (std::size_t j = 1; j < pl.k; ++j) kernels::add_to(o, r0 + j * pl.Wo, pl.Wo);
      scale_row(p, pl, oy, o);
    }
  }, double(in[2] * in[3] * p.kernel * 2));
}

/// dx = the pooling's adjoint applied to dy, dx already of the input's shape.
template <class T>
void avg_backward(const PoolParams& p, const Tensor4<T>& dy, Tensor4<T>& dx) {
  const Shape4 in = shape_of(dx), out = shape_of(dy);
  using detail::scale_row;
  const detail::Plan pl = detail::plan(p, in, out);
  const T* gd = dy.data();
  T* dd = dx.data();
  parallel_for(in[0] * in[1], [&](std::size_t plane) {
    T* buf = scratch<T>(Scratch::temp, pl.Hp * pl.Wo + pl.Wp + pl.Wo);
    T* drs = buf;                    // d(row sums) over padded rows
    T* row = buf + pl.Hp * pl.Wo;    // d(padded input row)
    T* g = row + pl.Wp;              // scaled output-gradient row
    std::fill(drs, drs + pl.Hp * pl.Wo, T(0));
    const T* gp = gd + plane * pl.Ho * pl.Wo;
    for (std::size_t oy = 0; oy < pl.Ho; ++oy) {
      std::copy(gp + oy * pl.Wo, gp + (oy + 1) * pl.Wo, g);
      scale_row(p, pl, oy, g);
      T* r0 = drs + oy * pl.s * pl.Wo;
      for (std::size_t j = 0; j < pl.k; ++j) kernels::add_to(r0 + j * pl.Wo, g, pl.Wo);
    }
    T* dp = dd + plane * pl.H * pl.W;
    for (std::size_t iy = 0; iy < pl.H; ++iy) {
      std::fill(row, row + pl.Wp, T(0));
      const T* r = drs + (iy + pl.p) * pl.Wo;
      for (std::size_t j = 0; j < pl.k; ++j) {
        T* dst = row + j;
        if (pl.s == 1) {
          kernels::add_to(dst, r, pl.Wo);
        } else {
          for (std::size_t ox = 0; ox < pl.Wo; ++ox) dst[ox * pl.s] += r[ox];
        }
      }
      std::copy(row + pl.p, row + pl.p + pl.W, dp + iy * pl.W);
    }
  }, double(in[2] * in[3] * p.kernel * 2));
}

/// y = the mean of each 2x2 block of x (rounded down), y already of the output's shape.
template <class T>
void mean2_forward(const Tensor4<T>& x, Tensor4<T>& y) {
  const Shape4 in = shape_of(x), out = shape_of(y);
  const std::size_t W = in[3], Ho = out[2], Wo = out[3], H = in[2];
  const T* xd = x.data();
  T* yd = y.data();
  parallel_for(in[0] * in[1], [&](std::size_t plane) {
    const T* xp = xd + plane * H * W;
    T* yp = yd + plane * Ho * Wo;
    for (std::size_t oy = 0; oy < Ho; ++oy) {
      const T* r0 = xp + 2 * oy * W;
      const T* r1 = r0 + W;
      for (std::size_t ox = 0; ox < Wo; ++ox)
        yp[oy * Wo + ox] = T(0.25) * ((r0[2 * ox] + r0[2 * ox + 1]) + (r1[2 * ox] + r1[2 * ox + 1]));
    }
  }, double(H * W));
}

/// dx = dy / 4 spread over each 2x2 block (0 on a dropped last row/column), dx of the input's shape.
template <class T>
void mean2_backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
  const Shape4 in = shape_of(dx), out = shape_of(dy);
  const std::size_t H = in[2], W = in[3], Ho = out[2], Wo = out[3];
  const T* gd = dy.data();
  T* dd = dx.data();
  parallel_for(in[0] * in[1], [&](std::size_t plane) {
    const T* gp = gd + plane * Ho * Wo;
    T* dp = dd + plane * H * W;
    if (H % 2 || W % 2) std::fill(dp, dp + H * W, T(0));  // the dropped last row/column
    for (std::size_t oy = 0; oy < Ho; ++oy) {
      T* r0 = dp + 2 * oy * W;
      T* r1 = r0 + W;
      for (std::size_t ox = 0; ox < Wo; ++ox) {
        const T g = T(0.25) * gp[oy * Wo + ox];
        r0[2 * ox] = r0[2 * ox + 1] = r1[2 * ox] = r1[2 * ox + 1] = g;
      }
    }
  }, double(H * W));
}

}  // namespace scoreood::cpu::pool
