// Parameter-free layers (ELU, AvgPool2d, MeanPool2x2, nearest and bilinear
// resizing) and the element-wise helpers: PyTorch values, finite differences,
// adjointness, error cases.
#include <catch2/catch.hpp>
#include <scoreood/cpu/elementwise.hpp>
#include <scoreood/nn/layers/elu.hpp>
#include <scoreood/nn/layers/pooling.hpp>
#include <scoreood/nn/layers/upsample.hpp>

#include "gradcheck.hpp"
#include "refdata.hpp"

#include <cmath>
#include <string>

using namespace scoreood;
using scoreood::testing::fill_normal;

namespace {

const std::map<std::string, testing::RefArray>& refs() {
  static const auto r = testing::load_refdata(std::string(SCOREOOD_TEST_DATA_DIR) + "/conv_refs.txt");
  return r;
}

template <class T>
Tensor4<T> ref_tensor(const std::string& key, double scale = 1.0) {
  const auto& a = refs().at(key);
  REQUIRE(a.shape.size() == 4);
  Tensor4<T> t = xt::empty<T>({a.shape[0], a.shape[1], a.shape[2], a.shape[3]});
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = T(scale * a.values[i]);
  return t;
}

template <class A, class B>
double max_abs_diff(const A& a, const B& b) {
  REQUIRE(shape_of(a) == shape_of(b));
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
  return m;
}

/// Forward and backward of `layer` on a stored PyTorch case, in T.
template <class T, class Layer>
void check_against_torch(Layer& layer, const std::string& name, double x_scale = 1.0) {
  INFO(name);
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-13;
  const Tensor4<T> x = ref_tensor<T>(name + ".x", x_scale), dy = ref_tensor<T>(name + ".dy");
  Tensor4<T> y, dx;
  layer.forward(x, y);
  CHECK(max_abs_diff(y, ref_tensor<double>(name + ".y")) < tol * 4);
  layer.backward(dy, dx);
  CHECK(max_abs_diff(dx, ref_tensor<double>(name + ".dx")) < tol * 8);
}

template <class Layer>
testing::GradCheckReport gradcheck_layer(Layer& layer, const Shape4& in, std::uint64_t seed, double shift = 0.0) {
  Tensor4<double> x = xt::empty<double>(in);
  fill_normal(x, CounterRng(31, seed));
  x += shift;
  return testing::gradcheck([&](const Tensor4<double>& xi, Tensor4<double>& y) { layer.forward(xi, y); },
                            [&](const Tensor4<double>& dy, Tensor4<double>& dx) { layer.backward(dy, dx); }, x);
}

}  // namespace

TEMPLATE_TEST_CASE("Elu matches PyTorch F.elu", "[layers][elu][torch]", float, double) {
  nn::Elu<TestType> elu;
  check_against_torch<TestType>(elu, "elu");
}

TEST_CASE("Elu passes finite differences and works in place", "[layers][elu][grad]") {
  nn::Elu<double> elu;
  for (std::uint64_t s = 0; s < 4; ++s) {
    const auto rep = gradcheck_layer(elu, {2, 3, 5, 4}, s, s == 0 ? 0.0 : 0.5 * double(s) - 1.0);
    INFO(rep.str());
    CHECK(rep.max_rel < 1e-6);
  }
  nn::Elu<double> alpha2(2.0);
  const auto rep = gradcheck_layer(alpha2, {1, 2, 3, 3}, 9);
  INFO(rep.str());
  CHECK(rep.max_rel < 1e-6);

  // In place: x and y the same tensor, then dx and dy the same tensor.
  Tensor4<float> x = xt::empty<float>({1, 2, 4, 4});
  fill_normal(x, CounterRng(5));
  Tensor4<float> y, dy = xt::ones<float>({1, 2, 4, 4}), dx;
  nn::Elu<float> a, b;
  a.forward(x, y);
  a.backward(dy, dx);
  Tensor4<float> z = x;
  b.forward(z, z);
  CHECK(max_abs_diff(z, y) == 0.0);
  b.backward(dy, dy);
  CHECK(max_abs_diff(dy, dx) == 0.0);
  // Large inputs do not overflow; large negative ones saturate at -alpha.
  Tensor4<float> big = xt::empty<float>({1, 1, 1, 3});
  big(0, 0, 0, 0) = 100.f;
  big(0, 0, 0, 1) = -100.f;
  big(0, 0, 0, 2) = 0.f;
  a.infer(big, y);
  CHECK(y(0, 0, 0, 0) == 100.f);
  CHECK(y(0, 0, 0, 1) == -1.f);
  CHECK(y(0, 0, 0, 2) == 0.f);
}

TEMPLATE_TEST_CASE("AvgPool2d matches PyTorch F.avg_pool2d", "[layers][pool][torch]", float, double) {
  for (const std::string name : {"avgpool_5_1_2", "avgpool_5_1_2_nopad", "avgpool_3_2_1", "avgpool_2_2_0"}) {
    const auto& sp = refs().at(name + ".spec").values;
    nn::AvgPool2d<TestType> pool{std::size_t(sp[0]), std::size_t(sp[1]), std::size_t(sp[2]), sp[3] != 0};
    check_against_torch<TestType>(pool, name);
  }
}

TEST_CASE("AvgPool2d passes finite differences (NCSN 5x5/1/2 and others)", "[layers][pool][grad]") {
  struct C {
    std::size_t k, s, p;
    bool cip;
    Shape4 in;
  };
  for (const C& c : {C{5, 1, 2, true, {2, 3, 7, 6}}, C{5, 1, 2, false, {1, 2, 5, 9}}, C{3, 2, 1, true, {1, 2, 9, 8}},
                     C{2, 0, 0, true, {2, 1, 5, 7}}, C{3, 3, 1, false, {1, 1, 8, 8}}}) {
    nn::AvgPool2d<double> pool(c.k, c.s, c.p, c.cip);
    const auto rep = gradcheck_layer(pool, c.in, c.k * 10 + c.s);
    INFO("k" << c.k << " s" << c.s << " p" << c.p << " cip " << c.cip);
    INFO(rep.str());
    CHECK(rep.max_rel < 1e-6);
  }
  nn::AvgPool2d<double> def(3);
  CHECK(def.spec().stride == 3);
  CHECK(def.output_shape({1, 1, 10, 9}) == Shape4{1, 1, 3, 3});
}

TEMPLATE_TEST_CASE("MeanPool2x2 matches NCSN's ConvMeanPool formula", "[layers][pool][torch]", float, double) {
  nn::MeanPool2x2<TestType> pool;
  check_against_torch<TestType>(pool, "meanpool");
}

TEST_CASE("MeanPool2x2 passes finite differences, odd sizes drop the last row/column", "[layers][pool][grad]") {
  nn::MeanPool2x2<double> pool;
  for (const Shape4 in : {Shape4{2, 3, 6, 4}, Shape4{1, 2, 7, 5}}) {
    const auto rep = gradcheck_layer(pool, in, in[2]);
    INFO(rep.str());
    CHECK(rep.max_rel < 1e-6);
  }
  CHECK(pool.output_shape({1, 1, 7, 5}) == Shape4{1, 1, 3, 2});
  // Equal to AvgPool2d(2) on every size.
  nn::AvgPool2d<double> avg(2);
  Tensor4<double> x = xt::empty<double>({2, 2, 7, 9}), a, b;
  fill_normal(x, CounterRng(8));
  pool.infer(x, a);
  avg.infer(x, b);
  CHECK(max_abs_diff(a, b) < 1e-15);
}

TEMPLATE_TEST_CASE("UpsampleBilinear matches PyTorch F.interpolate", "[layers][upsample][torch]", float, double) {
  struct C {
    const char* name;
    std::size_t h, w;
    bool ac;
  };
  for (const C& c : {C{"bilinear_up_ac", 9, 11, true}, C{"bilinear_up", 9, 11, false},
                     C{"bilinear_down_ac", 3, 4, true}, C{"bilinear_down", 3, 4, false},
                     C{"bilinear_odd_ac", 14, 13, true}}) {
    nn::UpsampleBilinear<TestType> up(c.h, c.w, c.ac);
    check_against_torch<TestType>(up, c.name);
  }
}

TEMPLATE_TEST_CASE("UpsampleNearest matches PyTorch F.interpolate", "[layers][upsample][torch]", float, double) {
  struct C {
    const char* name;
    std::size_t h, w;
  };
  for (const C& c : {C{"nearest_up", 11, 9}, C{"nearest_down", 3, 4}, C{"nearest_x2", 10, 14}}) {
    nn::UpsampleNearest<TestType> up(c.h, c.w);
    check_against_torch<TestType>(up, c.name);
  }
}

TEST_CASE("Resizing layers pass finite differences", "[layers][upsample][grad]") {
  for (bool ac : {true, false})
    for (const auto& [in, oh, ow] : {std::tuple{Shape4{2, 2, 7, 7}, 14ul, 14ul}, std::tuple{Shape4{1, 3, 14, 14}, 28ul, 28ul},
                                     std::tuple{Shape4{1, 2, 5, 6}, 3ul, 8ul}, std::tuple{Shape4{1, 1, 1, 4}, 3ul, 5ul}}) {
      nn::UpsampleBilinear<double> up(oh, ow, ac);
      const auto rep = gradcheck_layer(up, in, oh * 100 + ow);
      INFO(to_string(in) << " -> " << oh << "x" << ow << " align_corners " << ac);
      INFO(rep.str());
      CHECK(rep.max_rel < 1e-6);
    }
  nn::UpsampleNearest<double> near(9, 5);
  const auto rep = gradcheck_layer(near, {2, 2, 4, 3}, 3);
  INFO(rep.str());
  CHECK(rep.max_rel < 1e-6);
}

TEST_CASE("Bilinear align_corners=True keeps the corners and is exact on linear ramps", "[layers][upsample]") {
  Tensor4<double> x = xt::empty<double>({1, 1, 7, 7}), y;
  for (std::size_t i = 0; i < 7; ++i)
    for (std::size_t j = 0; j < 7; ++j) x(0, 0, i, j) = 2.0 * double(i) - 3.0 * double(j);
  nn::UpsampleBilinear<double> up(28, 13, true);
  up.infer(x, y);
  CHECK(y(0, 0, 0, 0) == x(0, 0, 0, 0));
  CHECK(y(0, 0, 27, 12) == Approx(x(0, 0, 6, 6)).margin(1e-12).epsilon(0));
  for (std::size_t i = 0; i < 28; ++i)
    for (std::size_t j = 0; j < 13; ++j)
      CHECK(y(0, 0, i, j) == Approx(2.0 * (double(i) * 6 / 27) - 3.0 * (double(j) * 6 / 12)).margin(1e-12).epsilon(0));
}

TEST_CASE("Parameter-free layers reject bad use", "[layers][errors]") {
  using Catch::Matchers::Contains;
  CHECK_THROWS_AS(nn::AvgPool2d<float>(0), ValueError);
  CHECK_THROWS_WITH(nn::AvgPool2d<float>(3, 1, 2), Contains("padding"));
  CHECK_THROWS_AS(nn::UpsampleBilinear<float>(0, 4, true), ValueError);
  nn::AvgPool2d<float> pool(5, 1, 2);
  nn::MeanPool2x2<float> mp;
  nn::Elu<float> elu;
  nn::UpsampleBilinear<float> up(8, 8, true);
  Tensor4<float> x = xt::zeros<float>({1, 1, 1, 1}), y, dx;
  CHECK_THROWS_WITH(mp.infer(x, y), Contains("smaller than 2x2"));
  Tensor4<float> dy = xt::zeros<float>({1, 1, 4, 4});
  CHECK_THROWS_WITH(pool.backward(dy, dx), Contains("without a training forward"));
  CHECK_THROWS_WITH(elu.backward(dy, dx), Contains("without a training forward"));
  CHECK_THROWS_WITH(up.backward(dy, dx), Contains("without a training forward"));
  Tensor4<float> x4 = xt::zeros<float>({1, 1, 4, 4});
  pool.forward(x4, y);
  Tensor4<float> wrong = xt::zeros<float>({1, 1, 3, 4});
  CHECK_THROWS_AS(pool.backward(wrong, dx), ShapeError);
  up.forward(x4, y);
  CHECK_THROWS_WITH(up.backward(wrong, dx), Contains("expected [1, 1, 8, 8]"));
}

TEST_CASE("Element-wise helpers", "[cpu][elementwise]") {
  // Large enough to take the threaded path (> 64k elements).
  Tensor4<float> a = xt::empty<float>({3, 7, 80, 90}), b = xt::empty<float>({3, 7, 80, 90}), c;
  fill_normal(a, CounterRng(1));
  fill_normal(b, CounterRng(2));
  const Tensor4<float> a0 = a;
  cpu::add(a, b, c);
  CHECK(max_abs_diff(c, Tensor4<float>(a0 + b)) == 0.0);
  cpu::add_inplace(a, b);
  CHECK(max_abs_diff(a, c) == 0.0);
  cpu::axpy(-2.0f, b, a);
  CHECK(max_abs_diff(a, Tensor4<float>(a0 - b)) < 1e-5);
  cpu::scale_inplace(a, 0.5f);
  CHECK(max_abs_diff(a, Tensor4<float>(0.5f * (a0 - b))) < 1e-5);
  cpu::copy(b, c);
  CHECK(max_abs_diff(b, c) == 0.0);
  cpu::zeros(c, {1, 2, 3, 4});
  CHECK(shape_of(c) == Shape4{1, 2, 3, 4});
  CHECK(xt::amax(xt::abs(c))() == 0.0f);
  Tensor4<float> small = xt::zeros<float>({1, 2, 3, 3});
  CHECK_THROWS_WITH(cpu::add_inplace(a, small), Catch::Matchers::Contains("add_inplace"));
}

TEMPLATE_TEST_CASE("UpsampleNearest adds a residual in the same pass", "[layers][upsample]", float, double) {
  using T = TestType;
  nn::UpsampleNearest<T> up(10, 14);
  Tensor4<T> x = xt::empty<T>({std::size_t(3), std::size_t(4), std::size_t(5), std::size_t(7)});
  Tensor4<T> r = xt::empty<T>({std::size_t(3), std::size_t(4), std::size_t(10), std::size_t(14)});
  const CounterRng rng(31, 0);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = T(rng.normal(i));
  for (std::size_t i = 0; i < r.size(); ++i) r.data()[i] = T(rng.normal(x.size() + i));
  Tensor4<T> plain, fused, inferred;
  up.infer(x, plain);
  up.forward(x, fused, &r);
  up.infer(x, inferred, &r);
  REQUIRE(shape_of(fused) == shape_of(plain));
  for (std::size_t i = 0; i < plain.size(); ++i) {
    CHECK(fused.data()[i] == plain.data()[i] + r.data()[i]);
    CHECK(inferred.data()[i] == fused.data()[i]);
  }
  Tensor4<T> wrong = xt::zeros<T>({std::size_t(3), std::size_t(4), std::size_t(10), std::size_t(13)});
  CHECK_THROWS_AS(up.infer(x, inferred, &wrong), ShapeError);
  CHECK_THROWS_AS(up.infer(x, inferred, &inferred), ShapeError);
}

TEMPLATE_TEST_CASE("UpsampleNearest (x2 fast path and general) equals the plain index formula, forward and adjoint",
                   "[layers][upsample]", float, double) {
  using T = TestType;
  // (H, W) -> (OH, OW): exact doubling with row widths below, at and above 8/16 lanes, and general sizes.
  for (const auto& [H, W, OH, OW] : {std::tuple{7ul, 7ul, 14ul, 14ul}, std::tuple{14ul, 14ul, 28ul, 28ul},
                                     std::tuple{1ul, 1ul, 2ul, 2ul}, std::tuple{3ul, 9ul, 6ul, 18ul},
                                     std::tuple{2ul, 20ul, 4ul, 40ul}, std::tuple{5ul, 8ul, 10ul, 16ul},
                                     std::tuple{7ul, 7ul, 15ul, 14ul}, std::tuple{4ul, 6ul, 8ul, 11ul}}) {
    INFO(H << "x" << W << " -> " << OH << "x" << OW);
    const Shape4 in{2, 3, H, W}, out{2, 3, OH, OW};
    Tensor4<T> x = xt::empty<T>(in), r = xt::empty<T>(out), g = xt::empty<T>(out);
    fill_normal(x, CounterRng(41, H * 100 + OW));
    fill_normal(r, CounterRng(42, H * 100 + OW));
    fill_normal(g, CounterRng(43, H * 100 + OW));
    nn::UpsampleNearest<T> up(OH, OW);
    Tensor4<T> y, ys, dx;
    up.infer(x, y);
    up.forward(x, ys, &r);
    up.backward(g, dx);
    Tensor4<double> want_dx = xt::zeros<double>(in);
    for (std::size_t n = 0; n < 2; ++n)
      for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t oy = 0; oy < OH; ++oy)
          for (std::size_t ox = 0; ox < OW; ++ox) {
            // PyTorch's nearest source index: floor(o * (float)in / out)
            const std::size_t iy = std::min(std::size_t(std::floor(float(oy) * (float(H) / float(OH)))), H - 1);
            const std::size_t ix = std::min(std::size_t(std::floor(float(ox) * (float(W) / float(OW)))), W - 1);
            CHECK(y(n, c, oy, ox) == x(n, c, iy, ix));
            CHECK(ys(n, c, oy, ox) == x(n, c, iy, ix) + r(n, c, oy, ox));
            want_dx(n, c, iy, ix) += double(g(n, c, oy, ox));
          }
    const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
    CHECK(max_abs_diff(dx, want_dx) <= tol);
  }
}
