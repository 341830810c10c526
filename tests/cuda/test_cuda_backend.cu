// ops<backend::cuda> against the CPU code it must reproduce, on the same random
// inputs: the CPU layers of nn/ (forward, input and parameter gradients), the
// optimisers, score::dsm_loss, score::make_dsm_batch and the feature loops of
// score/normality.hpp. Shapes are those SmallUNet and NcsnRefineNet use
// (strides, dilations 2 and 4, 5x5 pools, 1-channel layers, odd sizes).
// Float tolerance: ||gpu - cpu|| / ||cpu|| < 1e-4.
#include "cuda_test_util.cuh"

#include <scoreood/augment.hpp>
#include <scoreood/concepts.hpp>
#include <scoreood/nn/layers.hpp>
#include <scoreood/nn/optim.hpp>
#include <scoreood/nn/parameter.hpp>
#include <scoreood/score/dsm.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

using namespace sot;
namespace so = scoreood;
namespace nn = scoreood::nn;
namespace be = scoreood::backend;

static_assert(so::concepts::BackendOps<be::cuda>, "ops<cuda> lists every operation of concepts::BackendOps");
static_assert(std::is_same_v<be::tensor_t<be::cuda, float>, gpu::DeviceTensor4<float>>);
static_assert(std::is_same_v<be::storage_t<be::cuda, float>, gpu::DeviceBuffer<float>>);
static_assert(std::is_same_v<be::context_t<be::cuda>, gpu::Context>);
static_assert(gpu::has_device_action<so::augment::Rot4> && !gpu::has_device_action<so::augment::PatchPermutations>);

namespace {

/// The parameter `name` of a store (offset and size), by its registered name.
const nn::ParameterStore<float>::Entry& entry(const nn::ParameterStore<float>& store, const std::string& name) {
  for (const auto& e : store.entries())
    if (e.name == name) return e;
  FAIL("no parameter " << name);
  throw 0;
}

/// A store's values and (random, so that accumulation shows) gradients, and their device copies.
struct DeviceStore {
  gpu::DeviceBuffer<float> values, grads;
  DeviceStore(gpu::Context& ctx, nn::ParameterStore<float>& store, std::uint64_t seed) {
    const auto g0 = randn(store.count(), seed, 0.1f);
    std::copy(g0.begin(), g0.end(), store.grads().begin());
    values = upload(ctx, std::span<const float>(store.values()));
    grads = upload(ctx, std::span<const float>(store.grads()));
  }
  float* value(std::size_t off) { return values.data() + off; }
  float* grad(std::size_t off) { return grads.data() + off; }
};

std::vector<float> span_values(std::span<const float> s) { return {s.begin(), s.end()}; }

}  // namespace

// ------------------------------------------------------------ host-side checks

TEST_CASE("device D4 elements are augment's: Rot4 and Dihedral8 move the same pixels", "[host][group]") {
  const std::size_t C = 2, H = 5, W = 5;
  std::vector<float> img(C * H * W), want(img.size());
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = float(i);
  const so::augment::Dihedral8 d8;
  for (std::size_t e = 0; e < 8; ++e) {
    CAPTURE(e);
    d8.apply_image(img.data(), want.data(), C, H, W, e);
    CHECK(gpu::device_group<so::augment::Dihedral8>::code(e) == int(e));
    std::size_t mismatches = 0;
    for (std::size_t c = 0; c < C; ++c)
      for (int i = 0; i < int(H); ++i)
        for (int j = 0; j < int(W); ++j) {
          int si, sj;
          gpu::d4_source(int(e), int(H), int(W), i, j, si, sj);
          mismatches += want[(c * H + i) * W + j] != img[(c * H + si) * W + sj];
        }
    CHECK(mismatches == 0);
    CHECK(gpu::dihedral_inverse(int(e)) == int(d8.inverse(e)));
  }
  for (std::size_t k = 0; k < 4; ++k) CHECK(gpu::device_group<so::augment::Rot4>::code(k) == int(k));
  CHECK(gpu::device_group<so::augment::Identity>::code(0) == 0);
}

// ------------------------------------------------------------ tensors

TEST_CASE("device tensors: grow-only resize, copies, adds, affine, upload and download", "[cuda][backend][tensor]") {
  gpu::Context ctx;
  DTensor t({2, 3, 4, 5});
  CHECK(t.size() == 120);
  CHECK(t.capacity() == 120);
  const float* p = t.data();
  t.resize({1, 3, 4, 5});  // smaller: same buffer
  CHECK(t.data() == p);
  CHECK(t.size() == 60);
  CHECK(gpu::shape_of(t) == Shape4{1, 3, 4, 5});
  t.resize({2, 3, 4, 5});  // back within capacity: same buffer
  CHECK(t.data() == p);
  t.resize({3, 3, 4, 5});  // larger: reallocated
  CHECK(t.capacity() == 180);
  DTensor moved = std::move(t);
  CHECK(moved.size() == 180);
  CHECK(t.empty());

  const Images a = random_images({2, 3, 7, 5}, 1), b = random_images({2, 3, 7, 5}, 2);
  DTensor da = upload(ctx, a), db = upload(ctx, b), y;
  CHECK(values(ctx, da) == values(a));  // round trip is exact
  Ops::copy(ctx, da, y);
  CHECK(values(ctx, y) == values(a));
  Ops::add_inplace(ctx, y, db);
  std::vector<float> want(a.size());
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = a.data()[i] + b.data()[i];
  CHECK(values(ctx, y) == want);
  Ops::affine(ctx, da, y, 2.0f, -1.0f);  // NcsnRefineNet's 2x - 1
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = 2.0f * a.data()[i] - 1.0f;
  CHECK(rel(values(ctx, y), want) < 1e-7);
  Ops::affine(ctx, y, y, 0.5f, 0.5f);  // in place
  for (auto& v : want) v = 0.5f * v + 0.5f;
  CHECK(rel(values(ctx, y), want) < 1e-7);
  Ops::zeros(ctx, y, {1, 2, 3, 3});
  CHECK(y.shape() == Shape4{1, 2, 3, 3});
  for (float v : values(ctx, y)) REQUIRE(v == 0.0f);
  CHECK_THROWS_AS(Ops::add_inplace(ctx, y, da), so::ShapeError);
  Images back;
  CHECK(&Ops::to_host(ctx, da, back) == &back);
  CHECK(so::shape_of(back) == so::shape_of(a));
  CHECK(&Ops::to_backend(ctx, a, y) == &y);
}

// ------------------------------------------------------------ convolutions

TEST_CASE("conv2d forward and backward match nn::Conv2d", "[cuda][backend][conv]") {
  struct Case {
    std::size_t in, out, k, stride, dilation;
    std::ptrdiff_t padding;
    bool bias;
    std::size_t N, H, W;
    bool residual;
  };
  const Case cases[] = {
      {1, 8, 3, 1, 1, -1, true, 3, 28, 28, false},    // SmallUNet conv_in (1 channel in)
      {8, 8, 3, 1, 1, -1, true, 2, 28, 28, true},     // a block's conv2 with the skip fused
      {8, 16, 3, 2, 1, -1, true, 2, 28, 28, false},   // stride 2
      {8, 16, 1, 2, 1, -1, true, 2, 28, 28, true},    // 1x1 stride-2 skip
      {16, 16, 3, 2, 1, -1, true, 2, 14, 14, false},  // 14 -> 7
      {16, 16, 3, 1, 2, -1, false, 2, 14, 14, true},  // NcsnRefineNet res3: dilation 2, no bias
      {16, 16, 3, 1, 4, -1, false, 2, 14, 14, false}, // res4: dilation 4
      {16, 1, 3, 1, 1, -1, true, 2, 28, 28, false},   // conv_out (1 channel out)
      {6, 5, 3, 1, 1, -1, true, 3, 7, 9, true},       // odd, non-square
      {5, 4, 5, 2, 1, 1, true, 2, 13, 11, false},     // 5x5, stride 2, explicit padding
  };
  gpu::Context ctx;
  std::uint64_t seed = 100;
  for (const Case& c : cases) {
    CAPTURE(c.in, c.out, c.k, c.stride, c.dilation, c.padding, c.bias, c.N, c.H, c.W, c.residual);
    nn::ParameterStore<float> store;
    nn::Conv2d<float> conv(store, "conv", {.in = c.in, .out = c.out, .kernel = c.k, .stride = c.stride,
                                           .padding = c.padding, .dilation = c.dilation, .bias = c.bias},
                           so::CounterRng(++seed));
    DeviceStore dev(ctx, store, ++seed);
    const Images x = random_images({c.N, c.in, c.H, c.W}, ++seed);
    const Shape4 ys = conv.output_shape(so::shape_of(x));
    const Images r = random_images(ys, ++seed), dy = random_images(ys, ++seed);
    Images y, dx;
    conv.forward(x, y, c.residual ? &r : nullptr);
    conv.backward(dy, dx);

    const be::ConvParams cp{.in = c.in, .out = c.out, .kernel = c.k, .stride = c.stride, .pad = conv.padding(),
                            .dilation = c.dilation, .bias = c.bias};
    const DTensor gx = upload(ctx, x), gr = upload(ctx, r), gdy = upload(ctx, dy);
    DTensor gy = poisoned(ctx, ys), gdx = poisoned(ctx, so::shape_of(x));
    const float* b = c.bias ? dev.value(conv.bias().offset) : nullptr;
    Ops::conv2d_forward(ctx, cp, dev.value(conv.weight().offset), b, gx, gy, c.residual ? &gr : nullptr);
    Ops::conv2d_backward(ctx, cp, dev.value(conv.weight().offset), gx, gdy, &gdx, dev.grad(conv.weight().offset),
                         c.bias ? dev.grad(conv.bias().offset) : nullptr);
    CHECK(gy.shape() == ys);
    CHECK(rel(values(ctx, gy), values(y)) < kTol);
    CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
    CHECK(rel(values(ctx, dev.grads), span_values(store.grads())) < kTol);
    // Parameter gradients only (a network's first layer): they accumulate again, dx untouched.
    conv.backward_params(dy);
    Ops::conv2d_backward(ctx, cp, dev.value(conv.weight().offset), gx, gdy, nullptr, dev.grad(conv.weight().offset),
                         c.bias ? dev.grad(conv.bias().offset) : nullptr);
    CHECK(rel(values(ctx, dev.grads), span_values(store.grads())) < kTol);
  }
  SECTION("shape errors name the op") {
    const be::ConvParams cp{.in = 3, .out = 4, .kernel = 3, .stride = 1, .pad = 1};
    gpu::DeviceBuffer<float> w(36), b(4);
    DTensor x({1, 2, 8, 8}), y;
    CHECK_THROWS_WITH(Ops::conv2d_forward(ctx, cp, w.data(), b.data(), x, y, nullptr),
                      Catch::Contains("conv2d_forward") && Catch::Contains("channels"));
    CHECK_THROWS_AS(Ops::conv2d_forward(ctx, cp, w.data(), b.data(), x, x, nullptr), so::Error);
  }
  CHECK(ctx.convolution().cached_shapes() >= 10);
}

// ------------------------------------------------------------ instance norm++

TEST_CASE("instance norm++ forward, fused ELU, backward and parameter gradients match nn", "[cuda][backend][norm]") {
  struct Case {
    std::size_t N, C, H, W, L;
    bool bias;
  };
  const Case cases[] = {
      {5, 8, 7, 7, 3, true},     // SmallUNet's 7x7 stage, levels repeating
      {3, 2, 28, 28, 10, true},  // the fewest channels IN++ allows
      {4, 16, 14, 14, 10, false},
      {2, 4, 1, 1, 2, true},     // 1x1 planes: zero variance
      {6, 12, 9, 11, 4, true},   // odd, non-square
  };
  gpu::Context ctx;
  std::uint64_t seed = 500;
  // Each case's inputs: x with a large mean (the shifted statistics matter), dy, a residual gradient.
  struct Inputs {
    Shape4 xs;
    std::vector<int> levels;
    Images x, dy, res;
    DTensor gx, gdy, gres;
  };
  auto inputs = [&](const Case& c) {
    Inputs in;
    in.xs = {c.N, c.C, c.H, c.W};
    in.levels.resize(c.N);
    for (std::size_t n = 0; n < c.N; ++n) in.levels[n] = int((n * 7 + 2) % c.L);
    in.x = random_images(in.xs, ++seed, 1.5f, 3.0f);
    in.dy = random_images(in.xs, ++seed);
    in.res = random_images(in.xs, ++seed);
    in.gx = upload(ctx, in.x);
    in.gdy = upload(ctx, in.dy);
    in.gres = upload(ctx, in.res);
    return in;
  };

  SECTION("conditional, plain backward") {
    for (const Case& c : cases) {
      CAPTURE(c.N, c.C, c.H, c.W, c.L, c.bias);
      const Inputs in = inputs(c);
      nn::ParameterStore<float> store;
      nn::CondInstanceNormPlusPlus<float> norm(store, "n", c.C, c.L, so::CounterRng(++seed), c.bias);
      DeviceStore dev(ctx, store, ++seed);
      const std::size_t row = (c.bias ? 3 : 2) * c.C, off = norm.embed().offset;
      const be::NormParams<float> np{c.C, dev.value(off), dev.value(off + c.C), c.bias ? dev.value(off + 2 * c.C) : nullptr,
                                     row, in.levels};
      const be::NormGrads<float> ng{dev.grad(off), dev.grad(off + c.C), c.bias ? dev.grad(off + 2 * c.C) : nullptr};
      Images y, dx;
      norm.forward(in.x, in.levels, y);
      norm.backward(in.dy, dx);
      Ops::norm_cache<float> cache;
      DTensor gy = poisoned(ctx, in.xs), gdx = poisoned(ctx, in.xs);
      Ops::norm_forward(ctx, np, in.gx, gy, &cache, nullptr, false);
      Ops::norm_backward(ctx, np, cache, in.gdy, gdx, nullptr, 1.0f, nullptr, ng);
      CHECK(rel(values(ctx, gy), values(y)) < kTol);
      CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
      CHECK(rel(values(ctx, dev.grads), span_values(store.grads())) < kTol);
      // Inference without a cache gives the same output.
      DTensor gi = poisoned(ctx, in.xs);
      Ops::norm_forward(ctx, np, in.gx, gi, nullptr, nullptr, false);
      CHECK(values(ctx, gi) == values(ctx, gy));
    }
  }
  SECTION("conditional, ELU fused, residual gradient, input kept by reference or copied") {
    for (const Case& c : cases)
      for (const bool by_ref : {true, false}) {
        CAPTURE(c.N, c.C, c.H, c.W, c.L, c.bias, by_ref);
        const Inputs in = inputs(c);
        nn::ParameterStore<float> store;
        nn::CondInstanceNormPlusPlus<float> norm(store, "n", c.C, c.L, so::CounterRng(++seed), c.bias);
        nn::Elu<float> elu;
        DeviceStore dev(ctx, store, ++seed);
        const std::size_t row = (c.bias ? 3 : 2) * c.C, off = norm.embed().offset;
        const be::NormParams<float> np{c.C, dev.value(off), dev.value(off + c.C),
                                       c.bias ? dev.value(off + 2 * c.C) : nullptr, row, in.levels};
        const be::NormGrads<float> ng{dev.grad(off), dev.grad(off + c.C), c.bias ? dev.grad(off + 2 * c.C) : nullptr};
        Images y, dx, yi;
        norm.forward_elu(in.x, in.levels, y, elu, by_ref);
        norm.backward_elu(in.dy, dx, elu, &in.res);
        norm.infer_elu(in.x, in.levels, yi, elu);
        Ops::norm_cache<float> cache;
        DTensor gxi = upload(ctx, in.x), gy = poisoned(ctx, in.xs), gdx = poisoned(ctx, in.xs),
                gyi = poisoned(ctx, in.xs);
        const float alpha = 1.0f;
        Ops::norm_forward(ctx, np, gxi, gy, &cache, &alpha, by_ref);
        if (!by_ref) Ops::fill(ctx, gxi.data(), gxi.size(), 1e6f);  // a copied input may change after forward
        Ops::norm_backward(ctx, np, cache, in.gdy, gdx, gy.data(), alpha, &in.gres, ng);
        CHECK(rel(values(ctx, gy), values(y)) < kTol);
        CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
        CHECK(rel(values(ctx, dev.grads), span_values(store.grads())) < kTol);
        Ops::norm_forward(ctx, np, in.gx, gyi, nullptr, &alpha, false);
        CHECK(rel(values(ctx, gyi), values(yi)) < kTol);
        if (by_ref) {  // a referenced input that is resized before backward is reported
          gxi.resize({c.N + 1, c.C, c.H, c.W});
          CHECK_THROWS_WITH(Ops::norm_backward(ctx, np, cache, in.gdy, gdx, gy.data(), alpha, nullptr, ng),
                            Catch::Contains("resized or freed"));
        }
      }
  }
  SECTION("plain InstanceNormPlusPlus: one row, gradients summed over the batch") {
    for (const Case& c : cases) {
      CAPTURE(c.N, c.C, c.H, c.W, c.bias);
      const Inputs in = inputs(c);
      nn::ParameterStore<float> store;
      nn::InstanceNormPlusPlus<float> norm(store, "p", c.C, so::CounterRng(++seed), c.bias);
      DeviceStore dev(ctx, store, ++seed);
      const std::size_t a = entry(store, "p.alpha").offset, g = entry(store, "p.gamma").offset;
      const std::size_t b = c.bias ? entry(store, "p.beta").offset : 0;
      const std::vector<int> zeros(c.N, 0);
      const be::NormParams<float> np{c.C, dev.value(g), dev.value(a), c.bias ? dev.value(b) : nullptr, 0, zeros};
      const be::NormGrads<float> ng{dev.grad(g), dev.grad(a), c.bias ? dev.grad(b) : nullptr};
      Images y, dx;
      norm.forward(in.x, y);
      norm.backward(in.dy, dx);
      Ops::norm_cache<float> cache;
      DTensor gy = poisoned(ctx, in.xs), gdx = poisoned(ctx, in.xs);
      Ops::norm_forward(ctx, np, in.gx, gy, &cache, nullptr, true);
      Ops::norm_backward(ctx, np, cache, in.gdy, gdx, nullptr, 1.0f, nullptr, ng);
      CHECK(rel(values(ctx, gy), values(y)) < kTol);
      CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
      CHECK(rel(values(ctx, dev.grads), span_values(store.grads())) < kTol);
      // An empty level span means the same for a plain norm.
      const be::NormParams<float> np0{c.C, dev.value(g), dev.value(a), c.bias ? dev.value(b) : nullptr, 0, {}};
      DTensor gy0 = poisoned(ctx, in.xs);
      Ops::norm_forward(ctx, np0, in.gx, gy0, nullptr, nullptr, false);
      CHECK(values(ctx, gy0) == values(ctx, gy));
    }
  }
  SECTION("argument errors") {
    gpu::DeviceBuffer<float> p(64);
    const std::vector<int> lv{0, 1};
    const be::NormParams<float> np{4, p.data(), p.data() + 4, nullptr, 8, lv};
    DTensor x({3, 4, 2, 2}), y;
    CHECK_THROWS_WITH(Ops::norm_forward(ctx, np, x, y, nullptr, nullptr, false), Catch::Contains("noise-level"));
    const be::NormParams<float> one{1, p.data(), p.data(), nullptr, 0, {}};
    DTensor x1({2, 1, 2, 2});
    CHECK_THROWS_AS(Ops::norm_forward(ctx, one, x1, y, nullptr, nullptr, false), so::ValueError);
    Ops::norm_cache<float> empty;
    CHECK_THROWS_WITH(Ops::norm_backward(ctx, np, empty, x, y, nullptr, 1.0f, nullptr, {}),
                      Catch::Contains("before a training forward"));
  }
}

// ------------------------------------------------------------ ELU, pooling, resampling

TEST_CASE("ELU forward and backward (from the output, in place) match nn::Elu", "[cuda][backend][elu]") {
  gpu::Context ctx;
  for (const float alpha : {1.0f, 0.5f}) {
    const Images x = random_images({3, 5, 13, 11}, 40, 2.0f), dy = random_images({3, 5, 13, 11}, 41);
    nn::Elu<float> elu(alpha);
    Images y, dx;
    elu.forward(x, y);
    elu.backward(dy, dx);
    DTensor gx = upload(ctx, x), gy, gdy = upload(ctx, dy), gdx;
    Ops::elu_forward(ctx, gx, gy, alpha);
    Ops::elu_backward(ctx, gy.data(), gdy, gdx, alpha);
    CHECK(rel(values(ctx, gy), values(y)) < 1e-6);
    CHECK(rel(values(ctx, gdx), values(dx)) < 1e-6);
    Ops::elu_forward(ctx, gx, gx, alpha);  // in place, as the networks run it
    Ops::elu_backward(ctx, gx.data(), gdy, gdy, alpha);
    CHECK(values(ctx, gx) == values(ctx, gy));
    CHECK(values(ctx, gdy) == values(ctx, gdx));
  }
}

TEST_CASE("average pools (5x5 CRP, 2x2 mean pool) match nn", "[cuda][backend][pool]") {
  gpu::Context ctx;
  const Shape4 shapes[] = {{2, 3, 7, 7}, {2, 4, 9, 11}, {1, 2, 28, 28}, {3, 2, 14, 14}, {2, 3, 6, 7}};
  std::uint64_t seed = 60;
  for (const Shape4& xs : shapes) {
    CAPTURE(so::to_string(xs));
    const Images x = random_images(xs, ++seed);
    for (const bool cip : {true, false}) {
      CAPTURE(cip);
      nn::AvgPool2d<float> pool(5, 1, 2, cip);
      Images y, dx;
      pool.forward(x, y);
      const Images dy = random_images(so::shape_of(y), ++seed);
      pool.backward(dy, dx);
      const be::PoolParams pp{5, 1, 2, cip};
      DTensor gx = upload(ctx, x), gy, gdy = upload(ctx, dy), gdx;  // gdx empty: the input shape is inferred
      Ops::avg_pool_forward(ctx, pp, gx, gy);
      Ops::avg_pool_backward(ctx, pp, gdy, gdx);
      CHECK(gdx.shape() == xs);
      CHECK(rel(values(ctx, gy), values(y)) < kTol);
      CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
    }
    nn::MeanPool2x2<float> mp;
    Images y, dx;
    mp.forward(x, y);
    const Images dy = random_images(so::shape_of(y), ++seed);
    mp.backward(dy, dx);
    DTensor gx = upload(ctx, x), gy, gdy = upload(ctx, dy), gdx = poisoned(ctx, xs);  // sized: odd sizes keep theirs
    Ops::mean_pool2_forward(ctx, gx, gy);
    Ops::mean_pool2_backward(ctx, gdy, gdx);
    CHECK(rel(values(ctx, gy), values(y)) < kTol);
    CHECK(rel(values(ctx, gdx), values(dx)) < kTol);  // the dropped row/column gets zeros
  }
  DTensor x({1, 1, 8, 8}), y, wrong({1, 1, 5, 5});
  Ops::mean_pool2_forward(ctx, x, y);
  CHECK_THROWS_AS(Ops::mean_pool2_backward(ctx, y, wrong), so::ShapeError);
}

TEST_CASE("nearest (fused skip) and bilinear resampling match nn", "[cuda][backend][upsample]") {
  gpu::Context ctx;
  struct Case {
    Shape4 in;
    std::size_t oh, ow;
  };
  const Case cases[] = {{{2, 4, 7, 7}, 14, 14}, {{2, 3, 14, 14}, 28, 28}, {{2, 3, 5, 6}, 13, 11},
                        {{1, 2, 14, 14}, 7, 7},  {{3, 2, 9, 9}, 5, 12}};
  std::uint64_t seed = 80;
  for (const Case& c : cases) {
    CAPTURE(so::to_string(c.in), c.oh, c.ow);
    const Shape4 os{c.in[0], c.in[1], c.oh, c.ow};
    const Images x = random_images(c.in, ++seed), r = random_images(os, ++seed), dy = random_images(os, ++seed);
    const DTensor gx = upload(ctx, x), gr = upload(ctx, r), gdy = upload(ctx, dy);
    {
      nn::UpsampleNearest<float> up(c.oh, c.ow);
      Images y, y2, dx;
      up.forward(x, y, &r);
      up.infer(x, y2);
      up.backward(dy, dx);
      DTensor gy = poisoned(ctx, os), gy2 = poisoned(ctx, os), gdx = poisoned(ctx, c.in);
      Ops::nearest_forward(ctx, gx, gy, &gr);
      Ops::nearest_forward(ctx, gx, gy2, nullptr);
      Ops::nearest_backward(ctx, gdy, gdx);
      CHECK(values(ctx, gy) == values(y));  // pixels moved and one add: exact
      CHECK(values(ctx, gy2) == values(y2));
      CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
    }
    for (const bool align : {true, false}) {
      CAPTURE(align);
      nn::UpsampleBilinear<float> up(c.oh, c.ow, align);
      Images y, dx;
      up.forward(x, y);
      up.backward(dy, dx);
      DTensor gy = poisoned(ctx, os), gdx = poisoned(ctx, c.in);
      Ops::bilinear_forward(ctx, gx, gy, align);
      Ops::bilinear_backward(ctx, gdy, gdx, align);
      CHECK(rel(values(ctx, gy), values(y)) < kTol);
      CHECK(rel(values(ctx, gdx), values(dx)) < kTol);
    }
  }
  DTensor x({1, 2, 4, 4}), wrong({2, 2, 8, 8});
  CHECK_THROWS_AS(Ops::nearest_forward(ctx, x, wrong, nullptr), so::ShapeError);
}

// ------------------------------------------------------------ training ops

TEST_CASE("DSM loss and gradient match score::dsm_loss", "[cuda][backend][dsm]") {
  gpu::Context ctx;
  for (const Shape4 s : {Shape4{16, 1, 28, 28}, Shape4{3, 3, 7, 5}, Shape4{1, 1, 1, 1}}) {
    CAPTURE(so::to_string(s));
    const Images sc = random_images(s, 1, 3.0f), z = random_images(s, 2);
    std::vector<float> sigma(s[0]);
    for (std::size_t b = 0; b < s[0]; ++b) sigma[b] = float(std::pow(0.6, double(b % 10)));
    Images grad;
    const double want = so::score::dsm_loss(sc, z, sigma, grad);
    DTensor gs = upload(ctx, sc), gz = upload(ctx, z), gg;
    const double got = Ops::dsm_loss(ctx, gs, gz, sigma, gg);
    CHECK(std::abs(got - want) <= 1e-5 * std::abs(want));
    CHECK(rel(values(ctx, gg), values(grad)) < kTol);
  }
  DTensor a({2, 1, 3, 3}), b({2, 1, 3, 3}), g;
  const std::vector<float> one{1.0f};
  CHECK_THROWS_AS(Ops::dsm_loss(ctx, a, b, one, g), so::ShapeError);
}

TEST_CASE("gradient norm, scale, fill, copy, Adam and EMA match nn", "[cuda][backend][optim]") {
  gpu::Context ctx;
  const std::size_t n = 100003;
  nn::ParameterStore<float> store;
  store.add("w", {n});
  const auto p0 = randn(n, 11), g0 = randn(n, 12, 0.1f);
  std::copy(p0.begin(), p0.end(), store.values().begin());
  std::copy(g0.begin(), g0.end(), store.grads().begin());
  auto dp = upload(ctx, std::span<const float>(p0)), dg = upload(ctx, std::span<const float>(g0));

  const double norm = nn::grad_norm(store);
  CHECK(std::abs(std::sqrt(Ops::sum_squares(ctx, dg.data(), n)) - norm) <= 1e-9 * norm);
  CHECK(Ops::sum_squares(ctx, dg.data(), 0) == 0.0);
  CHECK(Ops::sum_squares(ctx, dg.data(), 1) == double(g0[0]) * double(g0[0]));

  gpu::DeviceBuffer<float> t(n);
  Ops::copy_n(ctx, dg.data(), t.data(), n);
  Ops::scale(ctx, t.data(), n, 0.25f);
  std::vector<float> want(n);
  for (std::size_t i = 0; i < n; ++i) want[i] = g0[i] * 0.25f;
  CHECK(values(ctx, t) == want);
  Ops::fill(ctx, t.data(), 7, -2.0f);
  const auto tv = values(ctx, t);
  CHECK(std::count(tv.begin(), tv.begin() + 7, -2.0f) == 7);
  CHECK(tv[7] == want[7]);

  // Adam, PyTorch semantics with L2 weight decay, five steps; the moments start at zero.
  nn::AdamOptions o;
  o.lr = 3e-3;
  o.weight_decay = 1e-2;
  nn::Adam<float> adam(store, o);
  nn::Ema<float> ema(store, 0.99);
  gpu::DeviceBuffer<float> m(n), v(n), shadow = upload(ctx, std::span<const float>(p0));
  Ops::fill(ctx, m.data(), n, 0.0f);
  Ops::fill(ctx, v.data(), n, 0.0f);
  for (int step = 1; step <= 5; ++step) {
    adam.step();
    ema.update(store);
    be::AdamStep as{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, 1 - std::pow(o.beta1, step),
                    1 - std::pow(o.beta2, step)};
    Ops::adam_step(ctx, dp.data(), dg.data(), m.data(), v.data(), n, as);
    Ops::ema_update(ctx, shadow.data(), dp.data(), n, 0.99);
  }
  CHECK(rel(values(ctx, dp), span_values(store.values())) < 1e-6);
  CHECK(rel(values(ctx, m), span_values(adam.first_moment())) < 1e-6);
  CHECK(rel(values(ctx, v), span_values(adam.second_moment())) < 1e-6);
  CHECK(rel(values(ctx, shadow), span_values(ema.shadow())) < 1e-6);
}

// ------------------------------------------------------------ features

TEST_CASE("feature reductions follow score/normality.hpp's loops", "[cuda][backend][features]") {
  gpu::Context ctx;
  const std::size_t B = 5, G = 4, C = 2, H = 7, W = 6, P = C * H * W, HW = H * W;
  const float sigma = 0.37f;
  const Images s = random_images({B * G, C, H, W}, 21, 2.0f), z = random_images({B, C, H, W}, 22);
  const DTensor gs = upload(ctx, s), gz = upload(ctx, z);
  // msma (clean: the first B images of s as one batch)
  {
    Images first = xt::zeros<float>({B, C, H, W});
    std::copy(s.data(), s.data() + B * P, first.data());
    const DTensor clean = upload(ctx, first);
    std::vector<double> got(B), want(B);
    for (std::size_t b = 0; b < B; ++b) {
      double acc = 0;
      const float* sp = s.data() + b * P;
      for (std::size_t p = 0; p < P; ++p) acc += double(sigma * sp[p]) * double(sigma * sp[p]);
      want[b] = std::sqrt(acc);
    }
    Ops::scaled_norms(ctx, clean, sigma, got);
    for (std::size_t b = 0; b < B; ++b) CHECK(got[b] == Approx(want[b]).epsilon(1e-12));
    // The msma term of the anomaly map, added onto what is there.
    std::vector<double> map(B * HW, 1.0), wmap(B * HW, 1.0);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t p = 0; p < HW; ++p) {
          const double v = double(sigma) * double(s.data()[b * P + c * HW + p]);
          wmap[b * HW + p] += v * v;
        }
    Ops::clean_map_add(ctx, clean, sigma, map);
    for (std::size_t i = 0; i < map.size(); ++i) REQUIRE(map[i] == Approx(wmap[i]).epsilon(1e-12));
  }
  // rec / rot / elem: group-major residual norms
  {
    std::vector<double> got(G * B), want(G * B);
    const float inv = 1.0f / sigma;
    for (std::size_t g = 0; g < G; ++g)
      for (std::size_t b = 0; b < B; ++b) {
        const float* sp = s.data() + (g * B + b) * P;
        const float* zp = z.data() + b * P;
        double acc = 0;
        for (std::size_t p = 0; p < P; ++p) {
          const double r = double(sp[p]) + double(zp[p]) * inv;
          acc += r * r;
        }
        want[g * B + b] = std::sqrt(acc);
      }
    Ops::residual_norms(ctx, gs, gz, sigma, G, got);
    for (std::size_t k = 0; k < G * B; ++k) CHECK(got[k] == Approx(want[k]).epsilon(1e-12));
    std::vector<double> map(B * HW, 0.5), wmap(B * HW, 0.5);
    const double w = 0.8, dinv = 1.0 / double(sigma);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t g = 0; g < G; ++g)
        for (std::size_t c = 0; c < C; ++c)
          for (std::size_t p = 0; p < HW; ++p) {
            const double r = double(s.data()[(g * B + b) * P + c * HW + p]) + double(z.data()[b * P + c * HW + p]) * dinv;
            wmap[b * HW + p] += w * r * r;
          }
    Ops::residual_map_add(ctx, gs, gz, sigma, G, w, map);
    for (std::size_t i = 0; i < map.size(); ++i) REQUIRE(map[i] == Approx(wmap[i]).epsilon(1e-12));
    std::vector<double> short_out(3);
    CHECK_THROWS_AS(Ops::residual_norms(ctx, gs, gz, sigma, G, short_out), so::ShapeError);
    CHECK_THROWS_AS(Ops::residual_norms(ctx, gs, gz, sigma, 3, got), so::ShapeError);
  }
}

// ------------------------------------------------------------ group batches

namespace {

template <class Aug>
void check_dsm_batch(gpu::Context& ctx, const Aug& aug, const Shape4& data_shape) {
  CAPTURE(std::string(Aug::name), so::to_string(data_shape));
  const Images data = random_images(data_shape, 31, 0.3f, 0.5f);
  const std::vector<float> sigmas{1.0f, 0.6f, 0.36f, 0.2f, 0.01f};
  const DTensor gdata = upload(ctx, data);
  const std::size_t batch = 24;
  for (const std::size_t step : {0u, 7u}) {
    const auto streams = so::score::DsmStreams::for_step(42, step);
    so::score::DsmBatch host;
    so::score::make_dsm_batch(data, sigmas, aug, batch, streams, host);
    // The per-sample draws of score::make_dsm_batch, on the host; the pixels on the device.
    std::vector<std::uint32_t> image(batch);
    for (std::size_t b = 0; b < batch; ++b) image[b] = streams.images.uniform_int(b, std::uint32_t(data_shape[0]));
    DTensor input, noise;
    Ops::dsm_inputs(ctx, gdata, std::span<const std::uint32_t>(image), std::span<const float>(host.sigma),
                    std::span<const int>(host.elements), aug, streams.noise, input, noise);
    CHECK(input.shape() == so::shape_of(host.input));
    CHECK(noise.shape() == so::shape_of(host.noise));
    // The same Philox counters: the noise agrees to float rounding, and so does x + sigma z.
    CHECK(rel(values(ctx, noise), values(host.noise)) < 1e-6);
    CHECK(rel(values(ctx, input), values(host.input)) < 1e-6);
  }
}

template <class Aug>
void check_noisy_copies(gpu::Context& ctx, const Aug& aug, std::size_t groups) {
  CAPTURE(std::string(Aug::name), groups);
  const std::size_t B = 6, C = 2, H = 8, W = 8, P = C * H * W, n0 = 128;
  const float sg = 0.3f;
  const Images x = random_images({B, C, H, W}, 51, 0.3f, 0.5f);
  const so::CounterRng rng = so::CounterRng(0x5C0DE, 0x4E0).substream(3);
  // score::detail::network_passes, written out
  std::vector<float> in(B * groups * P), z(B * P), noisy(P);
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t p = 0; p < P; ++p) {
      z[b * P + p] = rng.normal((n0 + b) * P + p);
      noisy[p] = x.data()[b * P + p] + sg * z[b * P + p];
    }
    for (std::size_t g = 0; g < groups; ++g) aug.apply_image(noisy.data(), in.data() + (g * B + b) * P, C, H, W, g);
  }
  const DTensor gx = upload(ctx, x);
  DTensor gin, gz;
  Ops::noisy_copies(ctx, gx, n0, sg, rng, groups, aug, gin, gz);
  CHECK(gin.shape() == Shape4{B * groups, C, H, W});
  CHECK(rel(values(ctx, gz), z) < 1e-6);
  CHECK(rel(values(ctx, gin), in) < 1e-6);
}

}  // namespace

TEST_CASE("DSM batch inputs built on the device equal score::make_dsm_batch's", "[cuda][backend][dsm][group]") {
  gpu::Context ctx;
  check_dsm_batch(ctx, so::augment::Identity{}, {40, 3, 6, 10});  // non-square is fine without turns
  check_dsm_batch(ctx, so::augment::Rot4{}, {40, 1, 28, 28});
  check_dsm_batch(ctx, so::augment::Dihedral8{}, {17, 2, 9, 9});
  DTensor rect({4, 1, 6, 8}), input, noise;
  const std::vector<std::uint32_t> image{0, 3};
  const std::vector<float> sig{1.0f, 0.5f};
  const std::vector<int> turn{0, 1}, bad{0, 4};
  CHECK_THROWS_AS(Ops::dsm_inputs(ctx, rect, std::span<const std::uint32_t>(image), std::span<const float>(sig),
                                  std::span<const int>(turn), so::augment::Rot4{}, so::CounterRng(1), input, noise),
                  so::ShapeError);  // a quarter turn of a 6x8 image
  CHECK_THROWS_AS(Ops::dsm_inputs(ctx, rect, std::span<const std::uint32_t>(image), std::span<const float>(sig),
                                  std::span<const int>(bad), so::augment::Rot4{}, so::CounterRng(1), input, noise),
                  so::ValueError);  // element 4 of Rot4
}

TEST_CASE("noisy group copies equal score::detail::network_passes' inputs", "[cuda][backend][group]") {
  gpu::Context ctx;
  check_noisy_copies(ctx, so::augment::Identity{}, 1);
  check_noisy_copies(ctx, so::augment::Rot4{}, 4);
  check_noisy_copies(ctx, so::augment::Rot4{}, 1);  // rec alone: the identity copy
  check_noisy_copies(ctx, so::augment::Dihedral8{}, 8);
}
