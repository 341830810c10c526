/** @file dsm.hpp
 *  @brief The CPU's denoising-score-matching kernels (score/dsm.hpp has the maths):
 *  the network's inputs r_b(x_n + sigma_b z_b) with their noise, and the loss
 *  0.5 || sigma_b s_b + z_b ||^2 averaged over the batch with its gradient. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace scoreood::cpu::dsm {

/// input[b] = aug_{elements[b]}(data[image[b]] + sigma[b] z_b), z_b = noise.normal(b * P + p), into `input`
/// and `z` (both already of shape [batch, C, H, W]).
template <class Aug, class T>
void noisy_inputs(const Tensor4<T>& data, std::span<const std::uint32_t> image, std::span<const float> sigma,
                  std::span<const int> elements, const Aug& aug, const CounterRng& noise, Tensor4<T>& input,
                  Tensor4<T>& z) {
  const std::size_t C = data.shape()[1], H = data.shape()[2], W = data.shape()[3], P = C * H * W;
  const std::size_t batch = image.size();
#pragma omp parallel
  {
    std::vector<T> noisy(P);
#pragma omp for schedule(static)
    for (std::ptrdiff_t bi = 0; bi < std::ptrdiff_t(batch); ++bi) {
      const std::size_t b = std::size_t(bi);
      const T s = sigma[b];
      const T* x = data.data() + std::size_t(image[b]) * P;
      T* zb = z.data() + b * P;
      for (std::size_t p = 0; p < P; ++p) {
        zb[p] = noise.normal(b * P + p);
        noisy[p] = x[p] + s * zb[p];
      }
      aug.apply_image(noisy.data(), input.data() + b * P, C, H, W, std::size_t(elements[b]));
    }
  }
}

/// Mean over the batch of 0.5 || sigma_b s_b + z_b ||^2; writes dLoss/ds into `grad` (of s's shape).
template <class T>
double loss(const Tensor4<T>& s, const Tensor4<T>& z, std::span<const float> sigma, Tensor4<T>& grad) {
  const std::size_t B = s.shape()[0], P = s.size() / std::max<std::size_t>(B, 1);
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
  for (std::ptrdiff_t bi = 0; bi < std::ptrdiff_t(B); ++bi) {
    const std::size_t b = std::size_t(bi);
    const T sg = T(sigma[b]);
    const T* sp = s.data() + b * P;
    const T* zp = z.data() + b * P;
    T* gp = grad.data() + b * P;
    double acc = 0;
    for (std::size_t p = 0; p < P; ++p) {
      const T r = sg * sp[p] + zp[p];
      acc += double(r) * double(r);
      gp[p] = sg * r / T(B);
    }
    total += 0.5 * acc;
  }
  return total / double(B);
}

}  // namespace scoreood::cpu::dsm
