// Density models against scikit-learn / scipy (tests/reference/make_density_refs.py),
// plus save/load, model selection, collapse repair and error cases.
#include <scoreood/density.hpp>

#include <catch2/catch.hpp>

#include "../reference/ref_file.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace d = scoreood::density;
using scoreood::Matrix;
using scoreood::Vector;
using scoreood::testing::RefArray;
using scoreood::testing::RefCase;

namespace {

const RefCase& ref(const std::string& name) {
  static const auto cases = scoreood::testing::read_ref_file(std::string(SCOREOOD_TEST_DATA_DIR) + "/density_refs.txt");
  for (const auto& c : cases)
    if (c.name == name) return c;
  throw scoreood::Error("no reference case " + name);
}

Matrix<double> matrix(const RefArray& a) {
  Matrix<double> m = xt::empty<double>({a.dim(0), a.dim(1)});
  std::copy(a.values.begin(), a.values.end(), m.begin());
  return m;
}
Vector<double> vec(const RefArray& a) {
  Vector<double> v = xt::empty<double>({a.values.size()});
  std::copy(a.values.begin(), a.values.end(), v.begin());
  return v;
}
/// Bit-identical vectors (a plain bool, so Catch does not decompose xtensor expressions).
bool identical(const Vector<double>& a, const Vector<double>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}
double mean_of(const Vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); }

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const scoreood::Error& e) {
    return e.what();
  }
  return "<no exception>";
}
bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

template <class M>
std::vector<char> saved(const M& m) {
  scoreood::io::ByteWriter w;
  m.save(w);
  return w.bytes();
}
template <class M>
M loaded(const std::vector<char>& bytes, std::size_t len) {
  scoreood::io::ByteReader r(std::span<const char>(bytes.data(), len), "model.bin");
  M m;
  m.load(r);
  return m;
}

Matrix<double> clusters_x() { return matrix(ref("clusters").at("x")); }

}  // namespace

static_assert(d::DensityModel<d::Gmm>);
static_assert(d::DensityModel<d::Gaussian>);
static_assert(d::DensityModel<d::Knn>);
static_assert(!d::DensityModel<int>);
static_assert(!d::DensityModel<d::StandardScaler>);

TEST_CASE("Gmm log-likelihood for given parameters matches sklearn score_samples", "[gmm]") {
  const auto& c = ref("gmm_given");
  const auto& cv = c.at("covariances");
  xt::xtensor<double, 3> covs = xt::empty<double>({cv.dim(0), cv.dim(1), cv.dim(2)});
  std::copy(cv.values.begin(), cv.values.end(), covs.begin());
  d::Gmm g;
  g.set_parameters(vec(c.at("weights")), matrix(c.at("means")), covs,
                   d::StandardScaler(vec(c.at("scaler_mean")), vec(c.at("scaler_scale"))));
  const auto ll = g.log_likelihood(matrix(c.at("x")));
  const auto& want = c.at("loglik").values;
  REQUIRE(ll.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("row " << i);
    CHECK(ll(i) == Approx(want[i]).epsilon(1e-12).margin(1e-6));
  }
  CHECK(*std::min_element(want.begin(), want.end()) < -500);  // the far rows exercise log-sum-exp
  CHECK(xt::allclose(g.weights(), vec(c.at("weights"))));
  CHECK(xt::allclose(g.means(), matrix(c.at("means"))));
  CHECK(xt::allclose(g.covariances(), covs));
  CHECK(g.num_components() == 3);
}

TEST_CASE("Gmm BIC picks sklearn's number of components on 3 separated clusters", "[gmm]") {
  const auto& c = ref("clusters");
  d::GmmOptions opt;
  opt.components = {1, 2, 3, 4, 5, 6};
  d::Gmm g(opt);
  g.fit(clusters_x());
  CHECK(c.at("best_k").scalar() == 3.0);
  CHECK(g.chosen_components() == int(c.at("best_k").scalar()));
  CHECK(g.num_components() == 3);
  const auto& crit = g.criteria();
  REQUIRE(crit.size() == 6);
  const auto& bic = c.at("bic").values;
  for (std::size_t i = 0; i < crit.size(); ++i) CHECK(crit[i].first == int(i + 1));
  // One component: EM is exact after one step, so BIC must agree closely.
  CHECK(crit[0].second == Approx(bic[0]).epsilon(1e-9));
  // Three components: the same optimum as sklearn (2 N * 1e-3 = 1.2 in BIC units).
  CHECK(crit[2].second == Approx(bic[2]).margin(1.2).epsilon(0));
  const auto best = std::min_element(crit.begin(), crit.end(), [](auto a, auto b) { return a.second < b.second; });
  CHECK(best->first == 3);
  CHECK(g.converged());

  // The fitted means are the true cluster centres (standardised with the fitted scaler).
  const double centres[3][4] = {{0, 0, 0, 0}, {8, 8, 0, 0}, {0, 8, 8, 8}};
  const auto mean = g.scaler().mean(), scale = g.scaler().scale();
  const auto means = g.means();
  for (const auto& ctr : centres) {
    double best_d = 1e300;
    for (std::size_t k = 0; k < 3; ++k) {
      double s = 0;
      for (std::size_t j = 0; j < 4; ++j) s += std::pow((ctr[j] - mean(j)) / scale(j) - means(k, j), 2);
      best_d = std::min(best_d, std::sqrt(s));
    }
    CHECK(best_d < 0.1);
  }
  const auto w = g.weights();
  CHECK(std::accumulate(w.begin(), w.end(), 0.0) == Approx(1.0).epsilon(1e-12));
  for (double wi : w) CHECK(wi == Approx(1.0 / 3).margin(0.01).epsilon(0));
}

TEST_CASE("a fitted 3-component Gmm reaches sklearn's mean log-likelihood", "[gmm]") {
  const auto& c = ref("clusters");
  d::GmmOptions opt;
  opt.components = {3};
  d::Gmm g(opt);
  const auto X = clusters_x();
  g.fit(X);
  CHECK(mean_of(g.log_likelihood(X)) == Approx(c.at("mean_loglik").values[2]).margin(1e-3).epsilon(0));
  CHECK(g.lower_bound() == Approx(c.at("mean_loglik").values[2]).margin(2e-3).epsilon(0));

  // Same seed, same model; the fit is a pure function of the options and the data.
  d::Gmm g2(opt);
  g2.fit(X);
  CHECK(identical(g2.log_likelihood(X), g.log_likelihood(X)));
}

TEST_CASE("fits and scores do not depend on the thread count", "[gmm][knn]") {
#ifdef _OPENMP
  // Enough rows for several row blocks, and a grid with several EM tasks.
  std::mt19937_64 gen(11);
  std::normal_distribution<double> nd;
  Matrix<double> X = xt::empty<double>({3000, 4});
  for (std::size_t i = 0; i < 3000; ++i)
    for (std::size_t j = 0; j < 4; ++j) X(i, j) = nd(gen) + 4.0 * double(i % 3 == j);
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    d::GmmOptions opt;
    opt.components = {1, 2, 3, 4};
    opt.restarts = 2;
    d::Gmm g(opt);
    g.fit(X);
    d::Knn knn;
    knn.fit(X);
    auto out = std::make_pair(g.log_likelihood(X), knn.log_likelihood(X));
    omp_set_num_threads(before);
    return out;
  };
  const auto one = run(1), two = run(2), three = run(3);
  // 3000 training rows span two training tiles: check against a naive exact search.
  d::Knn knn;
  knn.fit(X);
  const auto scale = knn.scaler().scale();
  const auto dist = knn.distances(X);
  for (std::size_t q = 0; q < 3000; q += 97) {
    std::vector<double> all;
    for (std::size_t i = 0; i < 3000; ++i) {
      double s2 = 0;
      for (std::size_t j = 0; j < 4; ++j) s2 += std::pow((X(q, j) - X(i, j)) / scale(j), 2);
      all.push_back(std::sqrt(s2));
    }
    std::nth_element(all.begin(), all.begin() + 4, all.end());
    CHECK(dist(q) == Approx(all[4]).epsilon(1e-12));
  }
  CHECK(identical(one.first, two.first));
  CHECK(identical(one.first, three.first));
  CHECK(identical(one.second, two.second));
  CHECK(identical(one.second, three.second));
#else
  WARN("built without OpenMP: nothing to compare");
#endif
}

TEST_CASE("Gmm held-out selection prefers the true structure", "[gmm]") {
  d::GmmOptions opt;
  opt.components = {1, 2, 3, 4};
  opt.select = d::GmmOptions::Select::HeldOut;
  opt.folds = 4;
  d::Gmm g(opt);
  g.fit(clusters_x());
  const auto& crit = g.criteria();
  REQUIRE(crit.size() == 4);
  CHECK(g.chosen_components() >= 3);
  CHECK(crit[2].second > crit[1].second + 0.5);  // mean held-out log-likelihood, per sample
  CHECK(crit[1].second > crit[0].second + 0.5);
  CHECK(int(g.num_components()) == g.chosen_components());
}

TEST_CASE("Gaussian matches scipy multivariate_normal on standardised rows", "[gaussian]") {
  const auto& c = ref("gaussian");
  d::Gaussian g;
  g.fit(matrix(c.at("train")));
  const auto ll = g.log_likelihood(matrix(c.at("test")));
  const auto& want = c.at("loglik").values;
  REQUIRE(ll.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(ll(i) == Approx(want[i]).epsilon(0).margin(1e-9));

  // A one-component Gmm is the same model.
  d::GmmOptions opt;
  opt.components = {1};
  d::Gmm one(opt);
  one.fit(matrix(c.at("train")));
  const auto ll1 = one.log_likelihood(matrix(c.at("test")));
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(ll1(i) == Approx(want[i]).epsilon(0).margin(1e-9));
}

TEST_CASE("Knn distance to the 5th neighbour matches sklearn NearestNeighbors", "[knn]") {
  const auto& c = ref("knn");
  d::Knn knn;  // default k = 5
  REQUIRE(knn.k() == int(c.at("k").scalar()));
  knn.fit(matrix(c.at("train")));
  const auto dq = knn.distances(matrix(c.at("test")));
  const auto lq = knn.log_likelihood(matrix(c.at("test")));
  const auto& want = c.at("dist_test").values;
  for (std::size_t i = 0; i < want.size(); ++i) {
    CHECK(dq(i) == Approx(want[i]).epsilon(1e-12).margin(1e-9));
    CHECK(lq(i) == -dq(i));
  }
  const auto dt = knn.distances(matrix(c.at("train")));
  const auto& want_t = c.at("dist_train").values;
  for (std::size_t i = 0; i < want_t.size(); ++i) CHECK(dt(i) == Approx(want_t[i]).epsilon(1e-12).margin(1e-9));

  // More queries than one GEMM block (256 rows) give the same per-row answers.
  Matrix<double> many = xt::empty<double>({600, 3});
  const auto test = matrix(c.at("test"));
  for (std::size_t i = 0; i < 600; ++i)
    for (std::size_t j = 0; j < 3; ++j) many(i, j) = test(i % 30, j);
  const auto dm = knn.distances(many);
  for (std::size_t i = 0; i < 600; ++i) CHECK(dm(i) == dq(i % 30));
}

TEST_CASE("save/load round trips and truncated buffers throw FormatError", "[density][io]") {
  const auto X = clusters_x();
  d::GmmOptions opt;
  opt.components = {2, 3};
  d::Gmm gmm(opt);
  gmm.fit(X);
  d::Gaussian gauss;
  gauss.fit(X);
  d::Knn knn(d::KnnOptions{3});
  knn.fit(X);

  auto check = [&](const auto& model, auto tag) {
    using M = typename decltype(tag)::type;
    const auto bytes = saved(model);
    const M back = loaded<M>(bytes, bytes.size());
    CHECK(identical(back.log_likelihood(X), model.log_likelihood(X)));  // bit-identical
    for (std::size_t len : {std::size_t(0), std::size_t(3), bytes.size() / 3, bytes.size() / 2, bytes.size() - 1}) {
      INFO(M::name << " truncated to " << len << " of " << bytes.size());
      CHECK_THROWS_AS(loaded<M>(bytes, len), scoreood::FormatError);
    }
  };
  check(gmm, std::type_identity<d::Gmm>{});
  check(gauss, std::type_identity<d::Gaussian>{});
  check(knn, std::type_identity<d::Knn>{});

  const auto gb = saved(gmm);
  const auto back = loaded<d::Gmm>(gb, gb.size());
  CHECK(back.chosen_components() == gmm.chosen_components());
  CHECK(back.criteria() == gmm.criteria());
  CHECK(back.options().components == opt.components);
  CHECK(loaded<d::Knn>(saved(knn), saved(knn).size()).k() == 3);

  // A model of another kind is refused by name.
  const auto kb = saved(knn);
  CHECK(contains(message_of([&] { loaded<d::Gmm>(kb, kb.size()); }), "expected a 'gmm'"));

  // A corrupted covariance (not positive definite) is refused, and the target is unchanged.
  d::Gaussian one;
  one.set_parameters(xt::zeros<double>({2}), Matrix<double>{{1.0, 0.0}, {0.0, 1.0}});
  auto ob = saved(one);
  const double bad = -5.0;
  std::memcpy(ob.data() + ob.size() - sizeof(double), &bad, sizeof bad);  // last covariance entry
  d::Gaussian target = gauss;
  scoreood::io::ByteReader r(ob, "corrupt.bin");
  CHECK_THROWS_AS(target.load(r), scoreood::FormatError);
  CHECK(identical(target.log_likelihood(X), gauss.log_likelihood(X)));
}

TEST_CASE("degenerate input throws ValueError with a clear message", "[density]") {
  Matrix<double> one_row = {{1.0, 2.0}};
  Matrix<double> no_cols = xt::empty<double>({10, 0});
  Matrix<double> nan_x = {{1.0, 2.0}, {3.0, std::numeric_limits<double>::quiet_NaN()}, {0.0, 1.0}};
  d::GmmOptions opt;
  opt.components = {1, 2};
  d::Gmm gmm(opt);
  CHECK(contains(message_of([&] { gmm.fit(one_row); }), "at least 2 rows"));
  CHECK(contains(message_of([&] { gmm.fit(no_cols); }), "D = 0"));
  CHECK(contains(message_of([&] { gmm.fit(nan_x); }), "X[1, 1] is not finite"));
  d::Gmm big;  // default grid goes to 20 components
  Matrix<double> ten = xt::empty<double>({10, 2});
  for (std::size_t i = 0; i < 10; ++i) ten(i, 0) = double(i), ten(i, 1) = double(i * i % 7);
  CHECK(contains(message_of([&] { big.fit(ten); }), "10 rows cannot fit 20 components"));
  CHECK_THROWS_AS(d::Gaussian().fit(one_row), scoreood::ValueError);
  CHECK_THROWS_AS(d::Gaussian().fit(nan_x), scoreood::ValueError);
  CHECK_THROWS_AS(d::Knn().fit(Matrix<double>{{1.0}, {2.0}, {3.0}}), scoreood::ValueError);  // N < k = 5
  CHECK_THROWS_AS(d::Knn().fit(no_cols), scoreood::ValueError);

  // Unfitted models and width mismatches.
  CHECK_THROWS_AS(d::Gmm().log_likelihood(ten), scoreood::ValueError);
  CHECK_THROWS_AS(d::Knn().log_likelihood(ten), scoreood::ValueError);
  CHECK_THROWS_AS(d::Gaussian().save(*std::make_unique<scoreood::io::ByteWriter>()), scoreood::ValueError);
  d::Gaussian g;
  g.fit(ten);
  CHECK_THROWS_AS(g.log_likelihood(Matrix<double>{{1.0, 2.0, 3.0}}), scoreood::ShapeError);
  CHECK_THROWS_AS(g.log_likelihood(nan_x), scoreood::ValueError);

  // Bad options.
  CHECK_THROWS_AS(d::Gmm(d::GmmOptions{.components = {}}), scoreood::ValueError);
  CHECK_THROWS_AS(d::Gmm(d::GmmOptions{.components = {0, 2}}), scoreood::ValueError);
  CHECK_THROWS_AS(d::Gmm(d::GmmOptions{.restarts = 0}), scoreood::ValueError);
  CHECK_THROWS_AS(d::Gmm(d::GmmOptions{.reg_covar = -1}), scoreood::ValueError);
  CHECK_THROWS_AS(d::Knn(d::KnnOptions{0}), scoreood::ValueError);
  CHECK_THROWS_AS(d::Gaussian(d::GaussianOptions{-1e-3}), scoreood::ValueError);

  // Bad hand-set parameters.
  xt::xtensor<double, 3> cov = xt::zeros<double>({1, 2, 2});
  CHECK_THROWS_AS(d::Gmm().set_parameters(Vector<double>{1.0}, Matrix<double>{{0.0, 0.0}}, cov), scoreood::ValueError);
  cov(0, 0, 0) = cov(0, 1, 1) = 1.0;
  CHECK_THROWS_AS(d::Gmm().set_parameters(Vector<double>{-1.0}, Matrix<double>{{0.0, 0.0}}, cov), scoreood::ValueError);
  CHECK_THROWS_AS(d::Gmm().set_parameters(Vector<double>{1.0, 1.0}, Matrix<double>{{0.0, 0.0}}, cov), scoreood::ShapeError);
}

TEST_CASE("collapsing components are repaired, never NaN", "[gmm]") {
  SECTION("all rows identical") {
    Matrix<double> X = xt::ones<double>({12, 3});
    d::GmmOptions opt;
    opt.components = {3};
    d::Gmm g(opt);
    g.fit(X);
    CHECK(g.num_components() >= 1);
    CHECK(g.num_components() <= 3);
    const auto ll = g.log_likelihood(X);
    for (double v : ll) CHECK(std::isfinite(v));
    for (double w : g.weights()) CHECK(std::isfinite(w));
  }
  SECTION("many duplicates, one dimension rank-deficient, as many components as distinct points") {
    std::mt19937_64 gen(3);
    std::normal_distribution<double> nd;
    Matrix<double> X = xt::empty<double>({60, 3});
    for (std::size_t i = 0; i < 60; ++i) {
      const double a = i < 40 ? 0.5 : nd(gen), b = i < 40 ? -1.0 : nd(gen);
      X(i, 0) = a, X(i, 1) = b, X(i, 2) = 2 * a - b;  // third column is a linear combination
    }
    d::GmmOptions opt;
    opt.components = {1, 4, 8};
    d::Gmm g(opt);
    g.fit(X);
    for (double v : g.log_likelihood(X)) CHECK(std::isfinite(v));
    for (auto [k, bic] : g.criteria()) CHECK(std::isfinite(bic));
    d::Gaussian ga;
    ga.fit(X);  // singular without reg_covar, fine with it
    for (double v : ga.log_likelihood(X)) CHECK(std::isfinite(v));
    CHECK_THROWS_AS(d::Gaussian(d::GaussianOptions{0.0}).fit(X), scoreood::ValueError);
  }
}
