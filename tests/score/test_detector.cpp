#include <catch2/catch.hpp>
#include <scoreood/density/gaussian.hpp>
#include <scoreood/detector.hpp>
#include <scoreood/metrics/roc.hpp>

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
