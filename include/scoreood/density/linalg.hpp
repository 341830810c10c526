/** @file linalg.hpp
 *  @brief Shared numerics of the density models: input checks, Eigen views of
 *  xtensor matrices, full-covariance Gaussian log-densities, log-sum-exp. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numbers>
#include <string>
#include <string_view>

namespace scoreood::density::detail {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRowMap = Eigen::Map<const RowMat>;

/// Eigen view of a row-major N x D xtensor (no copy).
inline ConstRowMap as_eigen(const Matrix<double>& X) {
  return ConstRowMap(X.data(), Eigen::Index(X.shape()[0]), Eigen::Index(X.shape()[1]));
}

/// Throws ValueError naming `who` when X has a non-finite entry, and ShapeError when its
/// width is not `dim` (dim = 0: any width > 0).
inline void check_matrix(const Matrix<double>& X, std::string_view who, std::size_t dim = 0) {
  const std::size_t n = X.shape()[0], d = X.shape()[1];
  if (d == 0) throw ValueError(std::string(who) + ": X has 0 columns (D = 0)");
  if (dim != 0 && d != dim)
    throw ShapeError(std::string(who) + ": X has " + std::to_string(d) + " columns, the model was fitted on " +
                     std::to_string(dim));
  const double* p = X.data();
  for (std::size_t i = 0; i < n * d; ++i)
    if (!std::isfinite(p[i]))
      throw ValueError(std::string(who) + ": X[" + std::to_string(i / d) + ", " + std::to_string(i % d) +
                       "] is not finite");
}

inline constexpr double kLog2Pi = 1.8378770664093454835606594728112;  // log(2 pi)

/// A Gaussian ready for evaluation: cov = L L^T, prec_chol = L^{-T} (upper triangular), so
/// log N(x) = -0.5 (D log 2pi + ||(x - mean)^T prec_chol||^2) + sum log diag(prec_chol).
struct GaussianComponent {
  Eigen::VectorXd mean;
  Eigen::MatrixXd cov;
  Eigen::MatrixXd prec_chol;
  double log_det_prec_chol = 0;

  /// Factorises `cov`; false when it is not (numerically) positive definite.
  bool set(const Eigen::VectorXd& m, const Eigen::MatrixXd& c) {
    Eigen::LLT<Eigen::MatrixXd> llt(c);
    if (llt.info() != Eigen::Success) return false;
    const Eigen::MatrixXd L = llt.matrixL();
    const auto d = c.rows();
    if ((L.diagonal().array() <= 0.0).any() || !L.allFinite()) return false;
    Eigen::MatrixXd Linv = L.triangularView<Eigen::Lower>().solve(Eigen::MatrixXd::Identity(d, d));
    if (!Linv.allFinite()) return false;
    mean = m;
    cov = c;
    prec_chol = Linv.transpose();
    log_det_prec_chol = -L.diagonal().array().log().sum();
    return std::isfinite(log_det_prec_chol);
  }

  /// Log-density of every row of Z (N x D) into `out` (N).
  template <class Derived, class Out>
  void log_density(const Eigen::MatrixBase<Derived>& Z, Out&& out) const {
    const Eigen::RowVectorXd shift = mean.transpose() * prec_chol;
    Eigen::MatrixXd Y = Z * prec_chol;  // one GEMM for the whole batch
    Y.rowwise() -= shift;
    const double c = -0.5 * double(mean.size()) * kLog2Pi + log_det_prec_chol;
    out = (-0.5 * Y.rowwise().squaredNorm().array() + c).matrix();
  }
};

/// Row-wise log(sum(exp(A))) of an N x K matrix, stable for very negative entries.
inline Eigen::VectorXd logsumexp_rows(const Eigen::MatrixXd& A) {
  const Eigen::VectorXd mx = A.rowwise().maxCoeff();
  Eigen::VectorXd out(A.rows());
  for (Eigen::Index i = 0; i < A.rows(); ++i) {
    if (!std::isfinite(mx(i))) {
      out(i) = mx(i);
      continue;
    }
    out(i) = mx(i) + std::log((A.row(i).array() - mx(i)).exp().sum());
  }
  return out;
}

/// Rows per block in the parallel loops below.
inline constexpr Eigen::Index kRowBlock = 1024;

/// Calls f(block, first_row, n_rows) for fixed blocks of `block` rows, in parallel
/// (OpenMP). Callers reduce per-block partial results in block order, so every
/// result is bit-identical at any thread count. Every GEMM inside f runs inside
/// the parallel region, where Eigen does not start threads of its own (its
/// busy-waiting GEMM threads collapse on oversubscribed machines). f must not throw.
template <class F>
void for_row_blocks(Eigen::Index n, F&& f, Eigen::Index block = kRowBlock) {
  const Eigen::Index nb = (n + block - 1) / block;
#pragma omp parallel for schedule(dynamic)
  for (Eigen::Index b = 0; b < nb; ++b) f(b, b * block, std::min(block, n - b * block));
}

inline Eigen::Index n_row_blocks(Eigen::Index n, Eigen::Index block = kRowBlock) { return (n + block - 1) / block; }

/// Copies an Eigen vector into an xtensor Vector.
inline Vector<double> to_vector(const Eigen::VectorXd& v) {
  Vector<double> out = xt::empty<double>({std::size_t(v.size())});
  for (Eigen::Index i = 0; i < v.size(); ++i) out(std::size_t(i)) = v(i);
  return out;
}

}  // namespace scoreood::density::detail
