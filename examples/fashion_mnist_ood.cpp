// Reproduces the paper's Fashion-MNIST table: NCSN (f_msma, f_rec) and RotNCSN
// (f_rot, per-element, msma+elem) trained under the same budget, evaluated
// against MNIST, CIFAR-10 (gray 28x28), rotated and patch-shuffled test images
// and any --extra sets (KMNIST, EMNIST, notMNIST when you have them).
// Writes results.json, figure3_*.png and figure4.svg under --out.
// Usage: fashion_mnist_ood --help
#include "common/ood_experiment.hpp"

#include <exception>
#include <iostream>

int main(int argc, char** argv) try {
  namespace ex = scoreood::examples;
  ex::ExperimentSetup setup;
  setup.program = "fashion_mnist_ood";
  setup.title = "Fashion-MNIST";
  setup.train_spec = "fashion-mnist/train-images-idx3-ubyte.gz";
  setup.test_spec = "fashion-mnist/t10k-images-idx3-ubyte.gz";
  setup.ood_files = {{"MNIST", "mnist/t10k-images-idx3-ubyte.gz"},
                     {"CIFAR-10 (gray)", "cifar10/test_batch.bin.gz:gray28"}};
  setup.transforms = {"rot90", "rot180", "rot270", "patch_shuffle"};  // patch 14x7
  setup.net = {.channels = 1, .image_size = 28};
  setup.default_out = "out/fashion_mnist";
  return ex::run_experiment(argc, argv, setup);
} catch (const std::exception& e) {
  std::cerr << "fashion_mnist_ood: " << e.what() << '\n';
  return 1;
}
