/** @file features.hpp
 *  @brief The CPU's feature kernels (score/normality.hpp has the maths): the
 *  noisy group copies of a clean batch, and the per-image reductions of the
 *  network's outputs into norms (the normality vectors) and per-pixel maps.
 *  Sums run in double; images are split over OpenMP threads. */
#pragma once
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>

#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

namespace scoreood::cpu::features {

/// z[b] = rng.normal((first + b) * P + p) and in[g * B + b] = aug_g(x[b] + sigma z[b]) for g < groups;
/// `in` and `z` already of shapes [groups * B, C, H, W] and [B, C, H, W].
template <class Aug, class T>
void noisy_copies(const Tensor4<T>& x, std::size_t first, float sigma, const CounterRng& rng, std::size_t groups,
                  const Aug& aug, Tensor4<T>& in, Tensor4<T>& z) {
  const std::size_t B = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3], P = C * H * W;
  const T* xd = x.data();
#pragma omp parallel
  {
    std::vector<T> noisy(P);
#pragma omp for schedule(static)
    for (std::ptrdiff_t bi = 0; bi < std::ptrdiff_t(B); ++bi) {
      const std::size_t b = std::size_t(bi);
      const std::size_t n = first + b;
      for (std::size_t p = 0; p < P; ++p) {
        z.data()[b * P + p] = rng.normal(n * P + p);
        noisy[p] = xd[b * P + p] + sigma * z.data()[b * P + p];
      }
      for (std::size_t g = 0; g < groups; ++g) aug.apply_image(noisy.data(), in.data() + (g * B + b) * P, C, H, W, g);
    }
  }
}

/// out[b] = || sigma s_b || over each image of s.
template <class T>
void scaled_norms(const Tensor4<T>& s, float sigma, std::span<double> out) {
  const std::size_t B = s.shape()[0], P = s.size() / std::max<std::size_t>(B, 1);
  for (std::size_t b = 0; b < B; ++b) {
    double acc = 0;
    const T* sp = s.data() + b * P;
    for (std::size_t p = 0; p < P; ++p) acc += double(sigma * sp[p]) * double(sigma * sp[p]);
    out[b] = std::sqrt(acc);
  }
}

/// out[g * B + b] = || s_{g B + b} + z_b / sigma || (s holds `groups` copies of B images, group-major).
template <class T>
void residual_norms(const Tensor4<T>& s, const Tensor4<T>& z, float sigma, std::size_t groups, std::span<double> out) {
  const std::size_t B = z.shape()[0], P = z.size() / std::max<std::size_t>(B, 1);
  const float inv = 1.0f / sigma;
#pragma omp parallel for collapse(2) schedule(static)
  for (std::ptrdiff_t gi = 0; gi < std::ptrdiff_t(groups); ++gi)
    for (std::ptrdiff_t bi = 0; bi < std::ptrdiff_t(B); ++bi) {
      const std::size_t g = std::size_t(gi), b = std::size_t(bi);
      const T* sp = s.data() + (g * B + b) * P;
      const T* zp = z.data() + b * P;
      double acc = 0;
      for (std::size_t p = 0; p < P; ++p) {
        const double r = double(sp[p]) + double(zp[p]) * inv;
        acc += r * r;
      }
      out[g * B + b] = std::sqrt(acc);
    }
}

/// map[b * HW + p] += sum_c (sigma s_b[c, p])^2.
template <class T>
void clean_map_add(const Tensor4<T>& s, float sigma, std::span<double> map) {
  const std::size_t B = s.shape()[0], C = s.shape()[1], HW = s.shape()[2] * s.shape()[3];
  const double sg = sigma;
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t bi = 0; bi < std::ptrdiff_t(B); ++bi) {
    const std::size_t b = std::size_t(bi);
    const T* sp = s.data() + b * C * HW;
    double* m = map.data() + b * HW;
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t p = 0; p < HW; ++p) {
        const double v = sg * double(sp[c * HW + p]);
        m[p] += v * v;
      }
  }
}

/// map[b * HW + p] += weight * sum_g sum_c (s_{g B + b}[c, p] + z_b[c, p] / sigma)^2.
template <class T>
void residual_map_add(const Tensor4<T>& s, const Tensor4<T>& z, float sigma, std::size_t groups, double weight,
                      std::span<double> map) {
  const std::size_t B = z.shape()[0], C = z.shape()[1], HW = z.shape()[2] * z.shape()[3], P = C * HW;
  const double inv = 1.0 / double(sigma);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t bi = 0; bi < std::ptrdiff_t(B); ++bi) {
    const std::size_t b = std::size_t(bi);
    const T* zp = z.data() + b * P;
    double* m = map.data() + b * HW;
    for (std::size_t g = 0; g < groups; ++g) {
      const T* sp = s.data() + (g * B + b) * P;
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t p = 0; p < HW; ++p) {
          const double r = double(sp[c * HW + p]) + double(zp[c * HW + p]) * inv;
          m[p] += weight * r * r;
        }
    }
  }
}

}  // namespace scoreood::cpu::features
