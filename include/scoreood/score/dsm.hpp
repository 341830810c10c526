/** @file dsm.hpp
 *  @brief Denoising score matching batches and loss (Eq. 1; Eq. 4 with a group).
 *
 *  Per sample b: a level i_b ~ U{0..L-1}, noise z_b ~ N(0, I), the noisy image
 *  x~ = x + sigma z, and a group element r_b ~ U(G); the network sees r_b(x~)
 *  and must predict the score of the *un-transformed* perturbation,
 *  -(x~ - x)/sigma^2 = -z/sigma. With the weight sigma^2 the per-sample loss is
 *      0.5 sigma^2 || s + (x~ - x)/sigma^2 ||^2 = 0.5 || sigma s + z ||^2,
 *  averaged over the batch (MSMA/NCSN: summed over pixels). Every random draw
 *  is a counter-based function of (seed, step, sample), so a batch is the same
 *  at any thread count and after resuming. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace scoreood::score {

/// One training batch: what the network sees and what the loss needs.
struct DsmBatch {
  Images input;              ///< r_b(x~_b): the network's input
  Images noise;              ///< z_b (un-transformed)
  std::vector<int> levels;   ///< i_b
  std::vector<int> elements; ///< r_b (index into the group)
  std::vector<float> sigma;  ///< sigma_{i_b}
};

/// Random streams of one training step (substreams of the run's seed).
struct DsmStreams {
  CounterRng images, levels, noise, elements;
  static DsmStreams for_step(std::uint64_t seed, std::uint64_t step) {
    const CounterRng s = CounterRng(seed, 0xD5A).substream(step);
    return {s.substream(0), s.substream(1), s.substream(2), s.substream(3)};
  }
};

/// Builds the batch for `step`: samples B images of `data` (with replacement),
/// levels, noise and group elements, and applies the group to the noisy input.
template <class Aug>
void make_dsm_batch(const Images& data, std::span<const float> sigmas, const Aug& aug, std::size_t batch,
                    const DsmStreams& rng, DsmBatch& out) {
  const std::size_t N = data.shape()[0], C = data.shape()[1], H = data.shape()[2], W = data.shape()[3];
  const std::size_t P = C * H * W;
  if (N == 0) throw ValueError("DSM: the training set is empty");
  if (sigmas.empty()) throw ValueError("DSM: no noise levels");
  const Shape4 shape{batch, C, H, W};
  if (shape_of(out.input) != shape) out.input.resize(shape);
  if (shape_of(out.noise) != shape) out.noise.resize(shape);
  out.levels.resize(batch);
  out.elements.resize(batch);
  out.sigma.resize(batch);
  const std::size_t G = aug.size();
  for (std::size_t k = 0; k < G; ++k) aug.check_shape(C, H, W, k);  // throw here, never inside the parallel loop
#pragma omp parallel
  {
    std::vector<float> noisy(P);
#pragma omp for schedule(static)
    for (std::ptrdiff_t bi = 0; bi < std::ptrdiff_t(batch); ++bi) {
      const std::size_t b = std::size_t(bi);
      const std::size_t n = rng.images.uniform_int(b, std::uint32_t(N));
      const int level = int(rng.levels.uniform_int(b, std::uint32_t(sigmas.size())));
      const int element = int(rng.elements.uniform_int(b, std::uint32_t(G)));
      const float s = sigmas[std::size_t(level)];
      out.levels[b] = level;
      out.elements[b] = element;
      out.sigma[b] = s;
      const float* x = data.data() + n * P;
      float* z = out.noise.data() + b * P;
      for (std::size_t p = 0; p < P; ++p) {
        z[p] = rng.noise.normal(b * P + p);
        noisy[p] = x[p] + s * z[p];
      }
      aug.apply_image(noisy.data(), out.input.data() + b * P, C, H, W, std::size_t(element));
    }
  }
}

/// Mean over the batch of 0.5 || sigma_b s_b + z_b ||^2; writes dLoss/ds into `grad`.
template <class T>
double dsm_loss(const Tensor4<T>& s, const Tensor4<T>& z, std::span<const float> sigma, Tensor4<T>& grad) {
  if (shape_of(s) != shape_of(z)) throw ShapeError("dsm_loss: score " + to_string(shape_of(s)) + " vs noise " + to_string(shape_of(z)));
  const std::size_t B = s.shape()[0], P = s.size() / std::max<std::size_t>(B, 1);
  if (sigma.size() != B) throw ShapeError("dsm_loss: one sigma per sample needed");
  if (shape_of(grad) != shape_of(s)) grad.resize(shape_of(s));
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

}  // namespace scoreood::score
