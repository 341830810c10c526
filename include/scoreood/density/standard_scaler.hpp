/** @file standard_scaler.hpp
 *  @brief Per-feature standardisation (x - mean) / scale used inside every density model.
 *
 *  mean and the population std (ddof = 0) as in sklearn's StandardScaler. A
 *  (near-)constant feature, std <= 1e-12 * max(1, |mean|), keeps scale 1 so it
 *  is centred but never divided by ~0 (sklearn does the same for zero std). */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/density/linalg.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <string>

namespace scoreood::density {

class StandardScaler {
 public:
  StandardScaler() = default;
  /// Given statistics (for tests and hand-made models); scale must be finite and > 0.
  StandardScaler(const Vector<double>& mean, const Vector<double>& scale) {
    if (mean.size() != scale.size() || mean.size() == 0)
      throw ShapeError("StandardScaler: mean has " + std::to_string(mean.size()) + " entries, scale " +
                       std::to_string(scale.size()));
    mean_.resize(Eigen::Index(mean.size()));
    scale_.resize(Eigen::Index(mean.size()));
    for (std::size_t j = 0; j < mean.size(); ++j) {
      if (!std::isfinite(mean(j)) || !std::isfinite(scale(j)) || !(scale(j) > 0))
        throw ValueError("StandardScaler: mean/scale[" + std::to_string(j) + "] must be finite with scale > 0");
      mean_(Eigen::Index(j)) = mean(j);
      scale_(Eigen::Index(j)) = scale(j);
    }
  }
  /// The identity map in `dim` dimensions (mean 0, scale 1).
  static StandardScaler identity(std::size_t dim) {
    StandardScaler s;
    s.mean_ = Eigen::VectorXd::Zero(Eigen::Index(dim));
    s.scale_ = Eigen::VectorXd::Ones(Eigen::Index(dim));
    return s;
  }

  template <class Derived>
  void fit(const Eigen::MatrixBase<Derived>& X) {
    const auto n = X.rows();
    if (n < 1 || X.cols() < 1) throw ValueError("StandardScaler: needs at least one row and one column");
    mean_ = X.colwise().mean().transpose();
    scale_.resize(X.cols());
    for (Eigen::Index j = 0; j < X.cols(); ++j) {
      const double var = (X.col(j).array() - mean_(j)).square().sum() / double(n);
      const double sd = std::sqrt(var);
      scale_(j) = (sd <= 1e-12 * std::max(1.0, std::abs(mean_(j)))) ? 1.0 : sd;
    }
  }

  /// Standardised copy (column-major, the layout the EM loops prefer).
  template <class Derived>
  Eigen::MatrixXd transform(const Eigen::MatrixBase<Derived>& X) const {
    Eigen::MatrixXd Z = X;
    Z.rowwise() -= mean_.transpose();
    Z.array().rowwise() /= scale_.transpose().array();
    return Z;
  }

  std::size_t dim() const { return std::size_t(mean_.size()); }
  bool fitted() const { return mean_.size() > 0; }
  Vector<double> mean() const { return detail::to_vector(mean_); }
  Vector<double> scale() const { return detail::to_vector(scale_); }

  void save(io::ByteWriter& w) const {
    w.put_array(std::span<const double>(mean_.data(), std::size_t(mean_.size())));
    w.put_array(std::span<const double>(scale_.data(), std::size_t(scale_.size())));
  }
  /// Reads what save wrote; `who` prefixes messages.
  void load(io::ByteReader& r, std::string_view who = "StandardScaler") {
    auto m = r.get_vector<double>(std::string(who) + " scaler means");
    auto s = r.get_vector<double>(std::string(who) + " scaler scales");
    if (m.empty() || m.size() != s.size())
      r.fail(std::string(who) + ": scaler has " + std::to_string(m.size()) + " means and " + std::to_string(s.size()) +
             " scales");
    for (std::size_t j = 0; j < m.size(); ++j)
      if (!std::isfinite(m[j]) || !std::isfinite(s[j]) || !(s[j] > 0))
        r.fail(std::string(who) + ": scaler entry " + std::to_string(j) + " is not finite or has scale <= 0");
    mean_ = Eigen::Map<Eigen::VectorXd>(m.data(), Eigen::Index(m.size()));
    scale_ = Eigen::Map<Eigen::VectorXd>(s.data(), Eigen::Index(s.size()));
  }

 private:
  Eigen::VectorXd mean_, scale_;
};

}  // namespace scoreood::density
