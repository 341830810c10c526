// Density blocks written by hand (what a file with a valid checksum may hold):
// every stored value is validated at load, and the error is a FormatError
// naming the source and the field.
#include <scoreood/density.hpp>

#include <catch2/catch.hpp>

#include "../format_error.hpp"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace d = scoreood::density;
namespace io = scoreood::io;
using scoreood::FormatError;
using scoreood::Matrix;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

using scoreood::test::format_error;

void put_scaler(io::ByteWriter& w, std::vector<double> mean, std::vector<double> scale) {
  w.put_vector(mean);
  w.put_vector(scale);
}

/// A Gaussian block in 2 dimensions (identity scaler).
std::vector<char> gaussian_block(std::vector<double> mean, std::vector<double> cov, double reg = 1e-6,
                                 std::vector<double> scale = {1, 1}) {
  io::ByteWriter w;
  w.put_string("gaussian");
  w.put<double>(reg);
  put_scaler(w, {0, 0}, scale);
  w.put_vector(mean);
  w.put_vector(cov);
  return w.bytes();
}

/// A GMM block in 2 dimensions with the given weights (one identity covariance per weight).
std::vector<char> gmm_block(std::vector<double> weights, std::vector<double> means = {},
                            std::vector<double> covs = {}) {
  const std::size_t k = weights.size();
  if (means.empty())
    for (std::size_t i = 0; i < k; ++i) means.insert(means.end(), {double(i), -double(i)});
  if (covs.empty())
    for (std::size_t i = 0; i < k; ++i) covs.insert(covs.end(), {1, 0, 0, 1});
  io::ByteWriter w;
  w.put_string("gmm");
  w.put_vector(std::vector<int>{1, 2});
  w.put<std::int32_t>(0);  // BIC
  w.put<std::int32_t>(5);
  w.put<std::int32_t>(3);
  w.put<std::int32_t>(100);
  w.put<double>(1e-3);
  w.put<double>(1e-6);
  w.put<std::uint64_t>(0);
  w.put<std::int32_t>(std::int32_t(k));
  w.put_vector(std::vector<std::int32_t>{});
  w.put_vector(std::vector<double>{});
  w.put<std::uint8_t>(1);
  w.put<std::int32_t>(4);
  w.put<double>(-1.0);
  put_scaler(w, {0, 0}, {1, 1});
  w.put_vector(weights);
  w.put_vector(means);
  w.put_vector(covs);
  return w.bytes();
}

template <class M>
std::string load_error(const std::vector<char>& bytes) {
  return format_error([&] {
    M m;
    io::ByteReader r(bytes, "density.sood");
    m.load(r);
  });
}
template <class M>
M load_ok(const std::vector<char>& bytes) {
  M m;
  io::ByteReader r(bytes, "density.sood");
  m.load(r);
  CHECK(r.at_end());
  return m;
}

const Matrix<double> kX = {{0.0, 0.0}, {1.0, -1.0}, {3.0, 2.0}};

}  // namespace

TEST_CASE("Gaussian blocks: mean finite, covariance finite and symmetric positive definite", "[density][io]") {
  const auto ok = load_ok<d::Gaussian>(gaussian_block({0.5, -0.5}, {2, 0.5, 0.5, 1}));
  CHECK(std::isfinite(ok.log_likelihood(kX)(0)));
  // A NaN mean loaded (the covariance factorised) and every score was NaN.
  CHECK_THAT(load_error<d::Gaussian>(gaussian_block({0.0, kNaN}, {1, 0, 0, 1})),
             Catch::Contains("density.sood") && Catch::Contains("mean[1]"));
  // Only the lower triangle was read, so an asymmetric matrix loaded as another one.
  CHECK_THAT(load_error<d::Gaussian>(gaussian_block({0, 0}, {1, 0.9, -0.9, 1})),
             Catch::Contains("density.sood") && Catch::Contains("symmetric"));
  CHECK_THAT(load_error<d::Gaussian>(gaussian_block({0, 0}, {1, 0, 0, kInf})), Catch::Contains("covariance"));
  CHECK_THAT(load_error<d::Gaussian>(gaussian_block({0, 0}, {1, 2, 2, 1})), Catch::Contains("positive definite"));
  CHECK_THAT(load_error<d::Gaussian>(gaussian_block({0, 0}, {1, 0, 0, 1}, kNaN)), Catch::Contains("reg_covar"));
  CHECK_THAT(load_error<d::Gaussian>(gaussian_block({0, 0}, {1, 0, 0, 1}, 1e-6, {1, 0})), Catch::Contains("scale"));
  CHECK_THAT(load_error<d::Gaussian>(gaussian_block({0, 0}, {1, 0, 0})), Catch::Contains("dimension 2"));
}

TEST_CASE("GMM blocks: weights finite, >= 0 and summing to 1; components valid", "[density][io]") {
  const auto two = load_ok<d::Gmm>(gmm_block({0.25, 0.75}));
  CHECK(two.num_components() == 2);
  CHECK(two.weights()(1) == Approx(0.75).epsilon(0).margin(1e-12));
  // Weights were renormalised silently: 0.2 + 0.2 loaded as 0.5 + 0.5.
  CHECK_THAT(load_error<d::Gmm>(gmm_block({0.2, 0.2})),
             Catch::Contains("density.sood") && Catch::Contains("weights") && Catch::Contains("sum"));
  CHECK_THAT(load_error<d::Gmm>(gmm_block({1.5, -0.5})), Catch::Contains("weight 1"));
  CHECK_THAT(load_error<d::Gmm>(gmm_block({kNaN, 1.0})), Catch::Contains("weight 0"));
  // A component of weight 0 is a valid mixture (it never wins): it loads and scores.
  const auto zero = load_ok<d::Gmm>(gmm_block({0.0, 1.0}));
  const auto ll = zero.log_likelihood(kX);
  for (double v : ll) CHECK(std::isfinite(v));
  CHECK_THAT(load_error<d::Gmm>(gmm_block({0.0, 0.0})), Catch::Contains("sum"));
  CHECK_THAT(load_error<d::Gmm>(gmm_block({0.5, 0.5}, {0, 0, kInf, 0})), Catch::Contains("component 1"));
  CHECK_THAT(load_error<d::Gmm>(gmm_block({0.5, 0.5}, {}, {1, 0, 0, 1, 1, 0.5, 0, 1})),
             Catch::Contains("component 1"));
  CHECK_THAT(load_error<d::Gmm>(gmm_block({0.5, 0.5}, {0, 0, 1})), Catch::Contains("do not fit dimension 2"));
}

TEST_CASE("kNN blocks: k and the reference rows are checked", "[density][io]") {
  auto knn_block = [](std::uint32_t k, std::vector<double> rows) {
    io::ByteWriter w;
    w.put_string("knn");
    w.put<std::uint32_t>(k);
    put_scaler(w, {0, 0}, {1, 1});
    w.put_vector(rows);
    return w.bytes();
  };
  const auto ok = load_ok<d::Knn>(knn_block(1, {0, 0, 1, 1, 2, 2}));
  CHECK(ok.size() == 3);
  CHECK_THAT(load_error<d::Knn>(knn_block(1, {0, 0, kNaN, 1})), Catch::Contains("density.sood") && Catch::Contains("not finite"));
  CHECK_THAT(load_error<d::Knn>(knn_block(0, {0, 0, 1, 1})), Catch::Contains("k = 0"));
  CHECK_THAT(load_error<d::Knn>(knn_block(5, {0, 0, 1, 1})), Catch::Contains("rows"));
}
