/** @file knn.hpp
 *  @brief k-nearest-neighbour "density": distance to the k-th nearest training vector.
 *
 *  log_likelihood = -(Euclidean distance to the k-th nearest standardised
 *  training row), so the OOD score is that distance. It is a score, NOT a
 *  normalised density (MSMA's kNN baseline, k = 5). A query that is itself a
 *  training row counts itself as its first neighbour (distance 0), as
 *  sklearn's NearestNeighbors.kneighbors(X) does when given X.
 *  Brute force: squared-norm expansion with one GEMM per block of queries,
 *  then exact distances recomputed for the k + 8 best candidates, so the
 *  result is exact up to rounding even for near-duplicate points (the
 *  expansion can only reorder neighbours whose distances agree to rounding). */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/density/linalg.hpp>
#include <scoreood/density/standard_scaler.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::density {

struct KnnOptions {
  int k = 5;  ///< which neighbour's distance is the score (1 = nearest)
};

class Knn {
 public:
  static constexpr std::string_view name = "knn";

  Knn() = default;
  explicit Knn(KnnOptions opt) : opt_(opt) {
    if (opt_.k < 1) throw ValueError("KnnOptions::k must be >= 1, got " + std::to_string(opt_.k));
  }

  /// Stores the standardised training rows; needs N >= max(2, k).
  void fit(const Matrix<double>& X) {
    detail::check_matrix(X, "Knn::fit");
    const auto n = X.shape()[0];
    if (n < 2 || n < std::size_t(opt_.k))
      throw ValueError("Knn::fit: needs at least max(2, k = " + std::to_string(opt_.k) + ") rows, got " +
                       std::to_string(n));
    const auto Xe = detail::as_eigen(X);
    StandardScaler scaler;
    scaler.fit(Xe);
    train_ = scaler.transform(Xe);
    scaler_ = std::move(scaler);
    norms_ = train_.rowwise().squaredNorm();
  }

  /// Minus the distance to the k-th nearest training row, per row of X.
  Vector<double> log_likelihood(const Matrix<double>& X) const {
    return detail::to_vector(-kth_distance(X, "Knn::log_likelihood"));
  }

  /// Distance to the k-th nearest training row (standardised space), per row of X.
  Vector<double> distances(const Matrix<double>& X) const {
    return detail::to_vector(kth_distance(X, "Knn::distances"));
  }

  bool fitted() const { return scaler_.fitted(); }
  std::size_t dim() const { return scaler_.dim(); }
  std::size_t size() const { return std::size_t(train_.rows()); }
  int k() const { return opt_.k; }
  const StandardScaler& scaler() const { return scaler_; }

  void save(io::ByteWriter& w) const {
    if (!fitted()) throw ValueError("Knn::save: the model is not fitted");
    w.put_string(name);
    w.put<std::uint32_t>(std::uint32_t(opt_.k));
    scaler_.save(w);
    w.put_array(std::span<const double>(train_.data(), std::size_t(train_.size())));
  }
  /// Strong guarantee: on error the model is unchanged.
  void load(io::ByteReader& r) {
    const auto tag = r.get_string(64);
    if (tag != name) r.fail("expected a 'knn' density model, found '" + tag + "'");
    const auto k = r.get<std::uint32_t>();
    StandardScaler scaler;
    scaler.load(r, "knn");
    auto t = r.get_vector<double>("knn reference rows");
    const auto d = scaler.dim();
    if (k < 1 || k > (1u << 30)) r.fail("knn: implausible k = " + std::to_string(k));
    if (t.size() % d != 0 || t.size() / d < std::max<std::size_t>(2, k))
      r.fail("knn: " + std::to_string(t.size()) + " stored values do not form at least max(2, k) rows of " +
             std::to_string(d));
    for (double v : t)
      if (!std::isfinite(v)) r.fail("knn: stored training data is not finite");
    const auto n = Eigen::Index(t.size() / d);
    opt_.k = int(k);
    scaler_ = std::move(scaler);
    train_ = Eigen::Map<Eigen::MatrixXd>(t.data(), n, Eigen::Index(d));
    norms_ = train_.rowwise().squaredNorm();
  }

 private:
  Eigen::VectorXd kth_distance(const Matrix<double>& X, const char* who) const {
    if (!fitted()) throw ValueError(std::string(who) + ": the model is not fitted");
    detail::check_matrix(X, who, dim());
    const Eigen::MatrixXd Q = scaler_.transform(detail::as_eigen(X));
    const Eigen::Index nq = Q.rows(), nt = train_.rows();
    const auto k = std::size_t(opt_.k);
    // Candidates from the expansion, then exact distances: the expansion's rounding
    // (~eps * (|q|^2 + |x|^2)) can only swap near-equal neighbours, which the slack absorbs.
    const std::size_t ncand = std::min<std::size_t>(std::size_t(nt), k + 8);
    Eigen::VectorXd out(nq);
    // Cache-sized tiles: 64 queries x 2048 training rows of |x|^2 - 2 q.x (|q|^2 is constant
    // along a row, so it does not change the ranking); each tile updates every query's
    // running list of the ncand smallest entries, so no N-wide row is ever stored.
    constexpr Eigen::Index kQueries = 64, kTrain = 2048;
    detail::for_row_blocks(nq, [&](Eigen::Index, Eigen::Index b0, Eigen::Index nb) {
      const auto Qb = Q.middleRows(b0, nb);
      std::vector<std::pair<double, Eigen::Index>> best(std::size_t(nb) * ncand);
      std::vector<std::size_t> filled(static_cast<std::size_t>(nb), 0);
      Eigen::MatrixXd tile;
      for (Eigen::Index t0 = 0; t0 < nt; t0 += kTrain) {
        const Eigen::Index tn = std::min(kTrain, nt - t0);
        tile.noalias() = -2.0 * (train_.middleRows(t0, tn) * Qb.transpose());  // tn x nb: a query per column
        tile.colwise() += norms_.segment(t0, tn);
        for (Eigen::Index i = 0; i < nb; ++i) {
          auto* top = best.data() + std::size_t(i) * ncand;
          auto& f = filled[std::size_t(i)];
          const double* col = tile.data() + i * tn;
          for (Eigen::Index j = 0; j < tn; ++j) {
            const double v = col[j];
            if (f == ncand && !(v < top[ncand - 1].first)) continue;  // the common case: one comparison
            std::size_t pos = f < ncand ? f++ : ncand - 1;
            for (; pos > 0 && top[pos - 1].first > v; --pos) top[pos] = top[pos - 1];
            top[pos] = {v, t0 + j};
          }
        }
      }
      std::vector<double> exact(ncand);
      for (Eigen::Index i = 0; i < nb; ++i) {
        const auto* top = best.data() + std::size_t(i) * ncand;
        for (std::size_t c = 0; c < ncand; ++c) exact[c] = (Qb.row(i) - train_.row(top[c].second)).squaredNorm();
        std::nth_element(exact.begin(), exact.begin() + std::ptrdiff_t(k - 1), exact.end());
        out(b0 + i) = std::sqrt(exact[k - 1]);
      }
    }, kQueries);
    return out;
  }

  KnnOptions opt_{};
  StandardScaler scaler_;
  Eigen::MatrixXd train_;
  Eigen::VectorXd norms_;
};

}  // namespace scoreood::density
