// Does ScoreOOD::anomaly_map point at what is wrong? Pastes a 10x10 MNIST patch (the
// centre of a digit) at a random place into Fashion-MNIST test images and counts how
// often the map's largest pixel, and its 10x10 window of largest sum, fall on the patch.
// Usage: anomaly_localisation MODEL [first=5000] [count=500] [terms=clean|features] [weighting=sigma2|none]
//   MODEL     a detector file (trained network; no density needed)
//   first     first Fashion-MNIST test image used (5000..9999 is the validation half)
//   terms     ScoreOOD::MapOptions::Terms: the clean image's score, or every term of the model's features
//   weighting how the levels' residual terms are weighted (score::MapWeighting)
// Prints one line: images, pixel-hit share, window-hit share.
#include <scoreood/scoreood.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

namespace so = scoreood;

namespace {

struct Placement {
  std::size_t y, x;  ///< top-left corner of the pasted patch
};

/// Overwrites a 10x10 patch of each image with the centre of MNIST digit n, at a seeded place.
std::vector<Placement> paste_patches(so::Images& x, const so::Images& mnist, std::uint64_t seed) {
  const std::size_t N = x.shape()[0], S = x.shape()[2], K = 10, M = mnist.shape()[0];
  std::vector<Placement> at(N);
  const so::CounterRng rng(seed, 0x9A7C4);
  for (std::size_t n = 0; n < N; ++n) {
    at[n] = {rng.uniform_int(2 * n, std::uint32_t(S - K + 1)), rng.uniform_int(2 * n + 1, std::uint32_t(S - K + 1))};
    const std::size_t m = n % M, c0 = (28 - K) / 2;  // the digit's centre: where its strokes are
    for (std::size_t a = 0; a < K; ++a)
      for (std::size_t b = 0; b < K; ++b) x(n, 0, at[n].y + a, at[n].x + b) = mnist(m, 0, c0 + a, c0 + b);
  }
  return at;
}

template <class Det>
void run(const std::string& model, std::size_t first, std::size_t count, bool clean, so::score::MapWeighting w) {
  const Det det = Det::from_file(model);
  const auto all = so::data::load("fashion-mnist/t10k-images-idx3-ubyte.gz:first=" + std::to_string(first + count)).images;
  if (all.shape()[0] < first + count) throw so::ValueError("not enough Fashion-MNIST test images");
  so::Images x = so::Images::from_shape({count, all.shape()[1], all.shape()[2], all.shape()[3]});
  std::copy(all.data() + first * x.size() / count, all.data() + (first + count) * x.size() / count, x.data());
  // MNIST test images from the same index on, so validation and test halves use different digits.
  const auto mnist = so::data::load("mnist/t10k-images-idx3-ubyte.gz").images;
  so::Images digits = so::Images::from_shape({count, std::size_t(1), std::size_t(28), std::size_t(28)});
  std::copy(mnist.data() + first * 784, mnist.data() + (first + count) * 784, digits.data());
  const auto at = paste_patches(x, digits, first);
  using Terms = typename Det::MapOptions::Terms;
  const so::Images maps = det.anomaly_map(x, {.terms = clean ? Terms::clean : Terms::features, .weighting = w});
  const std::size_t S = x.shape()[2], K = 10;
  std::size_t pixel_hits = 0, window_hits = 0;
  for (std::size_t n = 0; n < count; ++n) {
    auto inside = [&](std::size_t y, std::size_t xx) {
      return y >= at[n].y && y < at[n].y + K && xx >= at[n].x && xx < at[n].x + K;
    };
    std::size_t by = 0, bx = 0;
    for (std::size_t y = 0; y < S; ++y)
      for (std::size_t xx = 0; xx < S; ++xx)
        if (maps(n, 0, y, xx) > maps(n, 0, by, bx)) {
          by = y;
          bx = xx;
        }
    pixel_hits += inside(by, bx);
    double best = -1;
    std::size_t wy = 0, wx = 0;
    for (std::size_t y = 0; y + K <= S; ++y)
      for (std::size_t xx = 0; xx + K <= S; ++xx) {
        double s = 0;
        for (std::size_t a = 0; a < K; ++a)
          for (std::size_t b = 0; b < K; ++b) s += maps(n, 0, y + a, xx + b);
        if (s > best) {
          best = s;
          wy = y;
          wx = xx;
        }
      }
    // A hit: the best window covers at least half of the patch.
    const std::size_t oy = K - std::min(K, std::size_t(std::abs(std::ptrdiff_t(wy) - std::ptrdiff_t(at[n].y))));
    const std::size_t ox = K - std::min(K, std::size_t(std::abs(std::ptrdiff_t(wx) - std::ptrdiff_t(at[n].x))));
    window_hits += 2 * oy * ox >= K * K;
  }
  std::cout << model << "  terms " << (clean ? "clean" : det.features().str()) << "  images " << count << "  pixel-max in patch " << double(pixel_hits) / double(count)
            << "  best 10x10 window covers >= half the patch " << double(window_hits) / double(count) << '\n';
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::cerr << "usage: anomaly_localisation MODEL [first=5000] [count=500] [terms=clean|features] [weighting=sigma2|none]\n";
    return 1;
  }
  const std::string model = argv[1];
  const std::size_t first = argc > 2 ? std::stoul(argv[2]) : 5000, count = argc > 3 ? std::stoul(argv[3]) : 500;
  const std::string terms = argc > 4 ? argv[4] : "clean", wname = argc > 5 ? argv[5] : "sigma2";
  if (terms != "clean" && terms != "features") throw so::ValueError("terms must be clean or features");
  if (wname != "sigma2" && wname != "none") throw so::ValueError("weighting must be sigma2 or none");
  const auto w = wname == "none" ? so::score::MapWeighting::none : so::score::MapWeighting::sigma2;
  const auto body = so::io::load_container(model, "scoreood-detector");
  so::io::ByteReader r(body, model);
  r.get_string(64);
  const std::string aug = r.get_string(64);
  using Net = so::nn::SmallUNet<so::backend::cpu>;
  if (aug == "rot4") run<so::ScoreOOD<Net, so::augment::Rot4, so::density::Gmm>>(model, first, count, terms == "clean", w);
  else if (aug == "identity") run<so::ScoreOOD<Net, so::augment::Identity, so::density::Gmm>>(model, first, count, terms == "clean", w);
  else throw so::ValueError(model + ": augmentation " + aug + " is not supported here");
  return 0;
} catch (const std::exception& e) {
  std::cerr << "anomaly_localisation: " << e.what() << '\n';
  return 1;
}
