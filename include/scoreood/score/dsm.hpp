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
#include <scoreood/concepts.hpp>
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/backend.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace scoreood::score {

/// One training batch: what the network sees and what the loss needs, the images in the
/// memory of backend B (the per-sample scalars on the host, where the layers read them).
template <class B>
struct DsmBatchOn {
  backend::tensor_t<B, float> input;  ///< r_b(x~_b): the network's input
  backend::tensor_t<B, float> noise;  ///< z_b (un-transformed)
  std::vector<int> levels;            ///< i_b
  std::vector<int> elements;          ///< r_b (index into the group)
  std::vector<float> sigma;           ///< sigma_{i_b}
  std::vector<std::uint32_t> images;  ///< n_b, the training image sampled
};
using DsmBatch = DsmBatchOn<backend::cpu>;

/// Random streams of one training step (substreams of the run's seed).
struct DsmStreams {
  CounterRng images, levels, noise, elements;
  static DsmStreams for_step(std::uint64_t seed, std::uint64_t step) {
    const CounterRng s = CounterRng(seed, 0xD5A).substream(step);
    return {s.substream(0), s.substream(1), s.substream(2), s.substream(3)};
  }
};

/// Builds the batch for `step`: samples B images of `data` (with replacement, already in the
/// backend's memory), levels, noise and group elements, and applies the group to the noisy input.
template <concepts::Backend B, concepts::AugmentationGroup Aug>
void make_dsm_batch(backend::context_t<B>& ctx, const backend::tensor_t<B, float>& data,
                    std::span<const float> sigmas, const Aug& aug, std::size_t batch, const DsmStreams& rng,
                    DsmBatchOn<B>& out) {
  const Shape4 ds = shape_of(data);
  const std::size_t N = ds[0], C = ds[1], H = ds[2], W = ds[3];
  if (N == 0) throw ValueError("DSM: the training set is empty");
  if (sigmas.empty()) throw ValueError("DSM: no noise levels");
  const std::size_t G = aug.size();
  for (std::size_t k = 0; k < G; ++k) aug.check_shape(C, H, W, k);  // throw here, never inside a parallel loop
  const Shape4 shape{batch, C, H, W};
  backend::ops<B>::resize(out.input, shape);
  backend::ops<B>::resize(out.noise, shape);
  out.levels.resize(batch);
  out.elements.resize(batch);
  out.sigma.resize(batch);
  out.images.resize(batch);
  for (std::size_t b = 0; b < batch; ++b) {
    out.images[b] = rng.images.uniform_int(b, std::uint32_t(N));
    out.levels[b] = int(rng.levels.uniform_int(b, std::uint32_t(sigmas.size())));
    out.elements[b] = int(rng.elements.uniform_int(b, std::uint32_t(G)));
    out.sigma[b] = sigmas[std::size_t(out.levels[b])];
  }
  backend::ops<B>::dsm_inputs(ctx, data, std::span<const std::uint32_t>(out.images), std::span<const float>(out.sigma),
                              std::span<const int>(out.elements), aug, rng.noise, out.input, out.noise);
}
/// The same for host images on the CPU.
template <concepts::AugmentationGroup Aug>
void make_dsm_batch(const Images& data, std::span<const float> sigmas, const Aug& aug, std::size_t batch,
                    const DsmStreams& rng, DsmBatch& out) {
  make_dsm_batch<backend::cpu>(cpu_context(), data, sigmas, aug, batch, rng, out);
}

/// Mean over the batch of 0.5 || sigma_b s_b + z_b ||^2; writes dLoss/ds into `grad`.
template <class T, class B = backend::cpu>
double dsm_loss(backend::context_t<B>& ctx, const backend::tensor_t<B, T>& s, const backend::tensor_t<B, T>& z,
                std::span<const float> sigma, backend::tensor_t<B, T>& grad) {
  if (shape_of(s) != shape_of(z)) throw ShapeError("dsm_loss: score " + to_string(shape_of(s)) + " vs noise " + to_string(shape_of(z)));
  if (sigma.size() != shape_of(s)[0]) throw ShapeError("dsm_loss: one sigma per sample needed");
  backend::ops<B>::resize(grad, shape_of(s));
  return backend::ops<B>::dsm_loss(ctx, s, z, sigma, grad);
}
template <class T>
double dsm_loss(const Tensor4<T>& s, const Tensor4<T>& z, std::span<const float> sigma, Tensor4<T>& grad) {
  return dsm_loss<T, backend::cpu>(cpu_context(), s, z, sigma, grad);
}

}  // namespace scoreood::score
