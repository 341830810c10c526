/** @file gmm.hpp
 *  @brief Full-covariance Gaussian mixture fitted by EM, with the number of
 *  components chosen by BIC or by held-out likelihood (the default density of ScoreOOD).
 *
 *  Follows sklearn.mixture.GaussianMixture(covariance_type="full") where it
 *  matters for comparability: reg_covar on the diagonal (1e-6), convergence
 *  when the mean log-likelihood changes by less than tol (1e-3), the best
 *  of `restarts` runs by final lower bound, BIC = -2 sum log p + n_params log N.
 *  Differences, on purpose: initialisation is seeded k-means++ followed by a
 *  few Lloyd iterations (sklearn runs full k-means); a component whose
 *  responsibility mass drops below one sample, or whose covariance cannot be
 *  factorised, is re-seeded at the worst-explained sample (and dropped after
 *  three re-seeds), so no parameter ever becomes NaN. Held-out selection
 *  shuffles the rows (seeded) before cutting the folds, because training sets
 *  are often sorted by class. Everything happens in the standardised space
 *  (see DensityModel); all arithmetic is double. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/density/linalg.hpp>
#include <scoreood/density/standard_scaler.hpp>

#include <Eigen/Core>
#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scoreood::density {

struct GmmOptions {
  /// Candidate numbers of components; fit() picks one (all must be <= N).
  std::vector<int> components{1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20};
  /// Bic: lowest BIC on all data. HeldOut: highest mean held-out log-likelihood over `folds`.
  enum class Select { Bic, HeldOut } select = Select::Bic;
  int folds = 5;            ///< folds for Select::HeldOut (>= 2)
  int restarts = 3;         ///< EM runs per fit, different initialisations; the best lower bound wins
  int max_iter = 100;       ///< EM iterations per run
  double tol = 1e-3;        ///< stop when the mean log-likelihood changes by less than this
  double reg_covar = 1e-6;  ///< added to every covariance diagonal (standardised units)
  std::uint64_t seed = 0;   ///< initialisations and fold shuffles are pure functions of it
  bool verbose = false;     ///< one line per candidate on stderr
};

class Gmm {
 public:
  static constexpr std::string_view name = "gmm";

  Gmm() = default;
  explicit Gmm(GmmOptions opt) : opt_(std::move(opt)) { validate_options(opt_, "GmmOptions"); }

  /// Standardises X, chooses the number of components over options().components, fits on all rows.
  void fit(const Matrix<double>& X) {
    detail::check_matrix(X, "Gmm::fit");
    const auto n = X.shape()[0];
    if (n < 2) throw ValueError("Gmm::fit: needs at least 2 rows, got " + std::to_string(n));
    const int kmax = *std::max_element(opt_.components.begin(), opt_.components.end());
    if (std::size_t(kmax) > n)
      throw ValueError("Gmm::fit: " + std::to_string(n) + " rows cannot fit " + std::to_string(kmax) +
                       " components; remove the larger values from GmmOptions::components");
    const auto Xe = detail::as_eigen(X);
    StandardScaler scaler;
    scaler.fit(Xe);
    const Eigen::MatrixXd Z = scaler.transform(Xe);

    std::vector<std::pair<int, double>> crit;
    const auto& ks = opt_.components;
    const int R = opt_.restarts;
    Run best_run;
    int chosen = 0;
    if (opt_.select == GmmOptions::Select::Bic) {
      std::vector<Task> tasks;
      for (int k : ks)
        for (int r = 0; r < R; ++r) tasks.push_back({k, r, 0, &Z});
      auto runs = run_all(tasks);
      double best = std::numeric_limits<double>::infinity();
      for (std::size_t i = 0; i < ks.size(); ++i) {
        Run run = best_of(runs, i * std::size_t(R), std::size_t(R));
        const double ll = run.mix.score(Z).mean();
        const double bic = -2.0 * ll * double(n) + double(n_parameters(int(run.mix.size()), Z.cols())) * std::log(double(n));
        crit.emplace_back(ks[i], bic);
        if (opt_.verbose) std::fprintf(stderr, "gmm: k=%d bic=%.10g mean_loglik=%.6g iters=%d\n", ks[i], bic, ll, run.n_iter);
        if (bic < best) {
          best = bic;
          chosen = ks[i];
          best_run = std::move(run);
        }
      }
    } else {
      const auto folds = fold_ids(n);
      std::size_t smallest_train = n;
      for (int f = 0; f < opt_.folds; ++f)
        smallest_train = std::min<std::size_t>(smallest_train, std::size_t(std::count_if(folds.begin(), folds.end(), [f](int v) { return v != f; })));
      if (n < std::size_t(opt_.folds) || smallest_train < std::size_t(std::max(kmax, 2)))
        throw ValueError("Gmm::fit: " + std::to_string(n) + " rows are too few for " + std::to_string(opt_.folds) +
                         " folds with up to " + std::to_string(kmax) + " components");
      const int F = opt_.folds;
      std::vector<Eigen::MatrixXd> train(static_cast<std::size_t>(F)), test(static_cast<std::size_t>(F));
      for (int f = 0; f < F; ++f) {
        train[std::size_t(f)] = rows_where(Z, folds, f, false);
        test[std::size_t(f)] = rows_where(Z, folds, f, true);
      }
      std::vector<Task> tasks;
      for (int k : ks)
        for (int f = 0; f < F; ++f)
          for (int r = 0; r < R; ++r) tasks.push_back({k, r, f + 1, &train[std::size_t(f)]});
      auto runs = run_all(tasks);
      double best = -std::numeric_limits<double>::infinity();
      for (std::size_t i = 0; i < ks.size(); ++i) {
        double total = 0;
        for (int f = 0; f < F; ++f) {
          const Run run = best_of(runs, (i * std::size_t(F) + std::size_t(f)) * std::size_t(R), std::size_t(R));
          total += run.mix.score(test[std::size_t(f)]).mean();
        }
        const double held = total / double(F);
        crit.emplace_back(ks[i], held);
        if (opt_.verbose) std::fprintf(stderr, "gmm: k=%d heldout_mean_loglik=%.10g\n", ks[i], held);
        if (held > best) {
          best = held;
          chosen = ks[i];
        }
      }
      std::vector<Task> last;
      for (int r = 0; r < R; ++r) last.push_back({chosen, r, 0, &Z});
      auto final_runs = run_all(last);
      best_run = best_of(final_runs, 0, std::size_t(R));
    }
    scaler_ = std::move(scaler);
    mix_ = std::move(best_run.mix);
    chosen_ = chosen;
    criteria_ = std::move(crit);
    converged_ = best_run.converged;
    n_iter_ = best_run.n_iter;
    lower_bound_ = best_run.lower_bound;
  }

  /// Log-density of each standardised row under the mixture (see DensityModel); OOD score = -value.
  Vector<double> log_likelihood(const Matrix<double>& X) const {
    if (!fitted()) throw ValueError("Gmm::log_likelihood: the model is not fitted");
    detail::check_matrix(X, "Gmm::log_likelihood", dim());
    return detail::to_vector(mix_.score(scaler_.transform(detail::as_eigen(X))));
  }

  /// Sets the mixture directly (standardised space): weights (K, > 0, renormalised to sum 1),
  /// means (K x D), covariances (K x D x D, symmetric positive definite); default scaler = identity.
  void set_parameters(const Vector<double>& weights, const Matrix<double>& means,
                      const xt::xtensor<double, 3>& covariances, StandardScaler scaler = {}) {
    const auto k = weights.size(), d = means.shape()[1];
    if (k == 0 || d == 0 || means.shape()[0] != k || covariances.shape()[0] != k || covariances.shape()[1] != d ||
        covariances.shape()[2] != d)
      throw ShapeError("Gmm::set_parameters: need weights (K), means (K x D), covariances (K x D x D); got K = " +
                       std::to_string(k) + ", means " + std::to_string(means.shape()[0]) + "x" + std::to_string(d) +
                       ", covariances with first dimension " + std::to_string(covariances.shape()[0]));
    if (!scaler.fitted()) scaler = StandardScaler::identity(d);
    if (scaler.dim() != d) throw ShapeError("Gmm::set_parameters: scaler dimension differs from the means");
    std::vector<double> w(weights.begin(), weights.end()), m(means.begin(), means.end()), c(covariances.begin(), covariances.end());
    std::string err;
    Mixture mix = Mixture::from_arrays(w, m, c, k, d, err);
    if (!err.empty()) throw ValueError("Gmm::set_parameters: " + err);
    mix_ = std::move(mix);
    scaler_ = std::move(scaler);
    chosen_ = int(k);
    criteria_.clear();
    converged_ = true;
    n_iter_ = 0;
    lower_bound_ = std::numeric_limits<double>::quiet_NaN();
  }

  bool fitted() const { return scaler_.fitted() && mix_.size() > 0; }
  std::size_t dim() const { return scaler_.dim(); }
  /// The number picked by model selection.
  int chosen_components() const { return chosen_; }
  /// Components in the fitted mixture (smaller than chosen_components() only if some were dropped).
  std::size_t num_components() const { return mix_.size(); }
  /// (k, criterion) per candidate: BIC (lower is better) or mean held-out log-likelihood (higher is better).
  const std::vector<std::pair<int, double>>& criteria() const { return criteria_; }
  bool converged() const { return converged_; }
  int n_iter() const { return n_iter_; }
  /// Mean log-likelihood at the last EM iteration of the kept run.
  double lower_bound() const { return lower_bound_; }
  const GmmOptions& options() const { return opt_; }
  const StandardScaler& scaler() const { return scaler_; }

  Vector<double> weights() const { return detail::to_vector(mix_.log_w.array().exp().matrix()); }
  Matrix<double> means() const {
    const auto k = mix_.size(), d = dim();
    Matrix<double> out = xt::empty<double>({k, d});
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t j = 0; j < d; ++j) out(i, j) = mix_.comps[i].mean(Eigen::Index(j));
    return out;
  }
  xt::xtensor<double, 3> covariances() const {
    const auto k = mix_.size(), d = dim();
    xt::xtensor<double, 3> out = xt::empty<double>({k, d, d});
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t a = 0; a < d; ++a)
        for (std::size_t b = 0; b < d; ++b) out(i, a, b) = mix_.comps[i].cov(Eigen::Index(a), Eigen::Index(b));
    return out;
  }

  /// Free parameters of a K-component full-covariance mixture in D dimensions (sklearn's count).
  static long long n_parameters(int k, long long d) { return k * d + k * d * (d + 1) / 2 + k - 1; }

  void save(io::ByteWriter& w) const {
    if (!fitted()) throw ValueError("Gmm::save: the model is not fitted");
    w.put_string(name);
    w.put_vector(opt_.components);
    w.put<std::int32_t>(opt_.select == GmmOptions::Select::Bic ? 0 : 1);
    w.put<std::int32_t>(opt_.folds);
    w.put<std::int32_t>(opt_.restarts);
    w.put<std::int32_t>(opt_.max_iter);
    w.put<double>(opt_.tol);
    w.put<double>(opt_.reg_covar);
    w.put<std::uint64_t>(opt_.seed);
    w.put<std::int32_t>(chosen_);
    std::vector<std::int32_t> ks;
    std::vector<double> vs;
    for (auto [k, v] : criteria_) {
      ks.push_back(k);
      vs.push_back(v);
    }
    w.put_vector(ks);
    w.put_vector(vs);
    w.put<std::uint8_t>(converged_ ? 1 : 0);
    w.put<std::int32_t>(n_iter_);
    w.put<double>(lower_bound_);
    scaler_.save(w);
    const auto k = mix_.size(), d = dim();
    std::vector<double> wt(k), m, c;
    for (std::size_t i = 0; i < k; ++i) {
      wt[i] = std::exp(mix_.log_w(Eigen::Index(i)));
      m.insert(m.end(), mix_.comps[i].mean.data(), mix_.comps[i].mean.data() + d);
      c.insert(c.end(), mix_.comps[i].cov.data(), mix_.comps[i].cov.data() + d * d);  // symmetric: order irrelevant
    }
    w.put_vector(wt);
    w.put_vector(m);
    w.put_vector(c);
  }

  /// Strong guarantee: on error the model is unchanged.
  void load(io::ByteReader& r) {
    const auto tag = r.get_string(64);
    if (tag != name) r.fail("expected a 'gmm' density model, found '" + tag + "'");
    GmmOptions opt;
    opt.components = r.get_vector<int>();
    const auto sel = r.get<std::int32_t>();
    if (sel != 0 && sel != 1) r.fail("gmm: unknown selection rule " + std::to_string(sel));
    opt.select = sel == 0 ? GmmOptions::Select::Bic : GmmOptions::Select::HeldOut;
    opt.folds = r.get<std::int32_t>();
    opt.restarts = r.get<std::int32_t>();
    opt.max_iter = r.get<std::int32_t>();
    opt.tol = r.get<double>();
    opt.reg_covar = r.get<double>();
    opt.seed = r.get<std::uint64_t>();
    try {
      validate_options(opt, "gmm: stored options");
    } catch (const ValueError& e) {
      r.fail(e.what());
    }
    const int chosen = r.get<std::int32_t>();
    const auto ks = r.get_vector<std::int32_t>();
    const auto vs = r.get_vector<double>();
    if (ks.size() != vs.size()) r.fail("gmm: model-selection table is inconsistent");
    std::vector<std::pair<int, double>> crit;
    for (std::size_t i = 0; i < ks.size(); ++i) crit.emplace_back(ks[i], vs[i]);
    const bool converged = r.get<std::uint8_t>() != 0;
    const int n_iter = r.get<std::int32_t>();
    const double lb = r.get<double>();
    StandardScaler scaler;
    scaler.load(r, "gmm");
    const auto d = scaler.dim();  // >= 1
    auto wt = r.get_vector<double>("gmm weights");
    auto m = r.get_vector<double>("gmm means");
    auto c = r.get_vector<double>("gmm covariances");
    const auto k = wt.size();
    // m.size() == k * d and c.size() == k * d * d, written so that no product can overflow.
    if (k == 0 || m.size() / d != k || m.size() % d != 0 || c.size() / d != m.size() || c.size() % d != 0)
      r.fail("gmm: " + std::to_string(k) + " weights, " + std::to_string(m.size()) + " mean and " +
             std::to_string(c.size()) + " covariance values do not fit dimension " + std::to_string(d));
    // Stored weights are what save() wrote: finite, >= 0, summing to 1. A file
    // whose weights do not is corrupt (they used to be renormalised silently).
    double wsum = 0;
    for (std::size_t i = 0; i < k; ++i) {
      if (!std::isfinite(wt[i]) || !(wt[i] >= 0))
        r.fail("gmm: weight " + std::to_string(i) + " is " + std::to_string(wt[i]) + ", not a finite number >= 0");
      wsum += wt[i];
    }
    if (!(std::abs(wsum - 1.0) <= 1e-6))
      r.fail("gmm: the " + std::to_string(k) + " weights sum to " + std::to_string(wsum) + ", not 1");
    std::string err;
    Mixture mix = Mixture::from_arrays(wt, m, c, k, d, err, /*allow_zero_weights=*/true);
    if (!err.empty()) r.fail("gmm: stored mixture is invalid: " + err);
    opt_ = std::move(opt);
    chosen_ = chosen;
    criteria_ = std::move(crit);
    converged_ = converged;
    n_iter_ = n_iter;
    lower_bound_ = lb;
    scaler_ = std::move(scaler);
    mix_ = std::move(mix);
  }

 private:
  /// Log-weights and components; score() is the per-row mixture log-density.
  struct Mixture {
    Eigen::VectorXd log_w;
    std::vector<detail::GaussianComponent> comps;

    std::size_t size() const { return comps.size(); }

    /// Per-row mixture log-likelihood; with `resp`, also the responsibilities (N x K).
    Eigen::VectorXd e_step(const Eigen::MatrixXd& Z, Eigen::MatrixXd* resp = nullptr) const {
      const Eigen::Index n = Z.rows(), K = Eigen::Index(comps.size());
      Eigen::VectorXd ln(n);
      if (resp) resp->resize(n, K);
      detail::for_row_blocks(n, [&](Eigen::Index, Eigen::Index r0, Eigen::Index nr) {
        Eigen::MatrixXd lp(nr, K);
        const auto Zb = Z.middleRows(r0, nr);
        for (Eigen::Index k = 0; k < K; ++k) {
          comps[std::size_t(k)].log_density(Zb, lp.col(k));
          lp.col(k).array() += log_w(k);
        }
        const Eigen::VectorXd l = detail::logsumexp_rows(lp);
        ln.segment(r0, nr) = l;
        if (!resp) return;
        for (Eigen::Index i = 0; i < nr; ++i) {
          if (std::isfinite(l(i))) resp->row(r0 + i) = (lp.row(i).array() - l(i)).exp().matrix();
          else resp->row(r0 + i).setConstant(1.0 / double(K));  // no component explains the row at all
        }
      });
      return ln;
    }
    Eigen::VectorXd score(const Eigen::MatrixXd& Z) const { return e_step(Z); }

    /// Builds a mixture from row-major arrays; `err` is set (and the result unusable) on failure.
    /// Weights must be finite and > 0 (>= 0 with `allow_zero_weights`, some > 0).
    static Mixture from_arrays(const std::vector<double>& w, const std::vector<double>& m, const std::vector<double>& c,
                               std::size_t k, std::size_t d, std::string& err, bool allow_zero_weights = false) {
      Mixture mix;
      double sum = 0;
      for (std::size_t i = 0; i < k; ++i) {
        if (!std::isfinite(w[i]) || !(allow_zero_weights ? w[i] >= 0 : w[i] > 0)) {
          err = "weight " + std::to_string(i) + " is not a finite " + (allow_zero_weights ? "number >= 0" : "positive number");
          return mix;
        }
        sum += w[i];
      }
      if (!(sum > 0)) {
        err = "the weights sum to zero";
        return mix;
      }
      mix.log_w.resize(Eigen::Index(k));
      mix.comps.resize(k);
      for (std::size_t i = 0; i < k; ++i) {
        mix.log_w(Eigen::Index(i)) = std::log(w[i] / sum);
        Eigen::VectorXd mu = Eigen::Map<const Eigen::VectorXd>(m.data() + i * d, Eigen::Index(d));
        Eigen::MatrixXd cov = Eigen::Map<const detail::RowMat>(c.data() + i * d * d, Eigen::Index(d), Eigen::Index(d));
        if (!mu.allFinite() || !cov.allFinite() || !cov.isApprox(cov.transpose(), 1e-10) || !mix.comps[i].set(mu, cov)) {
          err = "component " + std::to_string(i) + " has a non-finite mean or a covariance that is not symmetric positive definite";
          return mix;
        }
      }
      return mix;
    }
  };

  struct Run {
    Mixture mix;
    double lower_bound = -std::numeric_limits<double>::infinity();
    int n_iter = 0;
    bool converged = false;
  };

  static void validate_options(const GmmOptions& o, const std::string& who) {
    if (o.components.empty()) throw ValueError(who + ": components is empty");
    for (int k : o.components)
      if (k < 1 || k > 100000) throw ValueError(who + ": component count " + std::to_string(k) + " is not in [1, 100000]");
    if (o.restarts < 1) throw ValueError(who + ": restarts must be >= 1");
    if (o.max_iter < 1) throw ValueError(who + ": max_iter must be >= 1");
    if (o.select == GmmOptions::Select::HeldOut && o.folds < 2) throw ValueError(who + ": folds must be >= 2");
    if (!(o.tol >= 0) || !std::isfinite(o.tol)) throw ValueError(who + ": tol must be finite and >= 0");
    if (!(o.reg_covar >= 0) || !std::isfinite(o.reg_covar)) throw ValueError(who + ": reg_covar must be finite and >= 0");
  }

  static double uniform01(std::mt19937_64& g) { return double(g() >> 11) * 0x1p-53; }

  std::mt19937_64 make_rng(int k, int restart, int fold) const {
    std::seed_seq seq{std::uint32_t(opt_.seed), std::uint32_t(opt_.seed >> 32), std::uint32_t(k),
                      std::uint32_t(restart), std::uint32_t(fold)};
    return std::mt19937_64(seq);
  }

  /// Fold index of every row: a seeded shuffle cut into `folds` nearly equal parts.
  std::vector<int> fold_ids(std::size_t n) const {
    std::vector<std::size_t> perm(n);
    std::iota(perm.begin(), perm.end(), std::size_t(0));
    auto g = make_rng(0, 0, 0x7fffffff);
    for (std::size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[g() % i]);
    std::vector<int> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[perm[i]] = int(i * std::size_t(opt_.folds) / n);
    return ids;
  }

  static Eigen::MatrixXd rows_where(const Eigen::MatrixXd& Z, const std::vector<int>& ids, int f, bool equal) {
    std::vector<Eigen::Index> rows;
    for (std::size_t i = 0; i < ids.size(); ++i)
      if ((ids[i] == f) == equal) rows.push_back(Eigen::Index(i));
    Eigen::MatrixXd out(Eigen::Index(rows.size()), Z.cols());
    for (std::size_t i = 0; i < rows.size(); ++i) out.row(Eigen::Index(i)) = Z.row(rows[i]);
    return out;
  }

  /// One EM run: k components, restart index, fold (0 = all rows), its data.
  struct Task {
    int k, restart, fold;
    const Eigen::MatrixXd* Z;
  };

  /// Runs independent EM tasks in parallel (coarse grain: one task per thread, largest k
  /// first). Each task's random stream depends only on (seed, k, restart, fold), so the
  /// results do not depend on the thread count. Inner row-block loops run serially here.
  std::vector<Run> run_all(const std::vector<Task>& tasks) const {
    const std::size_t nt = tasks.size();
    std::vector<Run> out(nt);
    std::vector<std::exception_ptr> errors(nt);
    std::vector<std::size_t> order(nt);
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return tasks[a].k > tasks[b].k; });
#pragma omp parallel for schedule(dynamic, 1)
    for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(nt); ++i) {
      const auto j = order[std::size_t(i)];
      const Task& t = tasks[j];
      try {
        auto g = make_rng(t.k, t.restart, t.fold);
        out[j] = em(*t.Z, t.k, g);
      } catch (...) {
        errors[j] = std::current_exception();
      }
    }
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    return out;
  }

  /// The run with the highest final lower bound among runs[first, first + count) (first wins ties).
  static Run best_of(std::vector<Run>& runs, std::size_t first, std::size_t count) {
    std::size_t best = first;
    for (std::size_t i = first + 1; i < first + count; ++i)
      if (runs[i].lower_bound > runs[best].lower_bound) best = i;
    return std::move(runs[best]);
  }

  /// k-means++ seeding, then Lloyd iterations; returns a label per row.
  static std::vector<int> kmeans_labels(const Eigen::MatrixXd& Z, int k, std::mt19937_64& g) {
    const Eigen::Index n = Z.rows();
    Eigen::MatrixXd C(k, Z.cols());
    Eigen::VectorXd d2 = Eigen::VectorXd::Constant(n, std::numeric_limits<double>::infinity());
    Eigen::Index pick = Eigen::Index(g() % std::uint64_t(n));
    for (int c = 0; c < k; ++c) {
      C.row(c) = Z.row(pick);
      d2 = d2.cwiseMin((Z.rowwise() - C.row(c)).rowwise().squaredNorm());
      const double total = d2.sum();
      if (!(total > 0)) {  // all rows coincide with chosen centres: any row will do
        pick = Eigen::Index(g() % std::uint64_t(n));
        continue;
      }
      double u = uniform01(g) * total;
      pick = n - 1;
      for (Eigen::Index i = 0; i < n; ++i) {
        u -= d2(i);
        if (u < 0) {
          pick = i;
          break;
        }
      }
    }
    std::vector<int> labels(std::size_t(n), -1);
    const Eigen::Index nb = detail::n_row_blocks(n);
    std::vector<Eigen::MatrixXd> psum(static_cast<std::size_t>(nb));
    std::vector<Eigen::VectorXd> pcnt(static_cast<std::size_t>(nb));
    std::vector<char> pchanged(static_cast<std::size_t>(nb));
    for (int it = 0; it < 30; ++it) {
      const Eigen::RowVectorXd cn = C.rowwise().squaredNorm().transpose();
      detail::for_row_blocks(n, [&](Eigen::Index b, Eigen::Index r0, Eigen::Index nr) {
        Eigen::MatrixXd D = -2.0 * (Z.middleRows(r0, nr) * C.transpose());  // |z|^2 does not change the argmin
        D.rowwise() += cn;
        auto& sum = psum[std::size_t(b)];
        auto& cnt = pcnt[std::size_t(b)];
        sum = Eigen::MatrixXd::Zero(k, Z.cols());
        cnt = Eigen::VectorXd::Zero(k);
        char changed = 0;
        for (Eigen::Index i = 0; i < nr; ++i) {
          Eigen::Index best;
          D.row(i).minCoeff(&best);
          auto& lab = labels[std::size_t(r0 + i)];
          if (lab != int(best)) lab = int(best), changed = 1;
          sum.row(best) += Z.row(r0 + i);
          cnt(best) += 1;
        }
        pchanged[std::size_t(b)] = changed;
      });
      if (std::none_of(pchanged.begin(), pchanged.end(), [](char c) { return c != 0; })) break;
      Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(k, Z.cols());
      Eigen::VectorXd cnt = Eigen::VectorXd::Zero(k);
      for (Eigen::Index b = 0; b < nb; ++b) sum += psum[std::size_t(b)], cnt += pcnt[std::size_t(b)];
      for (int c = 0; c < k; ++c)
        if (cnt(c) > 0) C.row(c) = sum.row(c) / cnt(c);  // an empty cluster keeps its centre
    }
    return labels;
  }

  /// M-step (sklearn's formulas) with collapse repair. `log_norm` (per-row mixture
  /// log-likelihood, may be empty) picks the re-seed location.
  bool m_step(const Eigen::MatrixXd& Z, const Eigen::MatrixXd& resp, const Eigen::VectorXd& log_norm,
              std::vector<int>& reseeds, Mixture& mix, std::mt19937_64& g) const {
    const Eigen::Index n = Z.rows(), d = Z.cols(), K = resp.cols(), nb = detail::n_row_blocks(n);
    // Two passes over row blocks (means, then covariances of the centred rows, as sklearn),
    // partial sums reduced in block order.
    std::vector<Eigen::VectorXd> pn(static_cast<std::size_t>(nb));
    std::vector<Eigen::MatrixXd> ps(static_cast<std::size_t>(nb));
    detail::for_row_blocks(n, [&](Eigen::Index b, Eigen::Index r0, Eigen::Index nr) {
      pn[std::size_t(b)] = resp.middleRows(r0, nr).colwise().sum().transpose();
      ps[std::size_t(b)] = resp.middleRows(r0, nr).transpose() * Z.middleRows(r0, nr);
    });
    Eigen::VectorXd nk = Eigen::VectorXd::Zero(K);
    Eigen::MatrixXd S = Eigen::MatrixXd::Zero(K, d);
    for (std::size_t b = 0; b < std::size_t(nb); ++b) nk += pn[b], S += ps[b];
    nk.array() += 10.0 * std::numeric_limits<double>::epsilon();
    const Eigen::MatrixXd mu = S.array().colwise() / nk.array();
    std::vector<std::vector<Eigen::MatrixXd>> pc(static_cast<std::size_t>(nb));
    detail::for_row_blocks(n, [&](Eigen::Index b, Eigen::Index r0, Eigen::Index nr) {
      auto& out = pc[std::size_t(b)];
      out.resize(std::size_t(K));
      for (Eigen::Index k = 0; k < K; ++k) {
        if (nk(k) < 1.0) continue;
        const Eigen::MatrixXd diff = Z.middleRows(r0, nr).rowwise() - mu.row(k);
        out[std::size_t(k)] = (diff.array().colwise() * resp.col(k).segment(r0, nr).array()).matrix().transpose() * diff;
      }
    });
    std::vector<detail::GaussianComponent> comps(static_cast<std::size_t>(K));
    std::vector<char> ok(std::size_t(K), 0);
    for (Eigen::Index k = 0; k < K; ++k) {
      if (nk(k) < 1.0) continue;  // less than one sample's worth of responsibility: collapsed
      Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(d, d);
      for (std::size_t b = 0; b < std::size_t(nb); ++b) cov += pc[b][std::size_t(k)];
      cov /= nk(k);
      cov.diagonal().array() += opt_.reg_covar;
      ok[std::size_t(k)] = comps[std::size_t(k)].set(mu.row(k).transpose(), cov) ? 1 : 0;
    }
    std::vector<double> w(static_cast<std::size_t>(K));
    for (Eigen::Index k = 0; k < K; ++k) w[std::size_t(k)] = nk(k);
    bool repaired = false;
    std::vector<std::size_t> keep;
    for (Eigen::Index k = 0; k < K; ++k) {
      if (ok[std::size_t(k)]) {
        keep.push_back(std::size_t(k));
        continue;
      }
      repaired = true;
      if (++reseeds[std::size_t(k)] > 3) continue;  // dropped
      // Re-seed at the worst-explained row with the data covariance and one sample's weight.
      Eigen::Index at;
      if (log_norm.size() == n) log_norm.minCoeff(&at);
      else at = Eigen::Index(g() % std::uint64_t(n));
      const Eigen::VectorXd mu = Z.row(at).transpose();
      const Eigen::VectorXd zm = Z.colwise().mean().transpose();
      Eigen::MatrixXd diff = Z.rowwise() - zm.transpose();
      Eigen::MatrixXd cov = diff.transpose() * diff / double(n);
      cov.diagonal().array() += std::max(opt_.reg_covar, 1e-6);
      if (!comps[std::size_t(k)].set(mu, cov)) continue;
      w[std::size_t(k)] = 1.0;
      keep.push_back(std::size_t(k));
    }
    if (keep.empty())
      throw ValueError("Gmm::fit: every component's covariance is singular; increase GmmOptions::reg_covar");
    Mixture next;
    next.log_w.resize(Eigen::Index(keep.size()));
    double sum = 0;
    for (auto k : keep) sum += w[k];
    std::vector<int> kept_reseeds;
    for (std::size_t i = 0; i < keep.size(); ++i) {
      next.log_w(Eigen::Index(i)) = std::log(w[keep[i]] / sum);
      next.comps.push_back(std::move(comps[keep[i]]));
      kept_reseeds.push_back(reseeds[keep[i]]);
    }
    reseeds = std::move(kept_reseeds);
    mix = std::move(next);
    return repaired;
  }

  /// One EM run from a k-means++ initialisation.
  Run em(const Eigen::MatrixXd& Z, int k, std::mt19937_64& g) const {
    const Eigen::Index n = Z.rows();
    const auto labels = kmeans_labels(Z, k, g);
    Eigen::MatrixXd resp = Eigen::MatrixXd::Zero(n, k);
    for (Eigen::Index i = 0; i < n; ++i) resp(i, labels[std::size_t(i)]) = 1.0;
    Run run;
    std::vector<int> reseeds(std::size_t(k), 0);
    m_step(Z, resp, Eigen::VectorXd(), reseeds, run.mix, g);
    double lb = -std::numeric_limits<double>::infinity();
    for (int it = 1; it <= opt_.max_iter; ++it) {
      const double prev = lb;
      const Eigen::VectorXd log_norm = run.mix.e_step(Z, &resp);
      lb = log_norm.mean();
      const bool repaired = m_step(Z, resp, log_norm, reseeds, run.mix, g);
      run.n_iter = it;
      run.lower_bound = lb;
      if (repaired) {
        lb = -std::numeric_limits<double>::infinity();  // the model jumped: do not test convergence now
        continue;
      }
      if (std::abs(lb - prev) < opt_.tol) {
        run.converged = true;
        break;
      }
    }
    return run;
  }

  GmmOptions opt_{};
  StandardScaler scaler_;
  Mixture mix_;
  int chosen_ = 0;
  std::vector<std::pair<int, double>> criteria_;
  bool converged_ = false;
  int n_iter_ = 0;
  double lower_bound_ = std::numeric_limits<double>::quiet_NaN();
};

}  // namespace scoreood::density
