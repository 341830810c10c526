// The README's usage snippet, compiled: train RotNCSN on Fashion-MNIST, score
// Fashion-MNIST test images against MNIST, print the AUROC, save the detector.
// Usage: quickstart [STEPS=300] [IMAGES=500]
#include <scoreood/scoreood.hpp>

#include "cli/parse.hpp"

#include <cstdlib>
#include <iostream>

namespace so = scoreood;

int main(int argc, char** argv) try {
  std::size_t steps = 300, n = 500;
  CLI::App app{"the README snippet", "quickstart"};
  so::cli::configure(app, "usage: quickstart [STEPS] [IMAGES]\n"
                          "  STEPS   training steps (default 300)\n"
                          "  IMAGES  Fashion-MNIST test and MNIST images scored (default 500)\n");
  so::cli::add_count(app, "STEPS", steps, /*positive=*/true);
  so::cli::add_count(app, "IMAGES", n, /*positive=*/true);
  if (!so::cli::parse(app, argc, argv)) return 0;
  // --- README snippet begins
  using Detector = so::ScoreOOD<so::nn::SmallUNet<so::backend::cpu>, so::augment::Rot4, so::density::Gmm>;
  Detector det{so::schedule::Geometric{1.0f, 0.01f, 10}};
  auto train = so::data::load("fashion-mnist/train-images-idx3-ubyte.gz").images;
  det.train(train, {.steps = steps, .batch = 128, .progress = &std::cout});  // Eq. 4
  det.fit_density(train, 2000);                                              // normality vectors -> GMM
  auto test = so::data::load("fashion-mnist/t10k-images-idx3-ubyte.gz:first=" + std::to_string(n)).images;
  auto mnist = so::data::load("mnist/t10k-images-idx3-ubyte.gz:first=" + std::to_string(n)).images;
  auto s_in = det.score(test), s_out = det.score(mnist);                     // higher = more OOD
  std::cout << "AUROC Fashion-MNIST vs MNIST: " << so::metrics::auroc(s_in, s_out) << '\n';
  det.save("rotncsn-fmnist.sood");                                           // net + schedule + density
  // --- README snippet ends
  return 0;
} catch (const std::exception& e) {
  std::cerr << "quickstart: " << e.what() << '\n';
  return 1;
}
