#include "gradcheck.hpp"
#include "refdata.hpp"

#include <catch2/catch.hpp>
#include <scoreood/nn/layers/instance_norm.hpp>

#include <cmath>
#include <type_traits>
#include <vector>

using namespace scoreood;
using scoreood::testing::fill_normal;
using scoreood::testing::gradcheck;

namespace {

Tensor4<double> tensor_from(const testing::RefArray& a) {
  REQUIRE(a.shape.size() == 4);
  Tensor4<double> t = xt::empty<double>({a.shape[0], a.shape[1], a.shape[2], a.shape[3]});
  std::copy(a.values.begin(), a.values.end(), t.data());
  return t;
}

double max_abs_diff(const double* a, const double* b, std::size_t n) {
  double m = 0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

/// Input whose channels have distinct means and scales, so the "++" term matters.
Tensor4<double> shifted_input(std::size_t N, std::size_t C, std::size_t H, std::size_t W, std::uint64_t seed) {
  Tensor4<double> x = xt::empty<double>({N, C, H, W});
  fill_normal(x, CounterRng(seed, 1));
  CounterRng r(seed, 2);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t c = 0; c < C; ++c) {
      const double off = 2.0 * r.normal(2 * (n * C + c)), sc = 0.5 + r.uniform(2 * (n * C + c) + 1);
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t w = 0; w < W; ++w) x(n, c, h, w) = x(n, c, h, w) * sc + off;
    }
  return x;
}

/// Central differences with step 1e-5 (truncation ~1e-10) and an error floor
/// of 1e-3: the gradients here are O(0.1..10), and an entry near zero (1x1
/// planes, where the output hardly depends on x) cannot be resolved to a
/// relative 1e-6 by any finite difference; the norm-wise error is checked too.
testing::GradCheckOptions gc_options() {
  testing::GradCheckOptions o;
  o.eps = 1e-5;
  o.floor = 1e-3;
  return o;
}

/// Moves parameters away from the N(1, 0.02) init so every term has weight.
void perturb_params(nn::ParameterStore<double>& store, std::uint64_t seed) {
  CounterRng r(seed, 9);
  auto v = store.values();
  for (std::size_t i = 0; i < v.size(); ++i) v[i] += 0.4 * r.normal(i);
}

}  // namespace

TEST_CASE("CIN++ forward and backward match the PyTorch reference", "[norm]") {
  const auto ref = testing::load_refdata(SCOREOOD_TEST_DATA_DIR "/norm_refs.txt");
  const Tensor4<double> x = tensor_from(ref.at("cin_x"));
  const auto& emb = ref.at("cin_embed");
  const std::size_t L = emb.shape[0], C = x.shape()[1];
  std::vector<int> levels;
  for (double v : ref.at("cin_levels").values) levels.push_back(int(v));

  nn::ParameterStore<double> store;
  nn::CondInstanceNormPlusPlus<double> cin(store, "cin", C, L, CounterRng(1));
  REQUIRE(store.entries().at(0).shape == std::vector<std::size_t>{L, 3 * C});
  std::copy(emb.values.begin(), emb.values.end(), cin.embed().value());

  Tensor4<double> y, y2, dx;
  cin.forward(x, levels, y);
  const auto& yref = ref.at("cin_y").values;
  CHECK(max_abs_diff(y.data(), yref.data(), y.size()) < 1e-12);
  cin.infer(x, levels, y2);
  CHECK(max_abs_diff(y.data(), y2.data(), y.size()) == 0.0);

  const Tensor4<double> r = tensor_from(ref.at("cin_r"));
  store.zero_grad();
  cin.backward(r, dx);
  CHECK(max_abs_diff(dx.data(), ref.at("cin_dx").values.data(), dx.size()) < 1e-11);
  CHECK(max_abs_diff(cin.embed().grad(), ref.at("cin_dembed").values.data(), cin.embed().size) < 1e-11);
  // Levels not in the batch get no gradient.
  for (std::size_t j = 0; j < 3 * C; ++j) CHECK(cin.embed().grad()[1 * 3 * C + j] == 0.0);

  SECTION("without bias") {
    nn::ParameterStore<double> s2;
    nn::CondInstanceNormPlusPlus<double> nb(s2, "nb", C, L, CounterRng(2), /*bias=*/false);
    const auto& e2 = ref.at("cinnb_embed");
    REQUIRE(nb.embed().size == e2.values.size());
    std::copy(e2.values.begin(), e2.values.end(), nb.embed().value());
    nb.forward(x, levels, y);
    CHECK(max_abs_diff(y.data(), ref.at("cinnb_y").values.data(), y.size()) < 1e-12);
  }
}

TEST_CASE("IN++ forward and backward match the PyTorch reference", "[norm]") {
  const auto ref = testing::load_refdata(SCOREOOD_TEST_DATA_DIR "/norm_refs.txt");
  const Tensor4<double> x = tensor_from(ref.at("in_x"));
  const std::size_t C = x.shape()[1];
  nn::ParameterStore<double> store;
  nn::InstanceNormPlusPlus<double> in(store, "in", C, CounterRng(3));
  REQUIRE(store.entries().size() == 3);
  CHECK(store.entries()[0].name == "in.alpha");
  CHECK(store.entries()[1].name == "in.gamma");
  CHECK(store.entries()[2].name == "in.beta");
  auto put = [&](std::size_t k, const char* key) {
    const auto& a = ref.at(key).values;
    std::copy(a.begin(), a.end(), store.value_data() + store.entries()[k].offset);
  };
  put(0, "in_alpha");
  put(1, "in_gamma");
  put(2, "in_beta");
  Tensor4<double> y, dx;
  in.forward(x, y);
  CHECK(max_abs_diff(y.data(), ref.at("in_y").values.data(), y.size()) < 1e-12);
  store.zero_grad();
  in.backward(tensor_from(ref.at("in_r")), dx);
  CHECK(max_abs_diff(dx.data(), ref.at("in_dx").values.data(), dx.size()) < 1e-11);
  const char* keys[] = {"in_dalpha", "in_dgamma", "in_dbeta"};
  for (std::size_t k = 0; k < 3; ++k)
    CHECK(max_abs_diff(store.grad_data() + store.entries()[k].offset, ref.at(keys[k]).values.data(), C) < 1e-11);
}

TEST_CASE("CIN++ gradients match finite differences", "[norm][gradcheck]") {
  struct Case {
    std::size_t N, C, H, W, L;
    std::vector<int> levels;
    bool bias;
  };
  const std::vector<Case> cases = {
      {1, 2, 1, 1, 3, {2}, true},              // batch 1, 1x1 planes, the smallest legal C
      {1, 3, 5, 7, 10, {9}, true},             // batch 1, odd sizes
      {4, 5, 3, 4, 4, {1, 3, 1, 0}, true},     // mixed levels, one repeated
      {3, 4, 6, 5, 2, {0, 1, 1}, false},       // no bias
      {2, 7, 9, 3, 10, {5, 5}, true},          // same level twice: gradients accumulate
  };
  std::uint64_t seed = 100;
  for (const auto& k : cases) {
    CAPTURE(k.N, k.C, k.H, k.W, k.bias);
    nn::ParameterStore<double> store;
    nn::CondInstanceNormPlusPlus<double> cin(store, "cin", k.C, k.L, CounterRng(seed), k.bias);
    perturb_params(store, seed);
    auto x = shifted_input(k.N, k.C, k.H, k.W, ++seed);
    const auto rep = gradcheck([&](const Tensor4<double>& in, Tensor4<double>& y) { cin.forward(in, k.levels, y); },
                               [&](const Tensor4<double>& dy, Tensor4<double>& dx) { cin.backward(dy, dx); }, x, &store,
                               gc_options());
    INFO(rep.str());
    CHECK(rep.max_rel < 1e-6);
    if (k.H * k.W > 1) CHECK(rep.norm_rel < 1e-8);  // 1x1: the input gradient is ~1e-6, all round-off
  }
}

TEST_CASE("IN++ gradients match finite differences", "[norm][gradcheck]") {
  for (bool bias : {true, false}) {
    for (auto [N, C, H, W] : std::vector<std::array<std::size_t, 4>>{{1, 3, 5, 5}, {3, 6, 4, 7}, {2, 2, 1, 3}}) {
      CAPTURE(bias, N, C, H, W);
      nn::ParameterStore<double> store;
      nn::InstanceNormPlusPlus<double> in(store, "in", C, CounterRng(7), bias);
      perturb_params(store, 7 + N);
      auto x = shifted_input(N, C, H, W, 50 + C);
      const auto rep = gradcheck([&](const Tensor4<double>& v, Tensor4<double>& y) { in.forward(v, y); },
                                 [&](const Tensor4<double>& dy, Tensor4<double>& dx) { in.backward(dy, dx); }, x,
                                 &store, gc_options());
      INFO(rep.str());
      CHECK(rep.max_rel < 1e-6);
      CHECK(rep.norm_rel < 1e-8);
    }
  }
}

TEST_CASE("CIN++ in float agrees with double, also for planes with a large mean", "[norm]") {
  const std::size_t N = 3, C = 8, H = 28, W = 28, L = 10;
  const std::vector<int> levels = {0, 9, 4};
  nn::ParameterStore<double> sd;
  nn::ParameterStore<float> sf;
  nn::CondInstanceNormPlusPlus<double> cd(sd, "n", C, L, CounterRng(5));
  nn::CondInstanceNormPlusPlus<float> cf(sf, "n", C, L, CounterRng(5));
  for (std::size_t i = 0; i < sd.count(); ++i) CHECK(float(sd.values()[i]) == sf.values()[i]);
  Tensor4<double> xd = shifted_input(N, C, H, W, 77);
  xd += 1000.0;  // a one-pass sum of squares without the shift would lose every digit here
  Tensor4<float> xf = xt::cast<float>(xd);
  Tensor4<double> yd, dxd;
  Tensor4<float> yf, dxf;
  cd.forward(xd, levels, yd);
  cf.forward(xf, levels, yf);
  double err = 0;
  for (std::size_t i = 0; i < yd.size(); ++i) err = std::max(err, std::abs(double(yf.data()[i]) - yd.data()[i]));
  CHECK(err < 2e-3);  // the float input itself is rounded at 1000 +- 6e-5
  Tensor4<double> gd = shifted_input(N, C, H, W, 78);
  Tensor4<float> gf = xt::cast<float>(gd);
  cd.backward(gd, dxd);
  cf.backward(gf, dxf);
  double gerr = 0, gmax = 0;
  for (std::size_t i = 0; i < dxd.size(); ++i) {
    gerr = std::max(gerr, std::abs(double(dxf.data()[i]) - dxd.data()[i]));
    gmax = std::max(gmax, std::abs(dxd.data()[i]));
  }
  CHECK(gerr < 1e-4 * gmax + 1e-5);
}

TEST_CASE("CIN++ initialisation follows NCSN: gamma, alpha ~ N(1, 0.02), beta = 0", "[norm]") {
  nn::ParameterStore<float> store;
  const std::size_t C = 64, L = 10;
  nn::CondInstanceNormPlusPlus<float> cin(store, "n", C, L, CounterRng(11));
  double s = 0, s2 = 0;
  const float* e = cin.embed().value();
  for (std::size_t l = 0; l < L; ++l) {
    for (std::size_t j = 0; j < 2 * C; ++j) {
      s += e[l * 3 * C + j];
      s2 += double(e[l * 3 * C + j]) * e[l * 3 * C + j];
    }
    for (std::size_t j = 2 * C; j < 3 * C; ++j) CHECK(e[l * 3 * C + j] == 0.0f);
  }
  const double n = double(L * 2 * C), mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
  CHECK(mean == Approx(1.0).margin(0.005).epsilon(0));
  CHECK(sd == Approx(0.02).epsilon(0.15));
  // Another seed gives other values.
  nn::ParameterStore<float> other;
  nn::CondInstanceNormPlusPlus<float> cin2(other, "n", C, L, CounterRng(12));
  CHECK(cin2.embed().value()[0] != e[0]);
}

TEST_CASE("CIN++ and IN++ reject bad input with clear messages", "[norm]") {
  nn::ParameterStore<float> store;
  CHECK_THROWS_AS(nn::CondInstanceNormPlusPlus<float>(store, "one", 1, 10, CounterRng(1)), ValueError);
  CHECK_THROWS_AS(nn::InstanceNormPlusPlus<float>(store, "one_in", 1, CounterRng(1)), ValueError);
  CHECK_THROWS_AS(nn::CondInstanceNormPlusPlus<float>(store, "nolevels", 4, 0, CounterRng(1)), ValueError);
  nn::CondInstanceNormPlusPlus<float> cin(store, "res1.norm1", 4, 10, CounterRng(1));
  Tensor4<float> x = xt::zeros<float>({2, 4, 3, 3}), y, dx;
  const std::vector<int> ok = {0, 9}, bad = {0, 10}, neg = {-1, 0}, short_levels = {3};
  CHECK_THROWS_WITH(cin.backward(x, dx), Catch::Contains("res1.norm1") && Catch::Contains("before forward"));
  CHECK_THROWS_WITH(cin.forward(x, bad, y), Catch::Contains("res1.norm1") && Catch::Contains("index 10"));
  CHECK_THROWS_AS(cin.forward(x, neg, y), ValueError);
  CHECK_THROWS_AS(cin.forward(x, short_levels, y), ShapeError);
  Tensor4<float> x5 = xt::zeros<float>({2, 5, 3, 3});
  CHECK_THROWS_WITH(cin.infer(x5, ok, y), Catch::Contains("5 channels") && Catch::Contains("expects 4"));
  cin.forward(x, ok, y);  // constant planes: finite output (eps keeps 1/sqrt away from infinity)
  for (float v : y) CHECK(std::isfinite(v));
  Tensor4<float> wrong = xt::zeros<float>({2, 4, 3, 2});
  CHECK_THROWS_AS(cin.backward(wrong, dx), ShapeError);
}

TEMPLATE_TEST_CASE("CIN++ fused with ELU equals the norm followed by the ELU layer", "[norm][elu]", float, double) {
  using T = TestType;
  const std::size_t N = 3, C = 6, H = 9, W = 7, L = 4;
  const std::vector<int> levels = {3, 0, 3};
  nn::ParameterStore<T> s1, s2;
  nn::CondInstanceNormPlusPlus<T> a(s1, "n", C, L, CounterRng(8)), b(s2, "n", C, L, CounterRng(8));
  nn::Elu<T> ea, eb;
  const Tensor4<T> x = xt::cast<T>(shifted_input(N, C, H, W, 91));
  Tensor4<T> ya, yb, yi, dxa, dxb;
  a.forward(x, levels, ya);
  ea.forward(ya, ya);
  b.forward_elu(x, levels, yb, eb);
  b.infer_elu(x, levels, yi, eb);
  REQUIRE(shape_of(yb) == shape_of(ya));
  // The same formula; only the SIMD blocking differs (Eigen's exp on a ragged
  // tail may round differently): a few ulp at most.
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  std::size_t negative = 0;
  for (std::size_t i = 0; i < ya.size(); ++i) {
    CHECK(std::abs(double(yb.data()[i]) - double(ya.data()[i])) <= tol);
    CHECK(std::abs(double(yi.data()[i]) - double(ya.data()[i])) <= tol);
    negative += ya.data()[i] < 0;
  }
  CHECK(negative > ya.size() / 10);  // the ELU's negative branch is exercised
  Tensor4<T> g = xt::cast<T>(shifted_input(N, C, H, W, 92)), ga = g, gb = g;
  ea.backward(ga, ga);
  a.backward(ga, dxa);
  eb.backward(gb, gb);
  b.backward(gb, dxb);
  for (std::size_t i = 0; i < dxa.size(); ++i)
    CHECK(std::abs(double(dxb.data()[i]) - double(dxa.data()[i])) <= 10 * tol * (1 + std::abs(double(dxa.data()[i]))));
  for (std::size_t i = 0; i < s1.count(); ++i)
    CHECK(std::abs(double(s2.grads()[i]) - double(s1.grads()[i])) <= 100 * tol * (1 + std::abs(double(s1.grads()[i]))));
}

TEMPLATE_TEST_CASE("CIN++ backward_elu equals the ELU backward followed by the norm backward", "[norm][elu]", float,
                   double) {
  using T = TestType;
  const std::size_t N = 3, C = 5, H = 6, W = 11, L = 4;  // P = 66: one 16-lane block plus a ragged tail
  const std::vector<int> levels = {1, 3, 1};
  nn::ParameterStore<T> s;
  nn::CondInstanceNormPlusPlus<T> norm(s, "n", C, L, CounterRng(5));
  nn::Elu<T> elu;
  {
    nn::ParameterStore<double> sd;  // perturbed parameters, copied into T
    nn::CondInstanceNormPlusPlus<double> nd(sd, "n", C, L, CounterRng(5));
    perturb_params(sd, 17);
    for (std::size_t i = 0; i < s.count(); ++i) s.values()[i] = T(sd.values()[i]);
  }
  const Tensor4<T> x = xt::cast<T>(shifted_input(N, C, H, W, 93));
  Tensor4<T> y;
  norm.forward_elu(x, levels, y, elu);
  const Tensor4<T> g = xt::cast<T>(shifted_input(N, C, H, W, 94));

  Tensor4<T> g1 = g, dx1, dx2;
  elu.backward(g1, g1);
  norm.backward(g1, dx1);
  const std::vector<T> grads1(s.grads().begin(), s.grads().end());
  s.zero_grad();
  Tensor4<T> g2 = g;
  norm.backward_elu(g2, dx2, elu);
  REQUIRE(shape_of(dx2) == shape_of(dx1));
  // The same operations in the same order: equal up to rounding of fused multiply-adds.
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  for (std::size_t i = 0; i < dx1.size(); ++i) {
    CHECK(std::abs(double(dx2.data()[i]) - double(dx1.data()[i])) <= tol * (1 + std::abs(double(dx1.data()[i]))));
    CHECK(g2.data()[i] == g.data()[i]);  // dy is not written
  }
  for (std::size_t i = 0; i < s.count(); ++i)
    CHECK(std::abs(double(s.grads()[i]) - double(grads1[i])) <= tol * (1 + std::abs(double(grads1[i]))));
  CHECK_THROWS_AS(norm.backward_elu(g2, g2, elu), Error);
  // A residual gradient is added in the same pass: dx = norm/ELU backward + residual.
  const Tensor4<T> res = xt::cast<T>(shifted_input(N, C, H, W, 97));
  Tensor4<T> dx3;
  norm.backward_elu(g, dx3, elu, &res);
  for (std::size_t i = 0; i < dx1.size(); ++i) {
    const double want = double(dx1.data()[i]) + double(res.data()[i]);
    CHECK(std::abs(double(dx3.data()[i]) - want) <= 4 * tol * (1 + std::abs(want)));
  }
  const Tensor4<T> wrong = xt::zeros<T>({N, C, H, W + 1});
  CHECK_THROWS_AS(norm.backward_elu(g, dx3, elu, &wrong), ShapeError);
  CHECK_THROWS_AS(norm.backward_elu(g, dx3, elu, &dx3), ShapeError);
}

TEMPLATE_TEST_CASE("CIN++ keeping its input by reference gives the same outputs and gradients", "[norm][elu]", float,
                   double) {
  using T = TestType;
  const std::size_t N = 4, C = 6, H = 5, W = 9, L = 3;
  const std::vector<int> levels = {2, 0, 2, 1};
  nn::ParameterStore<T> s;
  nn::CondInstanceNormPlusPlus<T> norm(s, "n", C, L, CounterRng(6));
  {
    nn::ParameterStore<double> sd;
    nn::CondInstanceNormPlusPlus<double> nd(sd, "n", C, L, CounterRng(6));
    perturb_params(sd, 19);
    for (std::size_t i = 0; i < s.count(); ++i) s.values()[i] = T(sd.values()[i]);
  }
  nn::Elu<T> elu;
  Tensor4<T> x = xt::cast<T>(shifted_input(N, C, H, W, 95));
  const Tensor4<T> g = xt::cast<T>(shifted_input(N, C, H, W, 96));
  Tensor4<T> y1, y2, dx1, dx2;
  norm.forward_elu(x, levels, y1, elu);  // a normalised copy
  norm.backward_elu(g, dx1, elu);
  const std::vector<T> grads1(s.grads().begin(), s.grads().end());
  s.zero_grad();
  norm.forward_elu(x, levels, y2, elu, true);  // x by reference, xhat recomputed in backward
  norm.backward_elu(g, dx2, elu);
  // xhat is recomputed with the same T operations: identical values.
  for (std::size_t i = 0; i < y1.size(); ++i) CHECK(y2.data()[i] == y1.data()[i]);
  for (std::size_t i = 0; i < dx1.size(); ++i) CHECK(dx2.data()[i] == dx1.data()[i]);
  for (std::size_t i = 0; i < s.count(); ++i) CHECK(s.grads()[i] == grads1[i]);
  // A resized input is reported, not read.
  norm.forward_elu(x, levels, y2, elu, true);
  x.resize({N, C, H + 1, W});
  CHECK_THROWS_WITH(norm.backward_elu(g, dx2, elu), Catch::Contains("resized or freed"));
}
