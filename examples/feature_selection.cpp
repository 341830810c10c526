/** @file feature_selection.cpp
 *  @brief Dumps the raw normality vectors of a saved RotNCSN (f_msma and the
 *  per-element L x |G| vector, one file per noise draw) on a validation split,
 *  for choosing features and density offline with scripts/select_features.py.
 *
 *  Validation split (disjoint from the 1000 evaluation images of the examples):
 *  in-distribution = Fashion-MNIST test images 5000-5999; OOD = rot90, rot180,
 *  rot270 and patch shuffle of test images 6000-6499, and the first 500 images
 *  of the CIFAR-10 training subset as gray 28x28 (a foreign set that is no
 *  test set; left out with a note when the file is absent). The density's
 *  vectors are those of the first `--fit N` Fashion-MNIST training images.
 *  `--test` also dumps the evaluation sets (test images 0-999, MNIST,
 *  CIFAR-10 gray, their transforms).
 *
 *    feature_selection MODEL.sood OUTDIR [--draws K] [--fit N] [--test] [--data ROOT]
 *    /usr/bin/python3 scripts/select_features.py OUTDIR [--draws K] [--fit-sizes 2000,10000] */
#include <scoreood/scoreood.hpp>

#include "cli/parse.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

namespace so = scoreood;
using RotNcsn = so::ScoreOOD<so::nn::SmallUNet<>, so::augment::Rot4, so::density::Gmm>;

namespace {
so::Images rows(const so::Images& x, std::size_t a, std::size_t b) {
  if (b > x.shape()[0]) throw so::ValueError("feature_selection: the set has only " + std::to_string(x.shape()[0]) + " images");
  so::Images y({b - a, x.shape()[1], x.shape()[2], x.shape()[3]});
  const std::size_t P = x.shape()[1] * x.shape()[2] * x.shape()[3];
  std::copy(x.data() + a * P, x.data() + b * P, y.data());
  return y;
}
/// A float64 C-order .npy file (format 1.0), readable with numpy.load.
void write_npy(const std::filesystem::path& path, const so::Matrix<double>& m) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + std::to_string(m.shape()[0]) + ", " +
                       std::to_string(m.shape()[1]) + "), }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  const unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                                static_cast<unsigned char>(header.size() >> 8)};
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(len), 2);
  f << header;
  f.write(reinterpret_cast<const char*>(m.data()), std::streamsize(m.size() * sizeof(double)));
  if (!f) throw so::Error("cannot write " + path.string());
}
}  // namespace

const char* kUsage =
    "usage: feature_selection MODEL.sood OUTDIR [--draws K] [--fit N] [--test] [--data ROOT]\n"
    "  MODEL.sood   a saved RotNCSN detector (SmallUNet, rot4, gmm)\n"
    "  OUTDIR       where the .npy files go (created)\n"
    "  --draws K    noise draws of the per-element vector, one file each (default 1)\n"
    "  --fit N      training images whose vectors the density is fitted on (default 2000)\n"
    "  --test       also the evaluation sets (test images 0-999, MNIST, CIFAR-10 gray, transforms)\n"
    "  --data ROOT  data folder searched first\n";

int main(int argc, char** argv) try {
  CLI::App app{"normality vectors for feature selection", "feature_selection"};
  so::cli::configure(app, kUsage);
  std::string model_arg, out_arg, data_root;
  std::size_t draws = 1, fit = 2000;
  bool test = false;
  app.add_option("MODEL", model_arg)->required();
  app.add_option("OUTDIR", out_arg)->required();
  so::cli::add_count(app, "--draws", draws, /*positive=*/true);
  so::cli::add_count(app, "--fit", fit, /*positive=*/true);
  so::cli::add_switch(app, "--test", test);
  app.add_option("--data", data_root);
  if (!so::cli::parse(app, argc, argv)) return 0;
  if (app.count("--data")) setenv("SCOREOOD_DATA", data_root.c_str(), 1);
  const std::filesystem::path model = model_arg, out = out_arg;
  std::filesystem::create_directories(out);
  RotNcsn det;
  det.load(model);

  const so::Images train =
      so::data::load("fashion-mnist/train-images-idx3-ubyte.gz:first=" + std::to_string(fit)).images;
  const so::Images all_test = so::data::load("fashion-mnist/t10k-images-idx3-ubyte.gz").images;
  std::vector<std::pair<std::string, so::Images>> sets{{"fit", train}, {"val_in", rows(all_test, 5000, 6000)}};
  const so::Images val_ood = rows(all_test, 6000, 6500);
  for (const char* t : {"rot90", "rot180", "rot270", "patch_shuffle"})
    sets.push_back({std::string("val_") + t, so::augment::apply_transform(val_ood, t, 99)});
  std::filesystem::path foreign;  // absent: the split goes on without it; present but bad: an error
  try {
    foreign = so::data::find_data("cifar10/train_subset_10000.bin.gz");
  } catch (const so::FormatError& e) {
    std::cerr << "feature_selection: note: no foreign validation set (" << e.what() << ")\n";
  }
  if (!foreign.empty())
    sets.push_back({"val_cifar10_train", so::data::load(foreign.string() + ":gray28:first=500").images});
  if (test) {
    const so::Images ti = rows(all_test, 0, 1000);
    sets.push_back({"test_in", ti});
    sets.push_back({"test_mnist", so::data::load("mnist/t10k-images-idx3-ubyte.gz:first=1000").images});
    sets.push_back({"test_cifar", so::data::load("cifar10/test_batch.bin.gz:gray28:first=1000").images});
    for (const char* t : {"rot90", "rot180", "rot270", "patch_shuffle"})  // the examples' seed for the transforms
      sets.push_back({std::string("test_") + t, so::augment::apply_transform(ti, t, 17)});
  }

  for (const auto& [name, images] : sets) {
    so::score::NormalityOptions o;
    o.progress = &std::cerr;
    o.label = name;
    o.features = so::score::FeatureSet::parse("msma");
    write_npy(out / (name + ".msma.npy"), so::score::normality(det.net(), det.augmentation(), det.sigmas(), images, o));
    o.features = so::score::FeatureSet::parse("elem");
    for (std::size_t d = 0; d < draws; ++d) {
      o.seed = 0x5C0DEull + 1000 * d;  // an independent noise draw per file
      write_npy(out / (name + ".elem" + std::to_string(d) + ".npy"),
                so::score::normality(det.net(), det.augmentation(), det.sigmas(), images, o));
    }
  }
  std::cout << "wrote " << sets.size() << " sets to " << out.string() << '\n';
  return 0;
} catch (const std::exception& e) {
  std::cerr << "feature_selection: " << e.what() << '\n';
  return 1;
}
