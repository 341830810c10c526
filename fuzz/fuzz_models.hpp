// The tiny models the seed corpus holds (fuzz/make_corpus.cpp) and the
// detector and trainer the model targets load them into: both sides must
// agree on the schedule and the seed, or every input stops at the first check.
#pragma once
#include <scoreood/detector.hpp>
#include <scoreood/nn/nets/small_unet.hpp>
#include <scoreood/schedule/geometric.hpp>

#include <vector>

namespace scoreood::fuzz {

/// 8 x 8 gray images, width 2 (1389 parameters), 2 noise levels: a model file of ~7 kB.
inline nn::SmallUNetConfig tiny_net() { return {.channels = 1, .image_size = 8, .width = 2, .num_levels = 2}; }
inline schedule::Geometric tiny_schedule() { return {1.0f, 0.1f, 2}; }
inline std::vector<float> tiny_sigmas() { return tiny_schedule().sigmas(); }

template <class Density>
using Detector = ScoreOOD<nn::SmallUNet<>, augment::Rot4, Density>;

template <class Density>
typename Detector<Density>::Options tiny_options() {
  typename Detector<Density>::Options o;
  o.net = tiny_net();
  o.batch = 8;
  return o;
}

/// Images of the given shape with a fixed pattern in [0, 1].
inline Images pattern_images(std::size_t n, std::size_t channels, std::size_t size) {
  Images x = xt::empty<float>({n, channels, size, size});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float((i * 37 + i / 7) % 101) / 100.0f;
  return x;
}

}  // namespace scoreood::fuzz
