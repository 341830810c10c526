#include <catch2/catch.hpp>
#include <scoreood/augment/identity.hpp>
#include <scoreood/augment/rot4.hpp>
#include <scoreood/nn/nets/small_unet.hpp>
#include <scoreood/schedule.hpp>
#include <scoreood/score.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numbers>
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

/// np.rot90(img, k, axes=(H, W)) on one C x S x S image, from its definition: one quarter turn
/// counter-clockwise is out[c][i][j] = in[c][j][S - 1 - i]; k turns apply it k times.
template <class T>
std::vector<T> rot90_reference(const T* src, std::size_t C, std::size_t S, std::size_t k) {
  std::vector<T> a(src, src + C * S * S), b(a.size());
  for (std::size_t t = 0; t < k; ++t) {
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t i = 0; i < S; ++i)
        for (std::size_t j = 0; j < S; ++j) b[(c * S + i) * S + j] = a[(c * S + j) * S + (S - 1 - i)];
    std::swap(a, b);
  }
  return a;
}

Images uniform_images(std::size_t n, std::size_t c, std::size_t s, std::uint64_t seed) {
  Images x = xt::empty<float>({n, c, s, s});
  const CounterRng r(seed, 1);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = r.uniform(i);
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

TEST_CASE("DSM batches follow their definition for the sampled image, level, element and noise", "[dsm]") {
  // Every draw is recomputed from the documented streams of DsmStreams::for_step: image
  // n_b = images.uniform_int(b, N), level i_b = levels.uniform_int(b, L), element
  // r_b = elements.uniform_int(b, |G|), z_b,p = noise.normal(b P + p). Then sigma_b must be
  // sigmas[i_b] exactly and input_b = r_b(x_n + sigma_b z_b), rotated by rot90_reference.
  // Bound on the input: 1e-6 absolute (inputs are O(1); one float rounding of x + sigma z,
  // with or without a fused multiply-add, differs by < 3e-7).
  const std::size_t N = 7, C = 2, S = 6, P = C * S * S, B = 37;
  const Images data = uniform_images(N, C, S, 8);
  const auto sig = schedule::Geometric{1.0f, 0.01f, 5}.sigmas();
  const score::DsmStreams st = score::DsmStreams::for_step(21, 4);
  for (const bool rotations : {true, false}) {
    DYNAMIC_SECTION((rotations ? "rot4" : "identity")) {
      const std::size_t G = rotations ? 4 : 1;
      score::DsmBatch a;
      if (rotations) score::make_dsm_batch(data, sig, augment::Rot4{}, B, st, a);
      else score::make_dsm_batch(data, sig, augment::Identity{}, B, st, a);
      REQUIRE(shape_of(a.input) == Shape4{B, C, S, S});
      REQUIRE(shape_of(a.noise) == Shape4{B, C, S, S});
      REQUIRE(a.levels.size() == B);
      REQUIRE(a.elements.size() == B);
      REQUIRE(a.sigma.size() == B);
      std::set<std::size_t> images, levels, elements;
      for (std::size_t b = 0; b < B; ++b) {
        const std::size_t n = st.images.uniform_int(b, std::uint32_t(N));
        const std::size_t i = st.levels.uniform_int(b, std::uint32_t(sig.size()));
        const std::size_t k = st.elements.uniform_int(b, std::uint32_t(G));
        images.insert(n);
        levels.insert(i);
        elements.insert(k);
        INFO("sample " << b << ": image " << n << ", level " << i << ", element " << k);
        REQUIRE(a.levels[b] == int(i));
        REQUIRE(a.elements[b] == int(k));
        CHECK(a.sigma[b] == sig[std::size_t(a.levels[b])]);
        std::vector<float> noisy(P);
        bool same_noise = true;
        for (std::size_t p = 0; p < P; ++p) {
          const float z = st.noise.normal(b * P + p);
          same_noise = same_noise && a.noise.data()[b * P + p] == z;
          noisy[p] = float(double(data.data()[n * P + p]) + double(sig[i]) * double(z));
        }
        CHECK(same_noise);
        const std::vector<float> want = rot90_reference(noisy.data(), C, S, k);
        double err = 0;
        for (std::size_t p = 0; p < P; ++p) err = std::max(err, double(std::abs(a.input.data()[b * P + p] - want[p])));
        CHECK(err < 1e-6);
      }
      // The batch exercises what it should: several images, every level, every element.
      CHECK(images.size() == N);
      CHECK(levels.size() == sig.size());
      CHECK(elements.size() == G);
    }
  }
}

TEST_CASE("dsm_loss and its gradient equal Eq. 1 summed in double, in float and double", "[dsm]") {
  // The Eq. 1 form with the perturbation x~ - x = sigma z (not the simplified 0.5||sigma s + z||^2
  // of the code): loss = mean_b 0.5 sigma_b^2 sum_p (s + (x~ - x) / sigma_b^2)^2, and
  // dloss/ds = sigma_b^2 (s + z / sigma_b) / B. Float bound: 1e-6 relative on the loss (a sum
  // of positive terms); for the gradient 1e-6 of sigma (|sigma s| + |z|) / B per element, the
  // size of one float rounding of sigma s + z. Double: 1e-12 of the same scales.
  const std::size_t B = 5, C = 2, H = 3, W = 4, P = C * H * W;
  const std::vector<float> sigma{1.0f, 0.5f, 0.1f, 0.05f, 0.01f};
  auto run = [&](auto zero, double tol) {
    using T = decltype(zero);
    Tensor4<T> s = xt::empty<T>({B, C, H, W}), z = s, g;
    const CounterRng r(31, 2);
    for (std::size_t q = 0; q < s.size(); ++q) {
      s.data()[q] = T(3 * r.normal(q));  // scores of either sign, larger than z / sigma or not
      z.data()[q] = T(r.normal(q + 100000));
    }
    const double loss = score::dsm_loss(s, z, sigma, g);
    REQUIRE(shape_of(g) == shape_of(s));
    double want = 0;
    for (std::size_t b = 0; b < B; ++b) {
      const double sg = sigma[b];
      for (std::size_t p = 0; p < P; ++p) {
        const double sv = double(s.data()[b * P + p]), zv = double(z.data()[b * P + p]);
        const double t = sv + (sg * zv) / (sg * sg);
        want += 0.5 * sg * sg * t * t / double(B);
        const double gw = sg * sg * t / double(B);
        const double scale = sg * (std::abs(sg * sv) + std::abs(zv)) / double(B);
        INFO("sample " << b << ", element " << p);
        CHECK(std::abs(double(g.data()[b * P + p]) - gw) <= tol * scale);
      }
    }
    CHECK(loss == Approx(want).epsilon(tol));
  };
  run(0.0f, 1e-6);
  run(0.0, 1e-12);
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

TEST_CASE("learning-rate schedule: warm-up, cosine decay over the budget, exact resume", "[trainer][lr]") {
  namespace fs = std::filesystem;
  using score::LrDecay;
  score::TrainOptions o{.steps = 100, .lr = 1e-2, .warmup = 10, .decay = LrDecay::cosine, .lr_end = 1e-4};
  CHECK(score::scheduled_lr(o, 0, 0.0) == Approx(1e-3));  // warm-up: (step + 1) / warmup of the rate
  CHECK(score::scheduled_lr(o, 4, 0.05) == Approx(0.5 * (1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + std::cos(0.05 * std::numbers::pi)))));
  CHECK(score::scheduled_lr(o, 10, 0.0) == Approx(1e-2));
  CHECK(score::scheduled_lr(o, 50, 0.5) == Approx(1e-4 + (1e-2 - 1e-4) * 0.5));
  CHECK(score::scheduled_lr(o, 100, 1.0) == Approx(1e-4));
  CHECK(score::scheduled_lr(o, 100, 3.0) == Approx(1e-4));  // a share past the budget is the end
  o.decay = LrDecay::constant;
  CHECK(score::scheduled_lr(o, 60, 0.6) == 1e-2);

  const fs::path dir = fs::temp_directory_path() / "scoreood_test_lr_schedule";
  fs::create_directories(dir);
  const Images data = blobs(32, 8, 3);
  const auto sig = schedule::Geometric{1.0f, 0.25f, 4}.sigmas();
  const nn::SmallUNetConfig cfg{.channels = 1, .image_size = 8, .width = 4, .num_levels = 4};
  const score::TrainOptions cos{.steps = 40, .batch = 8, .lr = 1e-3, .warmup = 5, .decay = LrDecay::cosine,
                                .lr_end = 1e-5, .seed = 21, .log_every = 0};
  const auto weights = [](const nn::SmallUNet<>& n) {
    const auto v = n.parameters().values();
    return std::vector<float>(v.begin(), v.end());
  };
  // The whole budget: the share reaches 1 and the next rate is lr_end.
  nn::SmallUNet<> a(cfg, 1);
  std::ostringstream progress;
  score::TrainOptions shown = cos;
  shown.progress = &progress;
  score::Trainer ta(a, augment::Rot4{}, sig, shown);
  CHECK(ta.learning_rate() == Approx(2e-4));  // step 0 of a 5-step warm-up: 1/5 of the rate
  ta.run(data);
  CHECK(ta.progress() == 1.0);
  CHECK(ta.learning_rate() == Approx(1e-5));
  CHECK(progress.str().find("step 40/40") != std::string::npos);
  CHECK(progress.str().find("lr 1.00e-05") != std::string::npos);  // the rate the next step would take
  // Stopped at step 25 of the same budget, saved and resumed: the weights equal the whole run's.
  nn::SmallUNet<> b(cfg, 1);
  {
    score::Trainer tb(b, augment::Rot4{}, sig, cos);
    for (int i = 0; i < 25; ++i) tb.train_step(data);
    CHECK(tb.progress() == Approx(25.0 / 40));
    tb.save(dir / "cos.state");
  }
  score::Trainer tb2(b, augment::Rot4{}, sig, cos);
  tb2.load(dir / "cos.state");
  tb2.run(data);
  CHECK(weights(a) == weights(b));
  // The schedule is applied: a constant rate gives other weights; a cosine from lr to lr with no
  // warm-up is the constant rate, bit for bit.
  score::TrainOptions flat = cos;
  flat.decay = LrDecay::constant;
  flat.warmup = 0;
  nn::SmallUNet<> c(cfg, 1), e(cfg, 1);
  score::Trainer(c, augment::Rot4{}, sig, flat).run(data);
  CHECK(weights(c) != weights(a));
  score::TrainOptions same = flat;
  same.decay = LrDecay::cosine;
  same.lr_end = same.lr;
  score::Trainer(e, augment::Rot4{}, sig, same).run(data);
  CHECK(weights(e) == weights(c));

  // A minutes budget: the share follows the clock, ends at 1 and is kept in the state; a state
  // written before the share existed (it ends after the EMA flag) loads with a share of 0.
  score::TrainOptions timed = cos;
  timed.steps = 0;
  timed.minutes = 0.3 / 60;
  timed.checkpoint = dir / "timed.state";
  nn::SmallUNet<> f(cfg, 1);
  score::Trainer tf(f, augment::Rot4{}, sig, timed);
  tf.run(data);
  CHECK(tf.progress() == 1.0);
  score::Trainer tf2(f, augment::Rot4{}, sig, timed);
  tf2.load(dir / "timed.state");
  CHECK(tf2.progress() == 1.0);
  CHECK(tf2.learning_rate() == Approx(1e-5));
  // Writes `name`: timed.state's body changed by `edit`, in a valid container.
  const auto rewritten = [&](const char* name, auto edit) {
    auto body = io::load_container(dir / "timed.state", "scoreood-train-state");
    edit(body);
    io::ByteWriter w;
    w.bytes() = body;
    io::save_container(dir / name, "scoreood-train-state", w);
    return dir / name;
  };
  score::Trainer tf3(f, augment::Rot4{}, sig, timed);
  tf3.load(rewritten("old.state", [](std::vector<char>& b) { b.resize(b.size() - sizeof(double)); }));
  CHECK(tf3.progress() == 0.0);
  CHECK(tf3.step() == tf.step());
  // A share outside [0, 1] is refused, naming the file.
  const auto bad = rewritten("bad.state", [](std::vector<char>& b) {
    const double share = 1.5;
    std::memcpy(b.data() + b.size() - sizeof(double), &share, sizeof(double));
  });
  score::Trainer tf4(f, augment::Rot4{}, sig, timed);
  CHECK_THROWS_WITH(tf4.load(bad), Catch::Contains("bad.state") && Catch::Contains("not in [0, 1]"));
  CHECK(tf4.progress() == 0.0);
  CHECK_THROWS_AS(score::Trainer(f, augment::Rot4{}, sig, score::TrainOptions{.steps = 1, .lr = 1e-3, .lr_end = 1e-2}),
                  ValueError);
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
  for (std::size_t k = 0; k < fl.size(); ++k) CHECK(fl.data()[k] == Approx(std::log(f5.data()[k])).margin(1e-12).epsilon(0));
  CHECK(score::FeatureSet::parse(ol.features.str()).log);
  CHECK(ol.features.str() == "msma,rec,rot,elem,log");
  CHECK_THROWS_AS(score::FeatureSet::parse("log"), ValueError);  // a modifier alone selects nothing
  Images wrong = xt::zeros<float>({std::size_t(2), std::size_t(1), std::size_t(10), std::size_t(10)});
  CHECK_THROWS_AS(score::normality(net, rot, sig, wrong, o), ShapeError);
}

namespace {
/// Normality terms from the definitions in normality.hpp, image by image, in double:
///   msma[n][i]     = || sigma_i s(x_n, i) ||
///   elem[n][i][g]  = mean over draws d of || s(r_g(x~), i) + z / sigma_i ||,  x~ = x_n + sigma_i z,
/// z_p = CounterRng(seed, 0x4E0).substream(d * L + i).normal(n * P + p) (the documented streams),
/// r_g = g quarter turns (rot90_reference), or the identity when `rotations` is false.
struct NormalityReference {
  std::vector<double> msma, elem;  // [n * L + i], [(n * L + i) * G + g]
};
template <class Net>
NormalityReference normality_reference(const Net& net, bool rotations, std::span<const float> sigmas, const Images& x,
                                       std::size_t draws, std::uint64_t seed) {
  const std::size_t N = x.shape()[0], C = x.shape()[1], S = x.shape()[2], P = C * S * S, L = sigmas.size();
  const std::size_t G = rotations ? 4 : 1;
  NormalityReference ref{std::vector<double>(N * L), std::vector<double>(N * L * G, 0.0)};
  Images in = xt::empty<float>({std::size_t(1), C, S, S}), s;
  for (std::size_t n = 0; n < N; ++n) {
    const float* xn = x.data() + n * P;
    for (std::size_t i = 0; i < L; ++i) {
      const double sigma = sigmas[i];
      const std::vector<int> level{int(i)};
      std::copy(xn, xn + P, in.data());
      net.infer(in, level, s);
      double acc = 0;
      for (std::size_t p = 0; p < P; ++p) acc += (sigma * s.data()[p]) * (sigma * s.data()[p]);
      ref.msma[n * L + i] = std::sqrt(acc);
      for (std::size_t d = 0; d < draws; ++d) {
        const CounterRng rng = CounterRng(seed, 0x4E0).substream(d * L + i);
        std::vector<double> z(P);
        std::vector<float> noisy(P);
        for (std::size_t p = 0; p < P; ++p) {
          z[p] = rng.normal(n * P + p);
          noisy[p] = float(double(xn[p]) + sigma * z[p]);
        }
        for (std::size_t g = 0; g < G; ++g) {
          const std::vector<float> r = rot90_reference(noisy.data(), C, S, g);
          std::copy(r.begin(), r.end(), in.data());
          net.infer(in, level, s);
          double a = 0;
          for (std::size_t p = 0; p < P; ++p) {
            const double t = double(s.data()[p]) + z[p] / sigma;  // s + (x~ - x) / sigma^2
            a += t * t;
          }
          ref.elem[(n * L + i) * G + g] += std::sqrt(a) / double(draws);
        }
      }
    }
  }
  return ref;
}
}  // namespace

TEST_CASE("normality vectors equal their definitions computed image by image", "[normality]") {
  // An untrained 2-channel SmallUNet; 7 images at batch sizes that do not divide 7; 3 levels,
  // 2 draws. The reference calls the network itself on x + sigma z with z from the documented
  // streams, rotates with its own index formula and takes the norms in double. Bound: 1e-5
  // relative. Both sides feed the network the same float inputs up to one rounding of
  // x + sigma z, so the features agree to ~1e-7 (measured 1.5e-8); a flipped sign of z / sigma,
  // sigma for sigma^2 or a rotated z changes them by 1e-3 to 1.
  const nn::SmallUNetConfig cfg{.channels = 2, .image_size = 8, .width = 4, .num_levels = 3};
  nn::SmallUNet<> net(cfg, 21);
  const auto sig = schedule::Geometric{1.0f, 0.1f, 3}.sigmas();
  const std::size_t N = 7, L = 3;
  const Images x = uniform_images(N, 2, 8, 5);
  score::NormalityOptions o;
  o.draws = 2;
  o.seed = 0xABCDEF;
  for (const bool rotations : {true, false}) {
    const std::size_t G = rotations ? 4 : 1;
    const NormalityReference ref = normality_reference(net, rotations, sig, x, o.draws, o.seed);
    for (const std::size_t batch : {std::size_t(3), std::size_t(4)}) {
      for (const char* features : {"msma,rec,rot,elem", "rec", "rot"}) {
        DYNAMIC_SECTION((rotations ? "rot4" : "identity") << ", batch " << batch << ", " << features) {
          o.batch = batch;
          o.features = score::FeatureSet::parse(features);
          const auto f = rotations ? score::normality(net, augment::Rot4{}, sig, x, o)
                                   : score::normality(net, augment::Identity{}, sig, x, o);
          REQUIRE(f.shape()[0] == N);
          REQUIRE(f.shape()[1] == o.features.dims(L, G));
          double worst = 0;
          for (std::size_t n = 0; n < N; ++n) {
            std::size_t col = 0;
            auto expect = [&](double want, const char* what, std::size_t i, std::size_t g) {
              INFO("image " << n << ", " << what << ", level " << i << ", element " << g);
              CHECK(f(n, col) == Approx(want).epsilon(1e-5));
              worst = std::max(worst, std::abs(f(n, col) - want) / want);
              ++col;
            };
            const score::FeatureSet& fs = o.features;
            if (fs.msma)
              for (std::size_t i = 0; i < L; ++i) expect(ref.msma[n * L + i], "msma", i, 0);
            if (fs.rec)
              for (std::size_t i = 0; i < L; ++i) expect(ref.elem[(n * L + i) * G], "rec", i, 0);
            if (fs.rot)
              for (std::size_t i = 0; i < L; ++i) {
                double sum = 0;
                for (std::size_t g = 0; g < G; ++g) sum += ref.elem[(n * L + i) * G + g];
                expect(sum, "rot", i, 0);
              }
            if (fs.per_element)
              for (std::size_t i = 0; i < L; ++i)
                for (std::size_t g = 0; g < G; ++g) expect(ref.elem[(n * L + i) * G + g], "elem", i, g);
          }
          INFO("worst relative difference " << worst);
          CHECK(worst < 1e-5);
        }
      }
    }
  }
}
