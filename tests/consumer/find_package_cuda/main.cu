// Instantiates the CUDA detector of an installed scoreood as a user would:
// ScoreOOD<SmallUNet<backend::cuda>, Rot4, Gmm>. Building it is the test's
// main point; with a GPU it also trains a few steps, fits and scores, and
// without one it prints "skipped: no GPU" (ctest: skipped) after checking
// that the detector refuses to start with a clear error.
#include <scoreood/cuda.hpp>
#include <scoreood/scoreood.hpp>

#include <cmath>
#include <cstdio>
#include <string>

namespace so = scoreood;
using Detector = so::ScoreOOD<so::nn::SmallUNet<so::backend::cuda>, so::augment::Rot4, so::density::Gmm>;

int main() {
  if (so::gpu::device_count() == 0) {
    try {
      Detector det(so::schedule::Geometric{1.0f, 0.01f, 4});
      std::fprintf(stderr, "consumer_find_package_cuda: FAILED: a CUDA detector was made without a GPU\n");
      return 1;
    } catch (const so::Error& e) {
      std::printf("skipped: no GPU (%s)\n", e.what());
      return 0;
    }
  }
  Detector::Options o;
  o.net = {.channels = 1, .image_size = 28, .width = 8};
  o.batch = 16;
  Detector det(so::schedule::Geometric{1.0f, 0.01f, 4}, o);
  so::Images x = xt::zeros<float>({std::size_t(64), std::size_t(1), std::size_t(28), std::size_t(28)});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float((i * 37) % 101) / 100.0f;
  so::score::TrainOptions t;
  t.steps = 3;
  t.batch = 16;
  det.train(x, t);
  det.fit_density(x);
  const auto s = det.score(x);
  for (double v : s)
    if (!std::isfinite(v)) {
      std::fprintf(stderr, "consumer_find_package_cuda: FAILED: a score is not finite\n");
      return 1;
    }
  std::printf("consumer_find_package_cuda: %zu scores\n", s.size());
  return 0;
}
