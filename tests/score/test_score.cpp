#include <catch2/catch.hpp>
#include <scoreood/augment/identity.hpp>
#include <scoreood/augment/rot4.hpp>
#include <scoreood/nn/nets/small_unet.hpp>
#include <scoreood/schedule.hpp>
#include <scoreood/score.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>

#include <xtensor/xview.hpp>

using namespace scoreood;

namespace {
Images blobs(std::size_t n, std::size_t size, std::uint64_t seed) {
  // Smooth bright squares on a dark background: easy to model in a few steps.
  Images x = xt::zeros<float>({n, std::size_t(1), size, size});
  const CounterRng r(seed, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t y0 = r.uniform_int(2 * i, std::uint32_t(size / 2)), x0 = r.uniform_int(2 * i + 1, std::uint32_t(size / 2));
    for (std::size_t y = y0; y < y0 + size / 2; ++y)
      for (std::size_t x1 = x0; x1 < x0 + size / 2; ++x1) x(i, 0, y, x1) = 0.9f;
  }
  return x;
}
}  // namespace

TEST_CASE("noise schedules", "[schedule]") {
  const auto g = schedule::Geometric{1.0f, 0.01f, 10}.sigmas();
  REQUIRE(g.size() == 10);
  CHECK(g[0] == Approx(1.0));
  CHECK(g[9] == Approx(0.01));
  CHECK(g[2] == Approx(0.35938).epsilon(1e-4));  // the paper's "0.359"
  for (std::size_t i = 1; i < g.size(); ++i) CHECK(g[i] / g[i - 1] == Approx(g[1] / g[0]));
  const auto l = schedule::Linear{1.0f, 0.1f, 4}.sigmas();
  CHECK(l[1] == Approx(0.7));
  CHECK_THROWS_AS((schedule::ExplicitList{{0.5f, -1.0f}}.sigmas()), ValueError);
  CHECK_THROWS_AS((schedule::Geometric{1.0f, 0.01f, 0}.sigmas()), ValueError);
}

TEST_CASE("DSM loss equals Eq. 1 per sample and its gradient matches finite differences", "[dsm]") {
  Tensor4<double> s = xt::empty<double>({std::size_t(3), std::size_t(1), std::size_t(4), std::size_t(4)}), z = s, g;
  const CounterRng r(9, 0);
  for (std::size_t i = 0; i < s.size(); ++i) {
    s.data()[i] = r.normal(i);
    z.data()[i] = r.normal(i + 1000);
  }
  const std::vector<float> sigma{1.0f, 0.1f, 0.01f};
  const double loss = score::dsm_loss(s, z, sigma, g);
  // Direct Eq. 1 form: 0.5 sigma^2 || s + (x~ - x)/sigma^2 ||^2 with x~ - x = sigma z.
  double direct = 0;
  for (std::size_t b = 0; b < 3; ++b)
    for (std::size_t p = 0; p < 16; ++p) {
      const double sg = sigma[b], t = s.data()[b * 16 + p] + sg * z.data()[b * 16 + p] / (sg * sg);
      direct += 0.5 * sg * sg * t * t / 3.0;
    }
  CHECK(loss == Approx(direct).epsilon(1e-9));
  for (std::size_t i = 0; i < s.size(); i += 5) {
    Tensor4<double> sp = s, sm = s, tmp;
    sp.data()[i] += 1e-6;
    sm.data()[i] -= 1e-6;
    const double num = (score::dsm_loss(sp, z, sigma, tmp) - score::dsm_loss(sm, z, sigma, tmp)) / 2e-6;
    CHECK(g.data()[i] == Approx(num).epsilon(1e-5).margin(1e-9));
  }
}

TEST_CASE("DSM batches are reproducible and apply the group to the noisy input", "[dsm]") {
  const Images data = blobs(16, 8, 1);
  const auto sig = schedule::Geometric{1.0f, 0.01f, 5}.sigmas();
  score::DsmBatch a, b;
  score::make_dsm_batch(data, sig, augment::Rot4{}, 32, score::DsmStreams::for_step(7, 3), a);
  score::make_dsm_batch(data, sig, augment::Rot4{}, 32, score::DsmStreams::for_step(7, 3), b);
  CHECK(std::memcmp(a.input.data(), b.input.data(), a.input.size() * 4) == 0);
  CHECK(a.levels == b.levels);
  score::make_dsm_batch(data, sig, augment::Rot4{}, 32, score::DsmStreams::for_step(7, 4), b);
  CHECK(a.levels != b.levels);
  // Undo the group element: the result must be x + sigma z for one of the training images.
  const augment::Rot4 rot;
  std::size_t matched = 0;
  for (std::size_t i = 0; i < 32; ++i) {
    std::vector<float> undone(64);
    rot.apply_image(a.input.data() + i * 64, undone.data(), 1, 8, 8, rot.inverse(std::size_t(a.elements[i])));
    for (std::size_t n = 0; n < 16; ++n) {
      bool same = true;
      for (std::size_t p = 0; p < 64 && same; ++p)
        same = std::abs(undone[p] - (data.data()[n * 64 + p] + a.sigma[i] * a.noise.data()[i * 64 + p])) < 1e-5f;
      if (same) {
        ++matched;
        break;
      }
    }
  }
  CHECK(matched == 32);
  std::set<int> elems(a.elements.begin(), a.elements.end());
  CHECK(elems.size() == 4);
}

TEST_CASE("training lowers the DSM loss and resumes exactly", "[trainer]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "scoreood_test_trainer";
  fs::create_directories(dir);
  // Flat grey images: the optimal score -(x~ - 0.5)/sigma^2 is learnable, so the
  // loss can fall far below its starting value (0.5 per pixel for a zero score).
  const Images data = xt::full_like(blobs(64, 8, 2), 0.5f);
  const auto sig = schedule::Geometric{1.0f, 0.25f, 4}.sigmas();
  const nn::SmallUNetConfig cfg{.channels = 1, .image_size = 8, .width = 4, .num_levels = 4};

  nn::SmallUNet<> net(cfg, 1);
  score::TrainOptions opt{.steps = 200, .batch = 32, .lr = 1e-2, .seed = 5, .log_every = 50};
  std::ostringstream progress;
  opt.progress = &progress;
  opt.loss_log = dir / "loss.csv";
  // Identity: under Rot4 a flat image hides which rotation was applied, so
  // the un-rotated noise could not be recovered and the loss would stay put.
  score::Trainer tr(net, augment::Identity{}, sig, opt);
  const double first = [&] {
    double l = 0;
    for (int i = 0; i < 10; ++i) l += tr.train_step(data);
    return l / 10;
  }();
  const auto res = tr.run(data);
  CHECK(res.total_steps == 200);
  INFO("first " << first << " final " << res.final_loss << "\n" << progress.str());
  CHECK(res.final_loss < 0.2 * first);
  CHECK(progress.str().find("step 200/200") != std::string::npos);
  CHECK(fs::file_size(dir / "loss.csv") > 20);

  // Stop at 60, save, resume in a new trainer: the final weights equal an uninterrupted run's.
  nn::SmallUNet<> a(cfg, 1), b(cfg, 1);
  score::TrainOptions o2{.steps = 60, .batch = 8, .lr = 1e-3, .seed = 11, .log_every = 0};
  score::Trainer ta(a, augment::Rot4{}, sig, o2);
  ta.run(data);
  ta.save(dir / "state.sood");
  o2.steps = 80;
  score::Trainer ta2(a, augment::Rot4{}, sig, o2);
  ta2.load(dir / "state.sood");
  CHECK(ta2.step() == 60);
  ta2.run(data);
  score::Trainer tb(b, augment::Rot4{}, sig, o2);
  tb.run(data);
  const auto va = a.parameters().values(), vb = b.parameters().values();
  CHECK(std::memcmp(va.data(), vb.data(), va.size_bytes()) == 0);

  // With EMA on, the network ends on the averaged weights but the saved state
  // keeps the raw ones: a resumed run still equals an uninterrupted one.
  {
    nn::SmallUNet<> c(cfg, 1), d(cfg, 1);
    score::TrainOptions o3{.steps = 30, .batch = 8, .lr = 1e-3, .ema = 0.9, .seed = 12, .log_every = 0};
    o3.checkpoint = dir / "ema.sood";
    score::Trainer tc(c, augment::Rot4{}, sig, o3);
    tc.run(data);
    o3.steps = 50;
    score::Trainer tc2(c, augment::Rot4{}, sig, o3);
    tc2.load(dir / "ema.sood");
    tc2.run(data);
    score::Trainer td(d, augment::Rot4{}, sig, o3);
    td.run(data);
    const auto vc = c.parameters().values(), vd = d.parameters().values();
    CHECK(std::memcmp(vc.data(), vd.data(), vc.size_bytes()) == 0);
  }

  // A state from another augmentation or seed is refused.
  score::Trainer wrong(b, augment::Identity{}, sig, o2);
  CHECK_THROWS_WITH(wrong.load(dir / "state.sood"), Catch::Contains("augmentation 'rot4'"));
  fs::remove_all(dir);
}

TEST_CASE("normality vectors: shapes, definitions and batch independence", "[normality]") {
  const nn::SmallUNetConfig cfg{.channels = 1, .image_size = 8, .width = 4, .num_levels = 3};
  nn::SmallUNet<> net(cfg, 4);
  const auto sig = schedule::Geometric{1.0f, 0.1f, 3}.sigmas();
  const Images x = blobs(5, 8, 3);
  score::NormalityOptions o;
  o.features = score::FeatureSet::parse("msma,rec,rot,elem");
  o.batch = 2;
  const augment::Rot4 rot;
  const auto f = score::normality(net, rot, sig, x, o);
  REQUIRE(f.shape()[0] == 5);
  REQUIRE(f.shape()[1] == 3 * (3 + 4));
  o.batch = 5;
  const auto f5 = score::normality(net, rot, sig, x, o);
  CHECK(xt::allclose(f, f5, 1e-6, 1e-9));
  for (std::size_t n = 0; n < 5; ++n)
    for (std::size_t i = 0; i < 3; ++i) {
      double sum = 0;
      for (std::size_t g = 0; g < 4; ++g) sum += f(n, 9 + i * 4 + g);
      CHECK(f(n, 6 + i) == Approx(sum));       // rot = sum of the per-element terms
      CHECK(f(n, 3 + i) == Approx(f(n, 9 + i * 4)));  // rec = the identity's term
    }
  // msma by hand for image 0, level 1.
  Images x0 = xt::view(x, xt::range(0, 1), xt::all(), xt::all(), xt::all()), s;
  const std::vector<int> lv{1};
  net.infer(x0, lv, s);
  double acc = 0;
  for (std::size_t p = 0; p < s.size(); ++p) acc += double(sig[1] * s.data()[p]) * double(sig[1] * s.data()[p]);
  CHECK(f(0, 1) == Approx(std::sqrt(acc)).epsilon(1e-6));
  CHECK_THROWS_AS(score::FeatureSet::parse("msma,bogus"), ValueError);
  // The log modifier: the same vectors, entry by entry in log space, and it survives str()/parse().
  score::NormalityOptions ol = o;
  ol.features = score::FeatureSet::parse("msma,rec,rot,elem,log");
  const auto fl = score::normality(net, rot, sig, x, ol);
  REQUIRE(fl.shape() == f5.shape());
  for (std::size_t k = 0; k < fl.size(); ++k) CHECK(fl.data()[k] == Approx(std::log(f5.data()[k])).margin(1e-12));
  CHECK(score::FeatureSet::parse(ol.features.str()).log);
  CHECK(ol.features.str() == "msma,rec,rot,elem,log");
  CHECK_THROWS_AS(score::FeatureSet::parse("log"), ValueError);  // a modifier alone selects nothing
  Images wrong = xt::zeros<float>({std::size_t(2), std::size_t(1), std::size_t(10), std::size_t(10)});
  CHECK_THROWS_AS(score::normality(net, rot, sig, wrong, o), ShapeError);
}
