// Detector files and trainer states with a valid checksum but hostile
// contents: every stored value is checked when the file is loaded, and the
// error is a FormatError naming the file and the field.
#include <catch2/catch.hpp>

#include "../format_error.hpp"
#include <scoreood/density/gaussian.hpp>
#include <scoreood/density/gmm.hpp>
#include <scoreood/detector.hpp>
#include <scoreood/nn/nets/net_file.hpp>
#include <scoreood/schedule/explicit_list.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace scoreood;
namespace fs = std::filesystem;
using Unet = nn::SmallUNet<backend::cpu, float>;
using Det = ScoreOOD<Unet, augment::Rot4, density::Gaussian>;
using GmmDet = ScoreOOD<Unet, augment::Rot4, density::Gmm>;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
const nn::SmallUNetConfig kTiny{.channels = 1, .image_size = 8, .width = 2, .num_levels = 2};

using test::format_error;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("scoreood_detfiles_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& n) const { return path / n; }
};

Images noise_images(std::size_t n, std::uint64_t seed) {
  Images x = xt::empty<float>({n, std::size_t(1), std::size_t(8), std::size_t(8)});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = CounterRng(seed, 0).uniform(i);
  return x;
}

/// A detector file's fields before the network (ScoreOOD::save's order) and the bytes after them.
struct DetectorBody {
  std::string net, aug, density;
  std::vector<float> sigmas;
  std::string features;
  std::uint64_t draws = 0, seed = 0;
  std::vector<char> rest;  // network, fitted flag, density

  static DetectorBody read(const fs::path& p) {
    const auto body = io::load_container(p, "scoreood-detector");
    io::ByteReader r(body, p.string());
    DetectorBody d;
    d.net = r.get_string();
    d.aug = r.get_string();
    d.density = r.get_string();
    d.sigmas = r.get_vector<float>();
    d.features = r.get_string();
    d.draws = r.get<std::uint64_t>();
    d.seed = r.get<std::uint64_t>();
    d.rest.assign(body.end() - std::ptrdiff_t(r.remaining()), body.end());
    return d;
  }
  /// Writes the fields back with a fresh (valid) checksum.
  void write(const fs::path& p, const std::vector<char>* network = nullptr) const {
    io::ByteWriter w;
    w.put_string(net);
    w.put_string(aug);
    w.put_string(density);
    w.put_vector(sigmas);
    w.put_string(features);
    w.put<std::uint64_t>(draws);
    w.put<std::uint64_t>(seed);
    const auto& tail = network ? *network : rest;
    w.bytes().insert(w.bytes().end(), tail.begin(), tail.end());
    io::save_container(p, "scoreood-detector", w);
  }
};

/// A fitted tiny detector (untrained network: the density only needs vectors).
template <class D>
void make_detector(const fs::path& p, D density = {}) {
  typename ScoreOOD<Unet, augment::Rot4, D>::Options o;
  o.net = kTiny;
  o.features = score::FeatureSet::parse("msma,rot");
  ScoreOOD<Unet, augment::Rot4, D> det(schedule::Geometric{1.0f, 0.1f, 2}, o, {}, std::move(density));
  det.fit_density(noise_images(24, 1));
  det.save(p);
}

}  // namespace

TEST_CASE("detector files: sigmas must be finite, positive and strictly decreasing", "[detector][io]") {
  TempDir dir;
  make_detector<density::Gaussian>(dir / "ok.sood");
  Det ok(schedule::Geometric{}, {});
  ok.load(dir / "ok.sood");
  const auto good = DetectorBody::read(dir / "ok.sood");
  REQUIRE(good.sigmas.size() == 2);

  struct Case {
    std::vector<float> sigmas;
    const char* says;
  };
  const std::vector<Case> cases{
      {{1.0f, -0.1f}, "sigma[1]"},                                      // loaded and scored with exit 0
      {{kNaN, 0.1f}, "sigma[0]"},                                       // failed only when scoring
      {{1.0f, std::numeric_limits<float>::infinity()}, "sigma[1]"},
      {{0.1f, 1.0f}, "decreasing"},
      {{0.5f, 0.5f}, "decreasing"},
      {{1.0f, 0.0f}, "sigma[1]"},
  };
  for (const auto& c : cases) {
    INFO("sigmas " << c.sigmas[0] << ", " << c.sigmas[1]);
    DetectorBody b = good;
    b.sigmas = c.sigmas;
    const auto p = dir / "bad-sigma.sood";
    b.write(p);
    Det det(schedule::Geometric{}, {});
    CHECK_THAT(format_error([&] { det.load(p); }), Catch::Contains(p.string()) && Catch::Contains(c.says));
  }
  DetectorBody none = good;
  none.sigmas.clear();
  none.write(dir / "none.sood");
  CHECK_THAT(format_error([&] { ok.load(dir / "none.sood"); }), Catch::Contains("no noise levels"));
}

TEST_CASE("detector files: draws, the network's sizes and the density's dimension are checked", "[detector][io]") {
  TempDir dir;
  make_detector<density::Gaussian>(dir / "ok.sood");
  const auto good = DetectorBody::read(dir / "ok.sood");
  Det det(schedule::Geometric{}, {});

  SECTION("zero or absurd draws") {
    for (std::uint64_t draws : {std::uint64_t(0), std::uint64_t(1) << 40}) {
      DetectorBody b = good;
      b.draws = draws;
      b.write(dir / "draws.sood");
      CHECK_THAT(format_error([&] { det.load(dir / "draws.sood"); }),
                 Catch::Contains("draws.sood") && Catch::Contains("draws"));
    }
  }
  SECTION("a network of width 2^40 (was std::bad_alloc)") {
    io::ByteWriter w;
    nn::detail::write_net_header(w, "small-unet", {1, 8, std::uint64_t(1) << 40, 2});
    good.write(dir / "wide.sood", &w.bytes());
    CHECK_THAT(format_error([&] { det.load(dir / "wide.sood"); }),
               Catch::Contains("wide.sood") && Catch::Contains("width"));
  }
  SECTION("a density fitted on vectors of another length") {
    // Written with features msma,rot (2 x 2 levels = 4 columns); claiming msma
    // (2 columns) would load and fail at every score() with a ShapeError.
    DetectorBody b = good;
    b.features = "msma";
    b.write(dir / "dim.sood");
    CHECK_THAT(format_error([&] { det.load(dir / "dim.sood"); }),
               Catch::Contains("dim.sood") && Catch::Contains("4-dimensional") && Catch::Contains("msma"));
  }
  SECTION("the untouched file still loads and scores") {
    good.write(dir / "same.sood");
    det.load(dir / "same.sood");
    CHECK(det.score(noise_images(3, 2)).size() == 3);
  }
}

TEST_CASE("a GMM detector file with a bad mixture names the file", "[detector][io]") {
  TempDir dir;
  density::GmmOptions go;
  go.components = {1, 2};
  make_detector(dir / "gmm.sood", density::Gmm(go));
  GmmDet det(schedule::Geometric{}, {});
  det.load(dir / "gmm.sood");
  CHECK(det.fitted());
  // The first weight is the 8 bytes after the weight count; the weights are
  // the third array from the end of the density (weights, means, covariances),
  // which the threshold block follows (a flag byte, then value, kept share and
  // held-out count when there is a threshold).
  auto b = DetectorBody::read(dir / "gmm.sood");
  const std::size_t k = det.density().num_components(), d = det.density().dim();
  const std::size_t cov_bytes = 8 + k * d * d * 8, mean_bytes = 8 + k * d * 8;
  const std::size_t threshold_bytes = 1 + (det.threshold() ? 3 * 8 : 0);
  const std::size_t w0 = b.rest.size() - threshold_bytes - cov_bytes - mean_bytes - k * 8;
  const double half = 0.5 * det.density().weights()(0);
  std::memcpy(b.rest.data() + w0, &half, 8);
  b.write(dir / "weights.sood");
  CHECK_THAT(format_error([&] { det.load(dir / "weights.sood"); }),
             Catch::Contains("weights.sood") && Catch::Contains("sum"));
}

TEST_CASE("schedules that are not strictly decreasing are refused when a detector or trainer is made",
          "[detector]") {
  // Whatever is built must load again: the load-time rule holds at construction too.
  typename Det::Options o;
  o.net = kTiny;
  CHECK_THROWS_AS(Det(schedule::Geometric{0.1f, 1.0f, 2}, o), ValueError);
  CHECK_THROWS_AS(Det(schedule::ExplicitList{{1.0f, 1.0f}}, o), ValueError);
  Unet net(kTiny);
  CHECK_THROWS_AS((score::Trainer<Unet, augment::Rot4>(net, {}, {0.1f, 0.2f})), ValueError);
  CHECK_NOTHROW(Det(schedule::ExplicitList{{1.0f, 0.5f}}, o));
}

TEST_CASE("trainer states: sigmas, levels and optimiser state are checked", "[detector][trainer][io]") {
  TempDir dir;
  const std::vector<float> sig{1.0f, 0.1f};
  auto state_body = [&](const std::vector<float>& sigmas, const Unet& net, bool ema) {
    io::ByteWriter w;
    w.put<std::uint64_t>(7);  // step
    w.put<std::uint64_t>(0);  // seed
    w.put_vector(sigmas);
    w.put_string("rot4");
    net.save(w);
    Unet copy(net.config());
    nn::Adam<float>(copy.parameters()).save(w);
    w.put<std::uint8_t>(ema ? 1 : 0);
    if (ema) nn::Ema<float>(copy.parameters(), 0.99).save(w);
    return w;
  };
  auto load_error = [&](const io::ByteWriter& body, const std::string& name) {
    const auto p = dir / name;
    io::save_container(p, "scoreood-train-state", body);
    Unet net(kTiny);
    score::Trainer<Unet, augment::Rot4> t(net, {}, sig);
    return format_error([&] { t.load(p); });
  };
  Unet net(kTiny, 5);
  {  // a well-formed state loads
    const auto p = dir / "ok.sood";
    io::save_container(p, "scoreood-train-state", state_body(sig, net, true));
    Unet n2(kTiny);
    score::Trainer<Unet, augment::Rot4> t(n2, {}, sig);
    t.load(p);
    CHECK(t.step() == 7);
  }
  CHECK_THAT(load_error(state_body({1.0f, kNaN}, net, false), "nan.sood"),
             Catch::Contains("nan.sood") && Catch::Contains("sigma[1]"));
  CHECK_THAT(load_error(state_body({-1.0f, 0.1f}, net, false), "neg.sood"), Catch::Contains("sigma[0]"));
  // A network conditioned on 3 levels with a 2-level schedule: it was adopted
  // and training then failed on the first level index (or silently used 2 of 3).
  // Now refused as another architecture than the trainer's network.
  Unet three({.channels = 1, .image_size = 8, .width = 2, .num_levels = 3});
  CHECK_THAT(load_error(state_body(sig, three, false), "levels.sood"),
             Catch::Contains("levels.sood") && Catch::Contains("levels 3") && Catch::Contains("levels 2"));
  // A network of width 2^40 inside a trainer state.
  io::ByteWriter wide;
  wide.put<std::uint64_t>(0);
  wide.put<std::uint64_t>(0);
  wide.put_vector(sig);
  wide.put_string("rot4");
  nn::detail::write_net_header(wide, "small-unet", {1, 8, std::uint64_t(1) << 40, 2});
  CHECK_THAT(load_error(wide, "wide.sood"), Catch::Contains("wide.sood") && Catch::Contains("width"));
}
