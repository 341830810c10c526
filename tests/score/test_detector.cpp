#include <catch2/catch.hpp>
#include <scoreood/density/gaussian.hpp>
#include <scoreood/detector.hpp>
#include <scoreood/metrics/roc.hpp>

#include <xtensor/xview.hpp>

#include <filesystem>
#include <fstream>

using namespace scoreood;

namespace {
Images stripes(std::size_t n, std::size_t size, bool vertical, std::uint64_t seed) {
  Images x = xt::zeros<float>({n, std::size_t(1), size, size});
  const CounterRng r(seed, 0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t a = 0; a < size; ++a)
      for (std::size_t b = 0; b < size; ++b) {
        const std::size_t c = vertical ? b : a;
        x(i, 0, a, b) = (c % 4 < 2 ? 0.8f : 0.1f) + 0.05f * r.uniform(i * size * size + a * size + b);
      }
  return x;
}
}  // namespace

TEST_CASE("ScoreOOD trains, fits, scores, and survives a save/load round trip", "[detector]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "scoreood_test_detector";
  fs::create_directories(dir);
  using Det = ScoreOOD<nn::SmallUNet<>, augment::Rot4, density::Gaussian>;
  Det::Options o;
  o.net = {.channels = 1, .image_size = 8, .width = 4};
  o.batch = 16;
  Det det(schedule::Geometric{1.0f, 0.05f, 4}, o);
  CHECK(det.net().config().num_levels == 4);
  CHECK(det.features().str() == "msma,elem,log");  // the default for a real group

  const Images in = stripes(48, 8, false, 1), test = stripes(24, 8, false, 2);
  Images out = xt::empty<float>({std::size_t(24), std::size_t(1), std::size_t(8), std::size_t(8)});
  for (std::size_t i = 0; i < out.size(); ++i) out.data()[i] = CounterRng(7, 0).uniform(i);  // white noise
  CHECK_THROWS_WITH(det.score(test), Catch::Contains("before fit_density"));
  const auto r = det.train(in, {.steps = 40, .batch = 16, .lr = 3e-3, .log_every = 0});
  CHECK(r.total_steps == 40);
  // f_msma looks at the clean image: after 40 steps it already separates noise from stripes.
  det.set_features(score::FeatureSet::parse("msma,rot"));
  det.fit_density(in);
  const auto s_in = det.score(test), s_out = det.score(out);
  REQUIRE(s_in.size() == 24);
  INFO("in " << s_in[0] << " " << s_in[1] << " out " << s_out[0] << " " << s_out[1]);
  // White noise is far from anything the Gaussian saw.
  CHECK(metrics::auroc(s_in, s_out) > 0.9);

  det.save(dir / "d.sood");
  Det back(schedule::Geometric{}, {});
  back.load(dir / "d.sood");
  CHECK(back.sigmas() == det.sigmas());
  CHECK(back.score(test) == s_in);

  SECTION("a set scored in parts with their offsets gives the whole set's scores") {
    // msma,rot draws noise per image: the offset keeps each image's noise that of its index.
    // The vectors are bit-identical; the density's sums over another number of rows may
    // round differently, so the scores agree to rounding.
    const Images a = xt::view(test, xt::range(0, 10)), b = xt::view(test, xt::range(10, 24));
    const Matrix<double> whole = det.normality(test), va = det.normality(a, "", 0), vb = det.normality(b, "", 10);
    REQUIRE(va.shape()[0] + vb.shape()[0] == whole.shape()[0]);
    const bool head_same = va == Matrix<double>(xt::view(whole, xt::range(0, 10), xt::all()));
    const bool tail_same = vb == Matrix<double>(xt::view(whole, xt::range(10, 24), xt::all()));
    CHECK(head_same);
    CHECK(tail_same);
    std::vector<double> parts = det.score(a, "", 0);
    const auto tail = det.score(b, "", 10);
    parts.insert(parts.end(), tail.begin(), tail.end());
    for (std::size_t i = 0; i < parts.size(); ++i) CHECK(parts[i] == Approx(s_in[i]).epsilon(1e-12).margin(0));
    // Without the offset the second part gets the first part's noise: other vectors.
    const bool unshifted_same = det.normality(b) == vb;
    CHECK_FALSE(unshifted_same);
  }

  SECTION("another detector type refuses the file") {
    ScoreOOD<nn::SmallUNet<>, augment::Identity, density::Gaussian> other;
    CHECK_THROWS_WITH(other.load(dir / "d.sood"), Catch::Contains("augmentation 'rot4'"));
  }
  SECTION("a damaged file leaves the detector unchanged") {
    auto bytes = io::read_file_bytes(dir / "d.sood");
    bytes.resize(bytes.size() - 9);
    io::write_file_atomic(dir / "bad.sood", bytes);
    CHECK_THROWS_AS(back.load(dir / "bad.sood"), FormatError);
    CHECK(back.score(test) == s_in);
  }
  SECTION("log-space features survive the round trip") {
    det.set_features(score::FeatureSet::parse("msma,elem,log"));
    det.fit_density(in);
    det.save(dir / "log.sood");
    Det logged(schedule::Geometric{}, {});
    logged.load(dir / "log.sood");
    CHECK(logged.features().str() == "msma,elem,log");
    CHECK(logged.score(test) == det.score(test));
  }
  SECTION("images of the wrong size") {
    const Images big = stripes(2, 12, false, 4);
    CHECK_THROWS_AS(det.score(big), ShapeError);
    score::TrainOptions one;
    one.steps = 1;
    CHECK_THROWS_AS(det.train(big, one), ShapeError);
  }
  fs::remove_all(dir);
}

TEST_CASE("fit_density holds out a share and calibrates the decision threshold", "[detector][threshold]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "scoreood_test_threshold";
  fs::create_directories(dir);
  using Det = ScoreOOD<nn::SmallUNet<>, augment::Rot4, density::Gaussian>;
  Det::Options o;
  o.net = {.channels = 1, .image_size = 8, .width = 4};
  o.features = score::FeatureSet::parse("msma,rot");
  o.batch = 32;
  Det det(schedule::Geometric{1.0f, 0.05f, 4}, o);
  const Images in = stripes(200, 8, false, 1);
  det.train(in, {.steps = 20, .batch = 16, .lr = 3e-3, .log_every = 0});

  det.fit_density(in, {.holdout = 0.1, .keep = 0.9});
  REQUIRE(det.threshold());
  CHECK(det.threshold()->held_out == 20);
  CHECK(det.threshold()->keep == 0.9);
  // Recompute the rule from the vectors: the threshold is a held-out image's score, and exactly
  // 18 of the 20 held-out scores (90 %) lie at or below it, so 18 of them are not OOD.
  const std::vector<double> s = det.score_vectors(det.normality(in));
  const std::vector<bool> flags = det.is_ood(in);
  std::size_t at_or_below = 0, flagged = 0;
  bool is_a_score = false;
  for (std::size_t k = 0; k < s.size(); ++k) {
    at_or_below += s[k] <= det.threshold()->value;
    flagged += flags[k];
    is_a_score |= s[k] == det.threshold()->value;
    CHECK(flags[k] == (s[k] > det.threshold()->value));
  }
  CHECK(is_a_score);
  CHECK(flagged == s.size() - at_or_below);
  // The held-out images are not the first or last 20 (a sorted set would hand out one class).
  CHECK(flagged < 200);

  // White noise is flagged.
  Images noise = xt::empty<float>({std::size_t(10), std::size_t(1), std::size_t(8), std::size_t(8)});
  for (std::size_t i = 0; i < noise.size(); ++i) noise.data()[i] = CounterRng(9, 0).uniform(i);
  const auto noise_flags = det.is_ood(noise);
  CHECK(std::count(noise_flags.begin(), noise_flags.end(), true) >= 9);

  SECTION("the threshold survives save/load; a refit without a holdout drops it") {
    det.save(dir / "t.sood");
    const Det back = Det::from_file(dir / "t.sood");
    REQUIRE(back.threshold());
    CHECK(back.threshold()->value == det.threshold()->value);
    CHECK(back.threshold()->held_out == 20);
    CHECK(back.is_ood(in) == flags);
    det.fit_density(in, {.holdout = 0});
    CHECK(!det.threshold());
    CHECK_THROWS_WITH(det.is_ood(in), Catch::Contains("needs a threshold"));
    det.set_threshold(1.5);
    CHECK(det.is_ood_scores(std::vector<double>{1.0, 2.0}) == std::vector<bool>{false, true});
  }
  SECTION("too few images for a holdout: no threshold, all images fitted") {
    det.fit_density(in, {.limit = 60});  // 10 % is 6 images
    CHECK(!det.threshold());
  }
  SECTION("bad options") {
    CHECK_THROWS_AS(det.fit_density(in, {.holdout = 1.0}), ValueError);
    CHECK_THROWS_AS(det.fit_density(in, {.keep = 0.0}), ValueError);
  }
  fs::remove_all(dir);
}

TEST_CASE("A detector file written before the threshold existed still loads", "[detector][threshold]") {
  // The RotNCSN shipped in examples/models/ until 2026-12-02 (trained at 9927a6c), kept as it was.
  const auto path = std::filesystem::path(SCOREOOD_TEST_DATA_DIR) / "detector-v1-smallunet-rot4.sood";
  using Det = ScoreOOD<nn::SmallUNet<>, augment::Rot4, density::Gmm>;
  const Det det = Det::from_file(path);  // format version 1, a trained network without a density
  CHECK(det.net().config().width == 32);
  CHECK(!det.fitted());
  CHECK(!det.threshold());
}

TEST_CASE("Anomaly maps add up to the squared norms behind the features", "[detector][anomaly_map]") {
  // The maps sum the squared residuals the features take norms of, with the same noise, so the
  // sum over pixels of a map equals the sum over levels of the squared features (weighted).
  using Det = ScoreOOD<nn::SmallUNet<>, augment::Rot4, density::Gaussian>;
  Det::Options o;
  o.net = {.channels = 2, .image_size = 8, .width = 4};
  o.batch = 3;
  Det det(schedule::Geometric{1.0f, 0.05f, 3}, o);
  Images x = Images::from_shape({std::size_t(5), std::size_t(2), std::size_t(8), std::size_t(8)});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = CounterRng(4, 1).uniform(i);
  const auto sig = det.sigmas();
  const std::size_t L = sig.size(), G = 4;

  for (const char* features : {"elem", "msma", "msma,elem"}) {
    det.set_features(score::FeatureSet::parse(features));
    for (auto w : {score::MapWeighting::none, score::MapWeighting::sigma2}) {
      const Images maps = det.anomaly_map(x, {.terms = Det::MapOptions::Terms::features, .weighting = w});
      REQUIRE(maps.shape()[0] == 5);
      REQUIRE(maps.shape()[1] == 1);
      REQUIRE(maps.shape()[2] == 8);
      const Matrix<double> v = det.normality(x);
      for (std::size_t n = 0; n < 5; ++n) {
        double sum = 0;
        for (std::size_t p = 0; p < 64; ++p) {
          CHECK(maps(n, 0, p / 8, p % 8) >= 0);
          sum += maps(n, 0, p / 8, p % 8);
        }
        double want = 0;
        std::size_t col = 0;
        if (std::string(features).find("msma") != std::string::npos)
          for (std::size_t i = 0; i < L; ++i, ++col) want += v(n, col) * v(n, col);
        if (std::string(features).find("elem") != std::string::npos)
          for (std::size_t i = 0; i < L; ++i)
            for (std::size_t g = 0; g < G; ++g, ++col) {
              const double wi = w == score::MapWeighting::sigma2 ? double(sig[i]) * sig[i] : 1.0;
              want += wi * v(n, col) * v(n, col);
            }
        INFO(features << " image " << n);
        CHECK(sum == Approx(want).epsilon(1e-5));
      }
    }
  }
  // The default map is the clean-image term alone, whatever the features.
  const Images clean = det.anomaly_map(x);
  det.set_features(score::FeatureSet::parse("msma"));
  const Images msma_only = det.anomaly_map(x, {.terms = Det::MapOptions::Terms::features});
  CHECK(std::equal(clean.begin(), clean.end(), msma_only.begin()));
}
