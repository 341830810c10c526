/** @file gaussian.hpp
 *  @brief One full-covariance Gaussian (Mahalanobis distance) on standardised vectors.
 *
 *  The covariance is the maximum-likelihood one (divide by N, like a
 *  one-component sklearn GaussianMixture) plus `reg_covar` on the diagonal,
 *  so a rank-deficient feature set still gives a finite log-density. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/density/linalg.hpp>
#include <scoreood/density/standard_scaler.hpp>

#include <cmath>
#include <span>
#include <string>
#include <string_view>

namespace scoreood::density {

struct GaussianOptions {
  double reg_covar = 1e-6;  ///< added to the covariance diagonal (sklearn's default)
};

class Gaussian {
 public:
  static constexpr std::string_view name = "gaussian";

  Gaussian() = default;
  explicit Gaussian(GaussianOptions opt) : opt_(opt) {
    if (!(opt_.reg_covar >= 0) || !std::isfinite(opt_.reg_covar))
      throw ValueError("GaussianOptions::reg_covar must be finite and >= 0");
  }

  /// Fits mean and covariance of the standardised rows of X (N >= 2).
  void fit(const Matrix<double>& X) {
    detail::check_matrix(X, "Gaussian::fit");
    const auto n = X.shape()[0];
    if (n < 2) throw ValueError("Gaussian::fit: needs at least 2 rows, got " + std::to_string(n));
    const auto Xe = detail::as_eigen(X);
    StandardScaler scaler;
    scaler.fit(Xe);
    const Eigen::MatrixXd Z = scaler.transform(Xe);
    const Eigen::VectorXd mu = Z.colwise().mean().transpose();
    const Eigen::MatrixXd C = Z.rowwise() - mu.transpose();
    Eigen::MatrixXd cov = (C.transpose() * C) / double(n);
    cov.diagonal().array() += opt_.reg_covar;
    detail::GaussianComponent g;
    if (!g.set(mu, cov))
      throw ValueError("Gaussian::fit: the covariance is singular; set GaussianOptions::reg_covar > 0");
    scaler_ = std::move(scaler);
    g_ = std::move(g);
  }

  /// Log-density of each standardised row (see DensityModel); OOD score = -value.
  Vector<double> log_likelihood(const Matrix<double>& X) const {
    if (!fitted()) throw ValueError("Gaussian::log_likelihood: the model is not fitted");
    detail::check_matrix(X, "Gaussian::log_likelihood", dim());
    const Eigen::MatrixXd Z = scaler_.transform(detail::as_eigen(X));
    Eigen::VectorXd ll;
    g_.log_density(Z, ll);
    return detail::to_vector(ll);
  }

  /// Sets mean and covariance (in standardised space) and the scaler directly.
  void set_parameters(const Vector<double>& mean, const Matrix<double>& cov, StandardScaler scaler = {}) {
    const auto d = mean.size();
    if (d == 0 || cov.shape()[0] != d || cov.shape()[1] != d)
      throw ShapeError("Gaussian::set_parameters: mean has " + std::to_string(d) + " entries but cov is " +
                       std::to_string(cov.shape()[0]) + "x" + std::to_string(cov.shape()[1]));
    if (!scaler.fitted()) scaler = StandardScaler::identity(d);
    if (scaler.dim() != d) throw ShapeError("Gaussian::set_parameters: scaler dimension differs from mean");
    Eigen::VectorXd mu(static_cast<Eigen::Index>(d));
    for (std::size_t j = 0; j < d; ++j) mu(Eigen::Index(j)) = mean(j);
    const Eigen::MatrixXd c = detail::as_eigen(cov);
    detail::GaussianComponent g;
    if (!mu.allFinite() || !c.allFinite() || !c.isApprox(c.transpose()) || !g.set(mu, c))
      throw ValueError("Gaussian::set_parameters: cov must be finite, symmetric and positive definite");
    g_ = std::move(g);
    scaler_ = std::move(scaler);
  }

  bool fitted() const { return scaler_.fitted(); }
  std::size_t dim() const { return scaler_.dim(); }
  Vector<double> mean() const { return detail::to_vector(g_.mean); }
  Matrix<double> covariance() const {
    const auto d = dim();
    Matrix<double> out = xt::empty<double>({d, d});
    for (std::size_t i = 0; i < d; ++i)
      for (std::size_t j = 0; j < d; ++j) out(i, j) = g_.cov(Eigen::Index(i), Eigen::Index(j));
    return out;
  }
  const StandardScaler& scaler() const { return scaler_; }
  const GaussianOptions& options() const { return opt_; }

  void save(io::ByteWriter& w) const {
    if (!fitted()) throw ValueError("Gaussian::save: the model is not fitted");
    w.put_string(name);
    w.put<double>(opt_.reg_covar);
    scaler_.save(w);
    w.put_array(std::span<const double>(g_.mean.data(), std::size_t(g_.mean.size())));
    w.put_array(std::span<const double>(g_.cov.data(), std::size_t(g_.cov.size())));
  }
  /// Strong guarantee: on error the model is unchanged.
  void load(io::ByteReader& r) {
    const auto tag = r.get_string(64);
    if (tag != name) r.fail("expected a 'gaussian' density model, found '" + tag + "'");
    GaussianOptions opt;
    opt.reg_covar = r.get<double>();
    if (!std::isfinite(opt.reg_covar) || !(opt.reg_covar >= 0))
      r.fail("gaussian: reg_covar " + std::to_string(opt.reg_covar) + " is not finite and >= 0");
    StandardScaler scaler;
    scaler.load(r, "gaussian");
    const auto d = scaler.dim();  // >= 1
    auto m = r.get_vector<double>("gaussian mean");
    auto c = r.get_vector<double>("gaussian covariance");
    // c.size() == d * d, written so that a huge d cannot overflow the product.
    if (m.size() != d || c.size() / d != d || c.size() % d != 0)
      r.fail("gaussian: mean/covariance sizes " + std::to_string(m.size()) + "/" + std::to_string(c.size()) +
             " do not fit dimension " + std::to_string(d));
    r.expect_finite(std::span<const double>(m), "gaussian mean");
    r.expect_finite(std::span<const double>(c), "gaussian covariance");
    const Eigen::Map<Eigen::MatrixXd> cov(c.data(), Eigen::Index(d), Eigen::Index(d));
    // The Cholesky factorisation reads one triangle only: an asymmetric matrix would load as another one.
    if (!cov.isApprox(cov.transpose(), 1e-10)) r.fail("gaussian: stored covariance is not symmetric");
    detail::GaussianComponent g;
    if (!g.set(Eigen::Map<Eigen::VectorXd>(m.data(), Eigen::Index(d)), cov))
      r.fail("gaussian: stored covariance is not positive definite");
    opt_ = opt;
    scaler_ = std::move(scaler);
    g_ = std::move(g);
  }

 private:
  GaussianOptions opt_{};
  StandardScaler scaler_;
  detail::GaussianComponent g_;
};

}  // namespace scoreood::density
