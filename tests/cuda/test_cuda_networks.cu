// The layers, blocks and networks written once over the seam, on backend::cuda
// against backend::cpu with the same weights: every layer's and block's forward,
// input gradient and parameter gradients, SmallUNet and NcsnRefineNet end to
// end, one whole training step, a 100-step loss curve (within 1 %), the
// normality vectors and anomaly maps of 100 images (within 1e-4),
// checkpoints that move between the backends, and a detector saved on the CPU
// that scores the same on CUDA. [slow]: left out under the sanitizers.
#include "cuda_test_util.cuh"

#include <scoreood/augment.hpp>
#include <scoreood/density.hpp>
#include <scoreood/detector.hpp>
#include <scoreood/nn.hpp>
#include <scoreood/schedule.hpp>
#include <scoreood/score.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <string>

using namespace sot;
namespace so = scoreood;
namespace nn = scoreood::nn;
namespace be = scoreood::backend;
using Cpu = be::cpu;
using Cuda = be::cuda;

static_assert(so::concepts::ScoreNetwork<nn::SmallUNet<Cuda>>);
static_assert(so::concepts::ScoreNetwork<nn::NcsnRefineNet<Cuda>>);

namespace {

template <class B>
using Store = nn::ParameterStore<float, B>;

std::vector<float> grads_of(gpu::Context& ctx, const Store<Cuda>& s) {
  std::vector<float> h(s.count());
  ctx.download(s.grad_data(), std::span<float>(h));
  return h;
}
std::vector<float> grads_of(const Store<Cpu>& s) { return {s.grads().begin(), s.grads().end()}; }

/// A layer or block built on both backends from the same arguments: the same initial weights.
template <template <class, class> class L>
struct Twin {
  Store<Cpu> cs;
  Store<Cuda> gs;
  std::optional<L<float, Cpu>> c;
  std::optional<L<float, Cuda>> g;
  template <class... A>
  explicit Twin(const A&... a) {
    c.emplace(cs, a...);
    g.emplace(gs, a...);
    cs.finalize();
    gs.finalize();
    REQUIRE(gs.to_host() == cs.to_host());
  }
  void check_grads(gpu::Context& ctx) { CHECK(rel(grads_of(ctx, gs), grads_of(cs)) < kTol); }
};

/// Conv2d's Spec for either backend (each layer type has its own nested Spec).
struct ConvSpec {
  std::size_t in = 0, out = 0, kernel = 3, stride = 1;
  std::ptrdiff_t padding = -1;
  std::size_t dilation = 1;
  bool bias = true;
  template <class S>
  operator S() const {
    return S{.in = in, .out = out, .kernel = kernel, .stride = stride, .padding = padding, .dilation = dilation,
             .bias = bias};
  }
};
/// NcsnResBlock's Spec for either backend.
struct ResSpec {
  std::size_t in = 0, out = 0;
  nn::Resample resample = nn::Resample::none;
  std::size_t dilation = 0, num_levels = 1;
  template <class S>
  operator S() const {
    return S{.in = in, .out = out, .resample = resample, .dilation = dilation, .num_levels = num_levels};
  }
};

/// The CPU's (empty) context.
so::backend::context_t<Cpu>& cpu_ctx() { return so::cpu_context(); }

std::vector<int> levels_for(std::size_t n, std::size_t L) {
  std::vector<int> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = int((3 * i + 1) % L);
  return v;
}

/// Images in [0, 1] with structure (blobs and strokes), from a counter stream.
Images blob_images(std::size_t n, std::size_t C, std::size_t S, std::uint64_t seed) {
  Images x = xt::zeros<float>({n, C, S, S});
  const so::CounterRng rng(seed, 99);
  for (std::size_t k = 0; k < n; ++k) {
    const double cy = S * rng.uniform(4 * k), cx = S * rng.uniform(4 * k + 1), r = 2 + S / 4.0 * rng.uniform(4 * k + 2);
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t i = 0; i < S; ++i)
        for (std::size_t j = 0; j < S; ++j) {
          const double d = std::hypot(double(i) - cy, double(j) - cx);
          x(k, c, i, j) = float(std::clamp(1.2 - d / r, 0.0, 1.0) * (0.6 + 0.4 * rng.uniform(4 * k + 3)));
        }
  }
  return x;
}

}  // namespace

// ------------------------------------------------------------ layers

TEST_CASE("layers on CUDA match the CPU layers: forward, input and parameter gradients", "[cuda][networks][layers]") {
  gpu::Context ctx;
  const std::size_t N = 4, L = 5;
  const auto lv = levels_for(N, L);
  SECTION("Conv2d") {
    struct Case {
      ConvSpec spec;
      std::size_t H;
    };
    for (const Case& c : {Case{{.in = 1, .out = 8, .kernel = 3}, 28}, Case{{.in = 8, .out = 16, .kernel = 3, .stride = 2}, 14},
                          Case{{.in = 16, .out = 16, .kernel = 3, .dilation = 2, .bias = false}, 14},
                          Case{{.in = 16, .out = 16, .kernel = 3, .dilation = 4, .bias = false}, 7},
                          Case{{.in = 8, .out = 1, .kernel = 3}, 9}}) {
      CAPTURE(c.spec.in, c.spec.out, c.spec.stride, c.spec.dilation, c.H);
      Twin<nn::Conv2d> t("conv", c.spec, so::CounterRng(5));
      const Images x = random_images({N, c.spec.in, c.H, c.H}, 1);
      const Shape4 ys = t.c->output_shape(so::shape_of(x));
      const Images r = random_images(ys, 2), dy = random_images(ys, 3);
      Images y, dx;
      t.c->forward(cpu_ctx(), x, y, &r);
      t.c->backward(cpu_ctx(), dy, dx);
      const DTensor gx = upload(ctx, x), gr = upload(ctx, r), gdy = upload(ctx, dy);
      DTensor gy, gdx;
      t.g->forward(ctx, gx, gy, &gr);
      t.g->backward(ctx, gdy, gdx);
      CHECK(rel(values(ctx, gy), values(y)) < kTol);
      CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
      t.check_grads(ctx);
    }
  }
  SECTION("CondInstanceNormPlusPlus with the fused ELU and a residual gradient") {
    for (const bool bias : {true, false}) {
      Twin<nn::CondInstanceNormPlusPlus> t("norm", std::size_t(16), L, so::CounterRng(7), bias);
      nn::Elu<float, Cpu> ec;
      nn::Elu<float, Cuda> eg;
      const Images x = random_images({N, 16, 7, 7}, 4, 2.0f, 1.0f), dy = random_images({N, 16, 7, 7}, 5),
                   res = random_images({N, 16, 7, 7}, 6);
      Images y, dx;
      t.c->forward_elu(cpu_ctx(), x, lv, y, ec, true);
      t.c->backward_elu(cpu_ctx(), dy, dx, ec, &res);
      const DTensor gx = upload(ctx, x), gdy = upload(ctx, dy), gres = upload(ctx, res);
      DTensor gy, gdx;
      t.g->forward_elu(ctx, gx, lv, gy, eg, true);
      t.g->backward_elu(ctx, gdy, gdx, eg, &gres);
      CHECK(rel(values(ctx, gy), values(y)) < kTol);
      CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
      t.check_grads(ctx);
    }
  }
  SECTION("InstanceNormPlusPlus") {
    Twin<nn::InstanceNormPlusPlus> t("norm", std::size_t(6), so::CounterRng(8), true);
    const Images x = random_images({N, 6, 9, 11}, 7), dy = random_images({N, 6, 9, 11}, 8);
    Images y, dx;
    t.c->forward(cpu_ctx(), x, {}, y);
    t.c->backward(cpu_ctx(), dy, dx);
    const DTensor gx = upload(ctx, x), gdy = upload(ctx, dy);
    DTensor gy, gdx;
    t.g->forward(ctx, gx, {}, gy);
    t.g->backward(ctx, gdy, gdx);
    CHECK(rel(values(ctx, gy), values(y)) < kTol);
    CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
    t.check_grads(ctx);
  }
  SECTION("Elu, AvgPool2d, MeanPool2x2, UpsampleNearest, UpsampleBilinear") {
    const Images x = random_images({N, 3, 7, 7}, 9, 2.0f);
    const DTensor gx = upload(ctx, x);
    auto both = [&](auto& cpu_layer, auto& gpu_layer, const Shape4& ys, auto&& fwd_cpu, auto&& fwd_gpu) {
      const Images dy = random_images(ys, 10);
      const DTensor gdy = upload(ctx, dy);
      Images y, dx;
      DTensor gy, gdx;
      fwd_cpu(y);
      fwd_gpu(gy);
      cpu_layer.backward(cpu_ctx(), dy, dx);
      gpu_layer.backward(ctx, gdy, gdx);
      CHECK(rel(values(ctx, gy), values(y)) < kTol);
      CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
    };
    {
      nn::Elu<float, Cpu> c;
      nn::Elu<float, Cuda> g;
      both(c, g, {N, 3, 7, 7}, [&](Images& y) { c.forward(cpu_ctx(), x, y); }, [&](DTensor& y) { g.forward(ctx, gx, y); });
    }
    {
      nn::AvgPool2d<float, Cpu> c(5, 1, 2);
      nn::AvgPool2d<float, Cuda> g(5, 1, 2);
      both(c, g, {N, 3, 7, 7}, [&](Images& y) { c.forward(cpu_ctx(), x, y); }, [&](DTensor& y) { g.forward(ctx, gx, y); });
    }
    {
      nn::MeanPool2x2<float, Cpu> c;
      nn::MeanPool2x2<float, Cuda> g;
      both(c, g, {N, 3, 3, 3}, [&](Images& y) { c.forward(cpu_ctx(), x, y); }, [&](DTensor& y) { g.forward(ctx, gx, y); });
    }
    {
      const Images r = random_images({N, 3, 14, 14}, 11);
      const DTensor gr = upload(ctx, r);
      nn::UpsampleNearest<float, Cpu> c(14, 14);
      nn::UpsampleNearest<float, Cuda> g(14, 14);
      both(c, g, {N, 3, 14, 14}, [&](Images& y) { c.forward(cpu_ctx(), x, y, &r); },
           [&](DTensor& y) { g.forward(ctx, gx, y, &gr); });
    }
    {
      nn::UpsampleBilinear<float, Cpu> c(12, 10, true);
      nn::UpsampleBilinear<float, Cuda> g(12, 10, true);
      both(c, g, {N, 3, 12, 10}, [&](Images& y) { c.forward(cpu_ctx(), x, y); }, [&](DTensor& y) { g.forward(ctx, gx, y); });
    }
  }
}

// ------------------------------------------------------------ blocks

TEST_CASE("blocks on CUDA match the CPU blocks", "[cuda][networks][blocks]") {
  gpu::Context ctx;
  const std::size_t N = 3, L = 4;
  const auto lv = levels_for(N, L);
  // One-input blocks: forward, infer (== forward), backward, parameter gradients.
  auto single = [&](auto& t, const Shape4& xs) {
    const Images x = random_images(xs, 21);
    Images y, yi, dx;
    t.c->forward(cpu_ctx(), x, lv, y);
    const Images dy = random_images(so::shape_of(y), 22);
    t.c->backward(cpu_ctx(), dy, dx);
    const DTensor gx = upload(ctx, x), gdy = upload(ctx, dy);
    DTensor gy, gyi, gdx;
    t.g->forward(ctx, gx, lv, gy);
    t.g->backward(ctx, gdy, gdx);
    typename std::remove_reference_t<decltype(*t.g)>::Workspace ws;
    t.g->infer(ctx, ws, gx, lv, gyi);
    CHECK(rel(values(ctx, gy), values(y)) < kTol);
    CHECK(values(ctx, gyi) == values(ctx, gy));
    CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
    t.check_grads(ctx);
  };
  SECTION("CondResBlock (SmallUNet)") {
    {
      Twin<nn::CondResBlock> t("rb", std::size_t(8), std::size_t(8), std::size_t(1), L, so::CounterRng(1));
      single(t, {N, 8, 14, 14});
    }
    {
      Twin<nn::CondResBlock> t("rb", std::size_t(8), std::size_t(16), std::size_t(2), L, so::CounterRng(2));
      single(t, {N, 8, 14, 14});  // stride 2 with the 1x1 skip, 14 -> 7
    }
  }
  SECTION("NcsnResBlock: plain, down (mean pool), down with dilation 2, dilation 4") {
    for (const ResSpec& s : {ResSpec{8, 8, nn::Resample::none, 0, L}, ResSpec{8, 16, nn::Resample::down, 0, L},
                             ResSpec{16, 16, nn::Resample::down, 2, L}, ResSpec{16, 16, nn::Resample::none, 4, L}}) {
      CAPTURE(s.in, s.out, int(s.resample), s.dilation);
      Twin<nn::NcsnResBlock> t("res", s, so::CounterRng(3));
      single(t, {N, s.in, 14, 14});
    }
  }
  SECTION("CondRCUBlock and CondCRPBlock") {
    {
      Twin<nn::CondRCUBlock> t("rcu", std::size_t(8), std::size_t(2), std::size_t(2), L, so::CounterRng(4));
      single(t, {N, 8, 7, 7});
    }
    {
      Twin<nn::CondCRPBlock> t("crp", std::size_t(8), std::size_t(2), L, so::CounterRng(5));
      single(t, {N, 8, 7, 7});
    }
  }
  SECTION("CondMSFBlock and CondRefineBlock: two resolutions fused") {
    const Images a = random_images({N, 8, 14, 14}, 31), b = random_images({N, 16, 7, 7}, 32);
    const DTensor ga = upload(ctx, a), gb = upload(ctx, b);
    const std::vector<std::size_t> planes{8, 16};
    auto run = [&](auto& t) {
      Images y, da, db;
      const Images* xs[] = {&a, &b};
      t.c->forward(cpu_ctx(), xs, lv, 14, 14, y);
      const Images dy = random_images(so::shape_of(y), 33);
      Images* dxs[] = {&da, &db};
      t.c->backward(cpu_ctx(), dy, dxs);
      const DTensor gdy = upload(ctx, dy);
      DTensor gy, gda, gdb;
      const DTensor* gxs[] = {&ga, &gb};
      DTensor* gdxs[] = {&gda, &gdb};
      t.g->forward(ctx, gxs, lv, 14, 14, gy);
      t.g->backward(ctx, gdy, gdxs);
      CHECK(rel(values(ctx, gy), values(y)) < kTol);
      CHECK(rel(values(ctx, gda), values(da)) < kTol);
      CHECK(rel(values(ctx, gdb), values(db)) < kTol);
      t.check_grads(ctx);
    };
    {
      Twin<nn::CondMSFBlock> t("msf", planes, std::size_t(8), L, so::CounterRng(6));
      run(t);
    }
    {
      Twin<nn::CondRefineBlock> t("refine", planes, std::size_t(8), L, false, true, so::CounterRng(7));
      run(t);
    }
  }
}

// ------------------------------------------------------------ networks

namespace {

/// forward, infer and backward of one network on both backends with the same weights.
template <class CpuNet, class GpuNet>
void check_network(const typename CpuNet::Config& cfg, std::size_t N) {
  CpuNet cpu_net(cfg, 11);
  GpuNet gpu_net(cfg, 11);
  REQUIRE(gpu_net.parameters().to_host() == cpu_net.parameters().to_host());
  auto& ctx = gpu_net.context();
  const Images x = blob_images(N, cfg.channels, cfg.image_size, 5);
  const auto lv = levels_for(N, cfg.num_levels);
  const Images& s = cpu_net.forward(x, lv);
  const Images d = random_images(so::shape_of(s), 41);
  cpu_net.backward(d);
  const DTensor gx = upload(ctx, x), gd = upload(ctx, d);
  const DTensor& gs = gpu_net.forward(gx, lv);
  gpu_net.backward(gd);
  CHECK(rel(values(ctx, gs), values(s)) < kTol);
  CHECK(rel(grads_of(ctx, gpu_net.parameters()), grads_of(cpu_net.parameters())) < kTol);
  // Inference in a caller's workspace (its own context: the input is uploaded there).
  typename GpuNet::Workspace ws;
  DTensor wx, out;
  Ops::to_backend(ws.ctx, x, wx);
  gpu_net.infer(ws, wx, lv, out);
  CHECK(rel(values(ws.ctx, out), values(s)) < kTol);
}

}  // namespace

TEST_CASE("SmallUNet on CUDA equals SmallUNet on the CPU with the same weights", "[cuda][networks][small_unet]") {
  using C = nn::SmallUNet<Cpu>;
  using G = nn::SmallUNet<Cuda>;
  check_network<C, G>({.channels = 1, .image_size = 28, .width = 16, .num_levels = 10}, 6);
  check_network<C, G>({.channels = 3, .image_size = 16, .width = 8, .num_levels = 4}, 3);
}

TEST_CASE("NcsnRefineNet on CUDA equals NcsnRefineNet on the CPU with the same weights", "[cuda][networks][ncsn]") {
  check_network<nn::NcsnRefineNet<Cpu>, nn::NcsnRefineNet<Cuda>>({.channels = 1, .image_size = 28, .ngf = 8, .num_levels = 10}, 3);
}

TEST_CASE("checkpoints move between the backends", "[cuda][networks][checkpoint]") {
  const nn::SmallUNetConfig cfg{.channels = 1, .image_size = 16, .width = 8, .num_levels = 4};
  nn::SmallUNet<Cuda> a(cfg, 1);
  nn::SmallUNet<Cpu> b(cfg, 2);
  so::io::ByteWriter w;
  a.save(w);
  so::io::ByteReader r(w.bytes(), "memory");
  b.load(r);
  CHECK(b.parameters().to_host() == a.parameters().to_host());
  nn::SmallUNet<Cuda> c(cfg, 3);
  so::io::ByteWriter w2;
  b.save(w2);
  so::io::ByteReader r2(w2.bytes(), "memory");
  c.load(r2);
  CHECK(c.parameters().to_host() == a.parameters().to_host());
}

// ------------------------------------------------------------ training and features

namespace {

const nn::SmallUNetConfig kTrainCfg{.channels = 1, .image_size = 28, .width = 16, .num_levels = 10};

so::score::TrainOptions train_options() {
  so::score::TrainOptions o;
  o.batch = 32;
  o.lr = 1e-3;
  o.seed = 7;
  o.steps = 100;
  return o;
}

}  // namespace

TEST_CASE("one training step (Rot4 DSM batch, loss, gradients, Adam) matches the CPU", "[cuda][networks][train]") {
  const auto sigmas = so::schedule::Geometric{1.0f, 0.01f, 10}.sigmas();
  const Images data = blob_images(64, 1, 28, 3);
  nn::SmallUNet<Cpu> cpu_net(kTrainCfg, 4);
  nn::SmallUNet<Cuda> gpu_net(kTrainCfg, 4);
  so::score::Trainer<nn::SmallUNet<Cpu>, so::augment::Rot4> cpu_tr(cpu_net, {}, sigmas, train_options());
  so::score::Trainer<nn::SmallUNet<Cuda>, so::augment::Rot4> gpu_tr(gpu_net, {}, sigmas, train_options());
  const double lc = cpu_tr.train_step(data), lg = gpu_tr.train_step(data);
  CHECK(std::abs(lg - lc) <= 1e-5 * std::abs(lc));
  // The gradients of the step are still in the stores (the next step zeroes them).
  CHECK(rel(grads_of(gpu_net.context(), gpu_net.parameters()), grads_of(cpu_net.parameters())) < kTol);
  CHECK(rel(gpu_net.parameters().to_host(), cpu_net.parameters().to_host()) < kTol);
  CHECK(gpu_tr.step() == 1);
}

TEST_CASE("a 100-step loss curve on CUDA stays within 1 % of the CPU's", "[cuda][networks][train][slow]") {
  const auto sigmas = so::schedule::Geometric{1.0f, 0.01f, 10}.sigmas();
  const Images data = blob_images(256, 1, 28, 3);
  nn::SmallUNet<Cpu> cpu_net(kTrainCfg, 4);
  nn::SmallUNet<Cuda> gpu_net(kTrainCfg, 4);
  so::score::Trainer<nn::SmallUNet<Cpu>, so::augment::Rot4> cpu_tr(cpu_net, {}, sigmas, train_options());
  so::score::Trainer<nn::SmallUNet<Cuda>, so::augment::Rot4> gpu_tr(gpu_net, {}, sigmas, train_options());
  double worst = 0, first = 0, last = 0;
  for (int step = 0; step < 100; ++step) {
    const double lc = cpu_tr.train_step(data), lg = gpu_tr.train_step(data);
    REQUIRE(std::isfinite(lg));
    worst = std::max(worst, std::abs(lg - lc) / std::abs(lc));
    if (step == 0) first = lc;
    last = lc;
  }
  INFO("loss " << first << " -> " << last << ", worst relative difference " << worst);
  CHECK(last < first);  // it trains
  CHECK(worst < 0.01);
}

TEST_CASE("normality vectors and anomaly maps of 100 images on CUDA equal the CPU's", "[cuda][networks][features][slow]") {
  const auto sigmas = so::schedule::Geometric{1.0f, 0.01f, 10}.sigmas();
  // The same weights on both: a CPU network trained a little, loaded into the CUDA one.
  nn::SmallUNet<Cpu> cpu_net(kTrainCfg, 9);
  {
    auto o = train_options();
    o.steps = 5;
    so::score::Trainer<nn::SmallUNet<Cpu>, so::augment::Rot4> tr(cpu_net, {}, sigmas, o);
    tr.run(blob_images(64, 1, 28, 4));
  }
  nn::SmallUNet<Cuda> gpu_net(kTrainCfg, 0);
  so::io::ByteWriter w;
  cpu_net.save(w);
  so::io::ByteReader r(w.bytes(), "memory");
  gpu_net.load(r);
  const Images images = blob_images(100, 1, 28, 8);
  so::score::NormalityOptions opt;
  opt.features = so::score::FeatureSet::parse("msma,rec,rot,elem");
  opt.batch = 32;  // 3 full batches and one of 4
  for (const bool dihedral : {false, true}) {
    CAPTURE(dihedral);
    const auto mc = dihedral ? so::score::normality(cpu_net, so::augment::Dihedral8{}, sigmas, images, opt)
                             : so::score::normality(cpu_net, so::augment::Rot4{}, sigmas, images, opt);
    const auto mg = dihedral ? so::score::normality(gpu_net, so::augment::Dihedral8{}, sigmas, images, opt)
                             : so::score::normality(gpu_net, so::augment::Rot4{}, sigmas, images, opt);
    REQUIRE(mg.shape() == mc.shape());
    double worst = 0;
    for (std::size_t i = 0; i < mc.size(); ++i)
      worst = std::max(worst, std::abs(mg.data()[i] - mc.data()[i]) / std::abs(mc.data()[i]));
    INFO("worst relative difference of " << mc.size() << " entries: " << worst);
    CHECK(worst < 1e-4);
  }
  const Images ac = so::score::anomaly_maps(cpu_net, so::augment::Rot4{}, sigmas, images, opt);
  const Images ag = so::score::anomaly_maps(gpu_net, so::augment::Rot4{}, sigmas, images, opt);
  CHECK(rel(values(ag), values(ac)) < 1e-4);
}


TEST_CASE("a detector trained on the CPU scores the same on CUDA", "[cuda][networks][detector][slow]") {
  using CpuDetector = so::ScoreOOD<nn::SmallUNet<Cpu>, so::augment::Rot4, so::density::Gmm>;
  using GpuDetector = so::ScoreOOD<nn::SmallUNet<Cuda>, so::augment::Rot4, so::density::Gmm>;
  CpuDetector::Options o;
  o.net = {.channels = 1, .image_size = 28, .width = 16};
  o.batch = 32;
  CpuDetector cpu_det(so::schedule::Geometric{1.0f, 0.01f, 10}, o);
  const Images train = blob_images(200, 1, 28, 12);
  so::score::TrainOptions t;
  t.steps = 10;
  t.batch = 32;
  cpu_det.train(train, t);
  cpu_det.fit_density(train, 120);
  const auto path = std::filesystem::temp_directory_path() / "scoreood_test_cuda_detector.sood";
  cpu_det.save(path);
  const GpuDetector gpu_det = GpuDetector::from_file(path);
  std::filesystem::remove(path);
  const Images test = blob_images(40, 1, 28, 13);
  const std::vector<double> sc = cpu_det.score(test), sg = gpu_det.score(test);
  REQUIRE(sg.size() == sc.size());
  double worst = 0;
  for (std::size_t i = 0; i < sc.size(); ++i) worst = std::max(worst, std::abs(sg[i] - sc[i]) / std::max(1.0, std::abs(sc[i])));
  INFO("worst relative score difference " << worst);
  CHECK(worst < 1e-3);
}
