// The readers on the real files: Fashion-MNIST (Debian package), MNIST and
// CIFAR-10 test sets (shared/data). Each test SKIPs (with a warning) when its
// files are absent.
#include "dataio_helpers.hpp"

#include <scoreood/data/find.hpp>
#include <scoreood/data/idx.hpp>
#include <scoreood/data/load.hpp>

#include <array>
#include <chrono>
#include <numeric>
#include <optional>

using namespace dataio_test;
using namespace scoreood;
using namespace scoreood::data;

namespace {
std::optional<fs::path> try_find(const std::string& rel) {
  try {
    return find_data(rel);
  } catch (const FormatError&) {
    return std::nullopt;
  }
}
std::array<int, 10> counts(const std::vector<int>& labels) {
  std::array<int, 10> c{};
  std::size_t bad = 0;
  for (int l : labels) {
    if (l < 0 || l >= 10) ++bad;
    else ++c[std::size_t(l)];
  }
  CHECK(bad == 0);
  return c;
}
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
void check_range(const Images& x) {
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  CHECK(*lo == 0.0f);
  CHECK(*hi == 1.0f);
}
}  // namespace

TEST_CASE("Fashion-MNIST train and test sets load with balanced labels", "[idx][real]") {
  const auto train = try_find("fashion-mnist/train-images-idx3-ubyte.gz");
  const auto test = try_find("fashion-mnist/t10k-images-idx3-ubyte.gz");
  if (!train || !test) {
    WARN("skipped: Fashion-MNIST not found (apt-get install dataset-fashion-mnist, or set SCOREOOD_DATA)");
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  const Dataset tr = load_idx(*train);
  const double t_train = seconds_since(t0);
  REQUIRE(shape_of(tr.images) == Shape4{60000, 1, 28, 28});
  CHECK(counts(tr.labels) == std::array<int, 10>{6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000});
  check_range(tr.images);
  const Dataset te = load_idx(*test);
  REQUIRE(shape_of(te.images) == Shape4{10000, 1, 28, 28});
  CHECK(counts(te.labels) == std::array<int, 10>{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000});
  // The first test labels of Fashion-MNIST: ankle boot, pullover, trouser, trouser, shirt.
  CHECK(std::vector<int>(te.labels.begin(), te.labels.begin() + 5) == std::vector<int>{9, 2, 1, 1, 6});
  // Mean pixel of the training set is 0.2860 (the usual normalisation constant).
  const double mean = std::accumulate(tr.images.begin(), tr.images.end(), 0.0) / double(tr.images.size());
  CHECK(mean == Approx(0.2860).margin(5e-4).epsilon(0));
  WARN("Fashion-MNIST train (60000 images, gzip) loaded in " << t_train << " s");
}

TEST_CASE("MNIST test set from shared/data", "[idx][real]") {
  const auto p = try_find("mnist/t10k-images-idx3-ubyte.gz");
  if (!p) {
    WARN("skipped: MNIST test set not found under shared/data/mnist (or $SCOREOOD_DATA)");
    return;
  }
  const Dataset d = load_idx(*p);
  REQUIRE(shape_of(d.images) == Shape4{10000, 1, 28, 28});
  REQUIRE(d.labels.size() == 10000);
  CHECK(std::vector<int>(d.labels.begin(), d.labels.begin() + 10) == std::vector<int>{7, 2, 1, 0, 4, 1, 4, 9, 5, 9});
  CHECK(counts(d.labels) == std::array<int, 10>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
  check_range(d.images);
  // Same data through the generic spec, found relative to the data roots.
  const Dataset f = load("mnist/t10k-images-idx3-ubyte.gz:first=10");
  REQUIRE(f.images.shape()[0] == 10);
  CHECK(same(f.images, first_n(d.images, 10)));
  CHECK(f.labels == std::vector<int>{7, 2, 1, 0, 4, 1, 4, 9, 5, 9});
}

TEST_CASE("CIFAR-10 test set from shared/data, and its gray 28x28 version", "[cifar][real]") {
  const auto p = try_find("cifar10/test_batch.bin.gz");
  if (!p) {
    WARN("skipped: CIFAR-10 test set not found under shared/data/cifar10 (or $SCOREOOD_DATA)");
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  const Dataset d = load_cifar(*p);
  const double t_load = seconds_since(t0);
  REQUIRE(shape_of(d.images) == Shape4{10000, 3, 32, 32});
  REQUIRE(d.labels.size() == 10000);
  CHECK(counts(d.labels) == std::array<int, 10>{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000});
  bool round_robin = true;
  for (std::size_t i = 0; i < d.labels.size(); ++i) round_robin = round_robin && d.labels[i] == int(i % 10);
  CHECK(round_robin);
  // The README's mean pixel value: 121.5 of 255.
  const double mean = std::accumulate(d.images.begin(), d.images.end(), 0.0) / double(d.images.size());
  CHECK(mean * 255.0 == Approx(121.5).margin(0.1).epsilon(0));

  // `:gray28` against torch (tests/data/dataio_cifar_gray28.txt, from gen_dataio_reference.py).
  std::ifstream is(std::string(SCOREOOD_TEST_DATA_DIR) + "/dataio_cifar_gray28.txt");
  REQUIRE(is.good());
  std::string tag;
  int l0 = -1, l1 = -1;
  is >> tag >> l0 >> l1;
  CHECK(l0 == d.labels[0]);
  CHECK(l1 == d.labels[1]);
  std::vector<float> ref(2 * 28 * 28);
  for (auto& v : ref) is >> v;
  REQUIRE(is.good());
  const Dataset g = load(p->string() + ":gray28:first=2");
  REQUIRE(shape_of(g.images) == Shape4{2, 1, 28, 28});
  double worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, double(std::abs(g.images.data()[i] - ref[i])));
  CHECK(worst < 2e-6);
  WARN("CIFAR-10 test (10000 images, gzip) loaded in " << t_load << " s; gray28 max |diff| vs torch " << worst);
}
