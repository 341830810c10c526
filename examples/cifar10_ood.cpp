// The paper's CIFAR-10 experiment on the offline data: NCSN and RotNCSN
// trained on a 10,000-image CIFAR-10 training subset, evaluated against
// rotated and patch-shuffled (16x8) test images and any --extra sets
// (CIFAR-100 and SVHN are not available offline; pass them with --extra).
// Writes results.json, figure3_*.png and figure4.svg under --out.
// Usage: cifar10_ood --help
#include "common/ood_experiment.hpp"

#include <exception>
#include <iostream>

int main(int argc, char** argv) try {
  namespace ex = scoreood::examples;
  ex::ExperimentSetup setup;
  setup.program = "cifar10_ood";
  setup.title = "CIFAR-10";
  setup.train_spec = "cifar10/train_subset_10000.bin.gz";
  setup.test_spec = "cifar10/test_batch.bin.gz";
  setup.transforms = {"rot90", "rot180", "rot270", "patch_shuffle"};  // patch 16x8
  setup.net = {.channels = 3, .image_size = 32};
  setup.default_out = "out/cifar10";
  return ex::run_experiment(argc, argv, setup);
} catch (const std::exception& e) {
  std::cerr << "cifar10_ood: " << e.what() << '\n';
  return 1;
}
