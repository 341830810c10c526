// Conv2d: forward against a naive direct convolution (float and double),
// backward against naive loops and finite differences, PyTorch values for
// fixed cases (layout, init), error cases.
#include <catch2/catch.hpp>
#include <scoreood/cpu/kernels.hpp>
#include <scoreood/nn/layers/conv2d.hpp>

#include "../isa_tiers.hpp"
#include "conv_reference.hpp"
#include "gradcheck.hpp"
#include "refdata.hpp"

#include <cmath>
#include <omp.h>
#include <string>
#include <vector>

using namespace scoreood;
using scoreood::testing::fill_normal;
using scoreood::testing::naive_backward;
using scoreood::testing::naive_forward;

namespace {

template <class T>
using Spec = typename nn::Conv2d<T>::Spec;

template <class A, class B>
double max_abs_diff(const A* a, const B* b, std::size_t n) {
  double m = 0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

std::string describe(const Shape4& in, std::size_t cout, std::size_t k, std::size_t s, std::ptrdiff_t p,
                     std::size_t d, bool b) {
  return "x " + to_string(in) + " out " + std::to_string(cout) + " k" + std::to_string(k) + " s" +
         std::to_string(s) + " p" + std::to_string(p) + " d" + std::to_string(d) + (b ? " bias" : " nobias");
}

/// A conv configuration that fits: input at least the dilated kernel minus padding.
struct Case {
  Shape4 in;
  Spec<double> spec;
};

std::vector<Case> sweep() {
  std::vector<Case> cases;
  CounterRng r(7, 0);
  std::uint64_t i = 0;
  for (std::size_t k : {1, 3, 5})
    for (std::size_t s : {1, 2})
      for (std::size_t d : {1, 2, 4})
        for (std::ptrdiff_t p : {-1, 0, 1, 2}) {
          if (k == 1 && d > 1) continue;  // dilation is meaningless for 1x1
          const std::size_t pad = p < 0 ? d * (k - 1) / 2 : std::size_t(p);
          const std::size_t span = d * (k - 1) + 1;
          const std::size_t minimal = span > 2 * pad ? span - 2 * pad : 1;
          Case c;
          c.in = {1 + r.uniform_int(i++, 2), 1 + r.uniform_int(i++, 3), minimal + r.uniform_int(i++, 4),
                  minimal + r.uniform_int(i++, 5)};
          c.spec = {c.in[1], 1 + r.uniform_int(i++, 3), k, s, p, d, r.uniform_int(i++, 2) == 1};
          cases.push_back(c);
        }
  return cases;
}

}  // namespace

TEMPLATE_TEST_CASE("Packed GEMM matches Eigen's GEMM on ragged sizes", "[conv][gemm]", float, double) {
  using T = TestType;
  SCOREOOD_FOR_EACH_CPU_TIER();
  // Edges of the 8-row / 48-column tiles (6 x 16 on AVX2) and the 128-deep K blocks; both packings.
  CounterRng r(77);
  std::uint64_t i = 0;
  for (std::size_t M : {1, 7, 9, 17})
    for (std::size_t K : {1, 5, 131, 300})
      for (std::size_t N : {1, 16, 17, 47, 49, 100}) {
        const std::size_t ldb = N + 3, ldc = N + 5;
        std::vector<T> a(M * K), b(K * ldb), c0(M * ldc), packed(SCOREOOD_CPU_DISPATCH(k::packed_lhs_size<T>(M, K)));
        for (auto& v : a) v = T(r.normal(i++));
        for (auto& v : b) v = T(r.normal(i++));
        for (auto& v : c0) v = T(r.normal(i++));
        for (const bool trans : {false, true})
          for (const bool acc : {false, true}) {
            std::vector<T> c = c0, ref = c0;
            // trans: a holds the K x M matrix whose transpose is the operand.
            if (trans) SCOREOOD_CPU_DISPATCH(k::pack_lhs(a.data(), M, K, 1, M, packed.data()));
            else SCOREOOD_CPU_DISPATCH(k::pack_lhs(a.data(), M, K, K, 1, packed.data()));
            SCOREOOD_CPU_DISPATCH(k::gemm_packed<T>(packed.data(), M, K, b.data(), ldb, N, c.data(), ldc, acc));
            cpu::gemm<T>(trans, false, M, N, K, T(1), a.data(), trans ? M : K, b.data(), ldb, acc ? T(1) : T(0),
                         ref.data(), ldc);
            double err = 0;
            for (std::size_t m = 0; m < M; ++m)
              for (std::size_t n = 0; n < ldc; ++n)  // padding columns must be untouched
                err = std::max(err, std::abs(double(c[m * ldc + n]) - double(ref[m * ldc + n])));
            INFO("M " << M << " K " << K << " N " << N << " trans " << trans << " acc " << acc);
            CHECK(err < (std::is_same_v<T, float> ? 1e-3 : 1e-11));
          }
      }
}

TEMPLATE_TEST_CASE("Conv2d forward matches a direct convolution", "[conv]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  std::uint64_t seed = 0;
  for (const auto& c : sweep()) {
    nn::ParameterStore<T> store;
    Spec<T> spec{c.spec.in, c.spec.out, c.spec.kernel, c.spec.stride, c.spec.padding, c.spec.dilation, c.spec.bias};
    nn::Conv2d<T> conv(store, "c", spec, CounterRng(11, seed));
    Tensor4<T> x = xt::empty<T>(c.in), y;
    fill_normal(x, CounterRng(12, seed++));
    conv.infer(x, y);
    const Tensor4<double> ref = naive_forward(x, conv);
    INFO(describe(c.in, spec.out, spec.kernel, spec.stride, spec.padding, spec.dilation, spec.bias));
    REQUIRE(shape_of(y) == shape_of(ref));
    CHECK(max_abs_diff(y.data(), ref.data(), y.size()) < tol);
  }
  // Wider layers (8+ output channels take the packed kernel for float), ragged sizes.
  for (const auto& [in, spec] : {std::pair{Shape4{3, 5, 11, 13}, Spec<T>{5, 13, 3, 1, -1, 1, true}},
                                 std::pair{Shape4{2, 16, 7, 7}, Spec<T>{16, 24, 3, 1, -1, 1, false}},
                                 std::pair{Shape4{2, 9, 14, 14}, Spec<T>{9, 8, 3, 2, 1, 1, true}},
                                 std::pair{Shape4{1, 8, 14, 14}, Spec<T>{8, 16, 3, 1, -1, 2, true}},
                                 std::pair{Shape4{2, 12, 6, 9}, Spec<T>{12, 17, 1, 1, 0, 1, true}},
                                 // stride-2 rows of 35/36 phase columns: several permute chunks per row
                                 std::pair{Shape4{2, 3, 9, 70}, Spec<T>{3, 9, 3, 2, 1, 1, true}},
                                 std::pair{Shape4{1, 4, 7, 69}, Spec<T>{4, 8, 5, 2, 2, 1, false}}}) {
    nn::ParameterStore<T> store;
    nn::Conv2d<T> conv(store, "c", spec, CounterRng(13, seed));
    Tensor4<T> x = xt::empty<T>(in), y;
    fill_normal(x, CounterRng(14, seed++));
    conv.infer(x, y);
    const Tensor4<double> ref = naive_forward(x, conv);
    INFO(describe(in, spec.out, spec.kernel, spec.stride, spec.padding, spec.dilation, spec.bias));
    CHECK(max_abs_diff(y.data(), ref.data(), y.size()) < tol * 4);
  }
}

TEST_CASE("Conv2d gradients pass finite differences over kernels, strides, paddings, dilations", "[conv][grad]") {
  std::uint64_t seed = 100;
  int checked = 0;
  for (const auto& c : sweep()) {
    nn::ParameterStore<double> store;
    nn::Conv2d<double> conv(store, "conv", c.spec, CounterRng(3, seed));
    Tensor4<double> x = xt::empty<double>(c.in);
    fill_normal(x, CounterRng(4, seed++));
    const auto rep = testing::gradcheck([&](const Tensor4<double>& xi, Tensor4<double>& y) { conv.forward(xi, y); },
                                        [&](const Tensor4<double>& dy, Tensor4<double>& dx) { conv.backward(dy, dx); },
                                        x, &store);
    INFO(describe(c.in, c.spec.out, c.spec.kernel, c.spec.stride, c.spec.padding, c.spec.dilation, c.spec.bias));
    INFO(rep.str());
    CHECK(rep.max_rel < 1e-6);
    ++checked;
  }
  CHECK(checked >= 40);
}

TEMPLATE_TEST_CASE("Conv2d backward on a threaded batch matches direct loops", "[conv]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-3 : 1e-10;
  struct Big {
    Shape4 in;
    Spec<T> spec;
  };
  // Large enough that the batch is split across threads and the accumulators reduced.
  const std::vector<Big> cases = {
      {{6, 8, 13, 11}, {8, 12, 3, 1, -1, 1, true}},  {{5, 16, 14, 14}, {16, 8, 3, 2, 1, 1, true}},
      {{4, 12, 14, 14}, {12, 12, 3, 1, -1, 4, false}}, {{7, 16, 9, 9}, {16, 24, 1, 1, 0, 1, true}},
      {{3, 6, 10, 12}, {6, 5, 5, 2, 2, 1, true}},
      {{2, 8, 5, 37}, {8, 9, 3, 1, -1, 2, true}}};  // padded rows of 41: three vectors in pad/compact
  std::uint64_t seed = 0;
  for (const auto& c : cases) {
    nn::ParameterStore<T> store;
    nn::Conv2d<T> conv(store, "c", c.spec, CounterRng(21, seed));
    Tensor4<T> x = xt::empty<T>(c.in), y, dx;
    fill_normal(x, CounterRng(22, seed));
    conv.forward(x, y);
    Tensor4<T> dy = xt::empty<T>(shape_of(y));
    fill_normal(dy, CounterRng(23, seed++));
    // Pre-existing grads must be accumulated into, not overwritten.
    for (auto& g : store.grads()) g = T(0.5);
    conv.backward(dy, dx);
    Tensor4<double> rdx;
    std::vector<double> rdw, rdb;
    naive_backward(x, dy, conv, rdx, rdw, rdb);
    for (auto& v : rdw) v += 0.5;
    for (auto& v : rdb) v += 0.5;
    INFO(describe(c.in, c.spec.out, c.spec.kernel, c.spec.stride, c.spec.padding, c.spec.dilation, c.spec.bias));
    REQUIRE(shape_of(dx) == c.in);
    CHECK(max_abs_diff(dx.data(), rdx.data(), dx.size()) < tol);
    CHECK(max_abs_diff(conv.weight().grad(), rdw.data(), rdw.size()) < tol * 10);
    if (c.spec.bias) CHECK(max_abs_diff(conv.bias().grad(), rdb.data(), rdb.size()) < tol * 10);

    // backward_params gives the same parameter gradients without dx.
    store.zero_grad();
    conv.backward_params(dy);
    for (auto& v : rdw) v -= 0.5;
    CHECK(max_abs_diff(conv.weight().grad(), rdw.data(), rdw.size()) < tol * 10);
  }
}

TEST_CASE("Conv2d gives the same result on one thread and on all threads", "[conv]") {
  nn::ParameterStore<float> store;
  nn::Conv2d<float> conv(store, "c", {8, 8, 3}, CounterRng(5));
  Tensor4<float> x = xt::empty<float>({6, 8, 12, 12}), y1, y2, dx1, dx2;
  fill_normal(x, CounterRng(6));
  Tensor4<float> dy = xt::empty<float>({6, 8, 12, 12});
  fill_normal(dy, CounterRng(7));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  conv.forward(x, y1);
  conv.backward(dy, dx1);
  std::vector<float> g1(store.grads().begin(), store.grads().end());
  store.zero_grad();
  omp_set_num_threads(std::max(2, saved));
  conv.forward(x, y2);
  conv.backward(dy, dx2);
  omp_set_num_threads(saved);
  CHECK(max_abs_diff(y1.data(), y2.data(), y1.size()) < 1e-5);
  CHECK(max_abs_diff(dx1.data(), dx2.data(), dx1.size()) < 1e-5);
  // The reduction order differs, and Winograd's transforms round per thread's share of the batch.
  double gmax = 0;
  for (const float v : g1) gmax = std::max(gmax, double(std::abs(v)));
  CHECK(max_abs_diff(g1.data(), store.grad_data(), g1.size()) < 1e-5 * gmax);
}

TEST_CASE("Conv2d matches PyTorch (weight layout, stride, dilation, 1x1, gradients)", "[conv][torch]") {
  const auto refs = testing::load_refdata(std::string(SCOREOOD_TEST_DATA_DIR) + "/conv_refs.txt");
  for (const std::string name : {"conv_a", "conv_b", "conv_c"}) {
    INFO(name);
    const auto& sp = refs.at(name + ".spec").values;
    const nn::Conv2d<double>::Spec spec{std::size_t(sp[0]), std::size_t(sp[1]), std::size_t(sp[2]),
                                        std::size_t(sp[3]), std::ptrdiff_t(sp[4]), std::size_t(sp[5]), sp[6] != 0};
    auto load = [&](const std::string& key) {
      const auto& a = refs.at(name + "." + key);
      Tensor4<double> t = xt::empty<double>({a.shape[0], a.shape[1], a.shape[2], a.shape[3]});
      std::copy(a.values.begin(), a.values.end(), t.data());
      return t;
    };
    for (int prec = 0; prec < 2; ++prec) {
      // Same case in double (tight) and float (loose): the float path is the one in production.
      auto run = [&](auto zero) {
        using T = decltype(zero);
        nn::ParameterStore<T> store;
        nn::Conv2d<T> conv(store, "c", {spec.in, spec.out, spec.kernel, spec.stride, spec.padding, spec.dilation,
                                        spec.bias}, CounterRng(1));
        const auto& w = refs.at(name + ".weight");
        REQUIRE(w.values.size() == conv.weight().size);
        std::copy(w.values.begin(), w.values.end(), conv.weight().value());  // [out, in, kh, kw] as stored by torch
        if (spec.bias) {
          const auto& b = refs.at(name + ".bias").values;
          std::copy(b.begin(), b.end(), conv.bias().value());
        }
        const Tensor4<T> x = xt::cast<T>(load("x")), dy = xt::cast<T>(load("dy"));
        Tensor4<T> y, dx;
        conv.forward(x, y);
        conv.backward(dy, dx);
        const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-12;
        const Tensor4<double> ry = load("y"), rdx = load("dx");
        REQUIRE(shape_of(y) == shape_of(ry));
        CHECK(max_abs_diff(y.data(), ry.data(), y.size()) < tol);
        CHECK(max_abs_diff(dx.data(), rdx.data(), dx.size()) < tol);
        const auto& dw = refs.at(name + ".dweight").values;
        CHECK(max_abs_diff(conv.weight().grad(), dw.data(), dw.size()) < tol);
        if (spec.bias) {
          const auto& db = refs.at(name + ".dbias").values;
          CHECK(max_abs_diff(conv.bias().grad(), db.data(), db.size()) < tol);
        }
      };
      if (prec == 0) run(double{});
      else run(float{});
    }
  }
}

TEST_CASE("Conv2d default init follows PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))", "[conv][torch]") {
  const auto refs = testing::load_refdata(std::string(SCOREOOD_TEST_DATA_DIR) + "/conv_refs.txt");
  const auto& ws = refs.at("init.weight_stats").values;  // max|w|, std, mean of torch's Conv2d(64, 64, 3)
  const auto& bs = refs.at("init.bias_stats").values;
  nn::ParameterStore<double> store;
  nn::Conv2d<double> conv(store, "c", {64, 64, 3}, CounterRng(99));
  const auto w = conv.weight().values();
  double mx = 0, s = 0, s2 = 0;
  for (double v : w) {
    mx = std::max(mx, std::abs(v));
    s += v;
    s2 += v * v;
  }
  const double n = double(w.size()), mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
  const double bound = 1.0 / std::sqrt(64.0 * 9.0);
  CHECK(mx <= bound);
  CHECK(mx == Approx(ws[0]).epsilon(0.01));  // both reach the same bound
  CHECK(sd == Approx(ws[1]).epsilon(0.03));  // std b/sqrt(3) for both
  CHECK(std::abs(mean) < 3 * sd / std::sqrt(n));
  double bmx = 0;
  for (double v : conv.bias().values()) bmx = std::max(bmx, std::abs(v));
  CHECK(bmx <= bound);
  CHECK(bmx > 0.8 * bs[0]);
  // Different seeds give different weights; the same seed the same ones.
  nn::ParameterStore<double> s1, s3;
  nn::Conv2d<double> c1(s1, "c", {4, 4, 3}, CounterRng(1)), c3(s3, "c", {4, 4, 3}, CounterRng(1));
  CHECK(s1.values()[5] == s3.values()[5]);
  CHECK(s1.values()[5] != store.values()[5]);
}

TEST_CASE("Conv2d shapes, MACs, parameter names", "[conv]") {
  nn::ParameterStore<float> store;
  nn::Conv2d<float> a(store, "enc.conv1", {32, 64, 3, 2}, CounterRng(1));
  nn::Conv2d<float> b(store, "res3.conv", {128, 128, 3, 1, -1, 4, false}, CounterRng(2));
  CHECK(a.output_shape({128, 32, 28, 28}) == Shape4{128, 64, 14, 14});
  CHECK(a.output_shape({1, 32, 7, 7}) == Shape4{1, 64, 4, 4});
  CHECK(b.padding() == 4);
  CHECK(b.output_shape({2, 128, 14, 14}) == Shape4{2, 128, 14, 14});
  CHECK(a.macs({128, 32, 28, 28}) == std::size_t(128) * 64 * 14 * 14 * 32 * 9);
  REQUIRE(store.entries().size() == 3);
  CHECK(store.entries()[0].name == "enc.conv1.weight");
  CHECK(store.entries()[0].shape == std::vector<std::size_t>{64, 32, 3, 3});
  CHECK(store.entries()[1].name == "enc.conv1.bias");
  CHECK(store.entries()[2].name == "res3.conv.weight");
  CHECK(store.count() == 64 * 32 * 9 + 64 + 128 * 128 * 9);
}

TEST_CASE("Conv2d rejects bad specs, shapes and call orders with clear messages", "[conv][errors]") {
  using Catch::Matchers::Contains;
  nn::ParameterStore<float> store;
  CHECK_THROWS_WITH(nn::Conv2d<float>(store, "z", {0, 4, 3}, CounterRng()), Contains("'z'") && Contains("channels"));
  CHECK_THROWS_WITH(nn::Conv2d<float>(store, "s", {1, 4, 3, 0}, CounterRng()), Contains("stride"));
  CHECK_THROWS_WITH(nn::Conv2d<float>(store, "d", {1, 4, 3, 1, -1, 0}, CounterRng()), Contains("dilation"));
  CHECK_THROWS_WITH(nn::Conv2d<float>(store, "p", {1, 4, 3, 1, -2}, CounterRng()), Contains("padding"));
  nn::Conv2d<float> conv(store, "net.c", {3, 4, 5, 1, 0}, CounterRng());
  Tensor4<float> x = xt::zeros<float>({2, 2, 8, 8}), y, dx;
  CHECK_THROWS_AS(conv.infer(x, y), ShapeError);
  CHECK_THROWS_WITH(conv.infer(x, y), Contains("net.c") && Contains("2 channels") && Contains("expected 3"));
  Tensor4<float> small = xt::zeros<float>({1, 3, 4, 9});
  CHECK_THROWS_WITH(conv.infer(small, y), Contains("smaller than the dilated kernel"));
  Tensor4<float> ok = xt::zeros<float>({1, 3, 6, 6}), dy = xt::zeros<float>({1, 4, 3, 3});
  CHECK_THROWS_WITH(conv.backward(dy, dx), Contains("without a training forward"));
  CHECK_THROWS_AS(conv.infer(ok, ok), Error);
  conv.forward(ok, y);
  CHECK(shape_of(y) == Shape4{1, 4, 2, 2});
  CHECK_THROWS_AS(conv.backward(dy, dx), ShapeError);  // dy must be [1, 4, 2, 2]
  ok.resize({2, 3, 6, 6});                               // reallocated after forward
  Tensor4<float> dy2 = xt::zeros<float>({1, 4, 2, 2});
  CHECK_THROWS_WITH(conv.backward(dy2, dx), Contains("resized or freed"));
}

TEMPLATE_TEST_CASE("Conv2d adds a residual in the same pass", "[conv]", float, double) {
  using T = TestType;
  for (const std::size_t stride : {std::size_t(1), std::size_t(2)}) {
    nn::ParameterStore<T> store;
    nn::Conv2d<T> conv(store, "r", {5, 9, 3, stride}, CounterRng(21));
    Tensor4<T> x = xt::empty<T>({3, 5, 11, 11}), y, yr, yi;
    const CounterRng rng(22);
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = T(rng.normal(i));
    conv.infer(x, y);
    Tensor4<T> r = xt::empty<T>(std::array<std::size_t, 4>{y.shape()[0], y.shape()[1], y.shape()[2], y.shape()[3]});
    for (std::size_t i = 0; i < r.size(); ++i) r.data()[i] = T(rng.normal(1000 + i));
    conv.forward(x, yr, &r);
    conv.infer(x, yi, &r);
    for (std::size_t i = 0; i < y.size(); ++i) {
      CHECK(yr.data()[i] == y.data()[i] + r.data()[i]);
      CHECK(yi.data()[i] == yr.data()[i]);
    }
    CHECK_THROWS_AS(conv.infer(x, yi, &x), ShapeError);   // wrong shape
    CHECK_THROWS_AS(conv.infer(x, yi, &yi), ShapeError);  // the output itself
  }
}

TEST_CASE("Conv2d by Winograd F(4x4, 3x3) matches the direct path and a double reference", "[conv][winograd]") {
  SCOREOOD_FOR_EACH_CPU_TIER();
  if (!SCOREOOD_CPU_DISPATCH(k::winograd::available())) SUCCEED("no Winograd kernel on this tier");
  if (!SCOREOOD_CPU_DISPATCH(k::winograd::available())) return;
  struct Case {
    Shape4 in;
    std::size_t out;
    bool bias;
    std::size_t dilation = 1;
  };
  // The SmallUNet shapes, sizes that are not a multiple of the 4x4 tile, a single tile, rows wider
  // than one vector of tiles (t0 > 0 in the phase split and the interleave), and batches larger
  // than one GEMM group (28x28: 2 images per group; 7x7: dozens). Dilated ones (the forward only,
  // on the AVX2 tier, planes wider than one tile) run on d x d phase planes: NcsnRefineNet's
  // (dilation 2 and 4 at 14x14; 4 has one-tile planes), sizes that d does not divide (phases of
  // two sizes), planes one row high, and an image less than d high (empty phases).
  const std::vector<Case> cases = {
      {{5, 32, 28, 28}, 32, true},   {{3, 64, 14, 14}, 64, false},  {{50, 16, 7, 7}, 8, true},
      {{4, 8, 5, 9}, 12, true},      {{2, 9, 1, 1}, 8, false},      {{2, 8, 3, 70}, 8, true},
      {{3, 8, 33, 6}, 10, true},     {{130, 8, 2, 3}, 9, false},    {{3, 16, 14, 14}, 16, true, 2},
      {{5, 8, 14, 14}, 12, false, 4}, {{3, 8, 13, 11}, 8, true, 2}, {{2, 9, 10, 17}, 8, true, 3},
      {{2, 8, 9, 21}, 8, false, 4},  {{3, 8, 3, 22}, 10, true, 2},  {{2, 8, 2, 40}, 9, true, 3}};
  std::uint64_t seed = 300;
  for (const auto& c : cases) {
    INFO("x " << to_string(c.in) << " out " << c.out << (c.bias ? " bias" : "") << " dilation " << c.dilation);
    nn::ParameterStore<float> store;
    nn::Conv2d<float> conv(store, "w", {c.in[1], c.out, 3, 1, -1, c.dilation, c.bias}, CounterRng(31, seed));
    if (c.dilation == 1) REQUIRE(conv.uses_winograd(c.in));
    else
      REQUIRE(conv.forward_uses_winograd(c.in) ==
              (cpu::isa::active() == cpu::isa::Tier::avx2 && (c.in[3] + c.dilation - 1) / c.dilation > 4));
    Tensor4<float> x = xt::empty<float>(c.in);
    fill_normal(x, CounterRng(32, seed));
    const Shape4 os = conv.output_shape(c.in);
    Tensor4<float> res = xt::empty<float>(os), dy = xt::empty<float>(os);
    fill_normal(res, CounterRng(33, seed));
    fill_normal(dy, CounterRng(34, seed++));

    // Forward, with and without a residual; backward-data and weight gradients.
    Tensor4<float> yw, ywr, dxw, yd, dxd;
    conv.forward(x, yw);
    conv.infer(x, ywr, &res);
    conv.backward(dy, dxw);
    const std::vector<float> gw(store.grads().begin(), store.grads().end());
    store.zero_grad();
    conv.set_algorithm(nn::Conv2d<float>::Algorithm::direct);
    REQUIRE_FALSE(conv.forward_uses_winograd(c.in));
    conv.forward(x, yd);
    conv.backward(dy, dxd);
    const Tensor4<double> ref = naive_forward(x, conv);
    Tensor4<double> rdx;
    std::vector<double> rdw, rdb;
    naive_backward(x, dy, conv, rdx, rdw, rdb);

    // Errors relative to the typical magnitude (sqrt(9 * in) for unit normals): float rounding of
    // the direct path is ~1e-7 of it, Winograd's transforms (constants up to 8 and 1/24) ~1e-6.
    const double scale_y = std::sqrt(9.0 * double(c.in[1])), scale_dx = std::sqrt(9.0 * double(c.out));
    CHECK(max_abs_diff(yw.data(), ref.data(), yw.size()) < 2e-5 * scale_y);
    CHECK(max_abs_diff(yd.data(), ref.data(), yd.size()) < 2e-6 * scale_y);
    CHECK(max_abs_diff(yw.data(), yd.data(), yw.size()) < 2e-5 * scale_y);
    CHECK(max_abs_diff(dxw.data(), rdx.data(), dxw.size()) < 2e-5 * scale_dx);
    CHECK(max_abs_diff(dxw.data(), dxd.data(), dxw.size()) < 2e-5 * scale_dx);
    // Weight gradients (sums over the batch): within 1e-5 of their largest magnitude (measured
    // ~2e-6 by Winograd; 0.2e-6 to 1.4e-6 on the direct paths, whose float sums run longer
    // with 16+ output channels, on phase planes).
    double wmax = 0;
    for (const double v : rdw) wmax = std::max(wmax, std::abs(v));
    CHECK(max_abs_diff(gw.data(), rdw.data(), rdw.size()) < 1e-5 * wmax);
    CHECK(max_abs_diff(store.grad_data(), rdw.data(), rdw.size()) < 5e-6 * wmax);
    if (c.bias) CHECK(max_abs_diff(gw.data() + rdw.size(), rdb.data(), rdb.size()) < 1e-5 * wmax);
    // The residual is added to the very same float result.
    bool exact = true;
    for (std::size_t i = 0; i < yw.size(); ++i) exact = exact && ywr.data()[i] == yw.data()[i] + res.data()[i];
    CHECK(exact);
  }
}

TEST_CASE("Conv2d takes Winograd only where it applies", "[conv][winograd]") {
  nn::ParameterStore<float> store;
  const CounterRng r(41);
  SCOREOOD_FOR_EACH_CPU_TIER();
  const bool native = SCOREOOD_CPU_DISPATCH(k::winograd::available());
  CHECK(nn::Conv2d<float>(store, "a", {8, 8, 3}, r).uses_winograd({1, 8, 9, 9}) == native);
  CHECK_FALSE(nn::Conv2d<float>(store, "b", {8, 8, 3, 2}, r).uses_winograd({1, 8, 9, 9}));          // stride 2
  CHECK(nn::Conv2d<float>(store, "a1", {8, 8, 3}, r).forward_uses_winograd({1, 8, 9, 9}) == native);
  // Dilated "same" convolutions: the forward on phase planes, on the AVX2 tier only.
  const nn::Conv2d<float> dilated(store, "c", {8, 8, 3, 1, -1, 2}, r);
  CHECK_FALSE(dilated.uses_winograd({1, 8, 9, 9}));
  CHECK(dilated.forward_uses_winograd({1, 8, 9, 9}) == (cpu::isa::active() == cpu::isa::Tier::avx2));
  CHECK_FALSE(nn::Conv2d<float>(store, "c1", {8, 8, 3, 1, 1, 2}, r).forward_uses_winograd({1, 8, 9, 9}));  // padding 1 < 2
  CHECK_FALSE(nn::Conv2d<float>(store, "d", {8, 8, 3, 1, 0}, r).uses_winograd({1, 8, 9, 9}));       // padding 0
  CHECK_FALSE(nn::Conv2d<float>(store, "e", {8, 8, 5}, r).uses_winograd({1, 8, 9, 9}));            // 5x5
  CHECK_FALSE(nn::Conv2d<float>(store, "f", {1, 32, 3}, r).uses_winograd({1, 1, 9, 9}));           // 1 channel in
  CHECK_FALSE(nn::Conv2d<float>(store, "g", {32, 1, 3}, r).uses_winograd({1, 32, 9, 9}));          // 1 channel out
  nn::ParameterStore<double> dstore;
  CHECK_FALSE(nn::Conv2d<double>(dstore, "h", {8, 8, 3}, CounterRng(42)).uses_winograd({1, 8, 9, 9}));  // double
}
