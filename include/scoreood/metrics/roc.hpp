/** @file roc.hpp
 *  @brief ROC-based OOD metrics: ROC curve, AUROC, FPR/TNR at a TPR, detection accuracy.
 *
 *  OOD is the POSITIVE class; a HIGHER score means MORE out-of-distribution.
 *  A sample is flagged OOD when score >= threshold. Ties are grouped: all
 *  samples with the same score switch together, so no metric depends on the
 *  order of equal scores. FPR@TPR takes the first threshold (scanning from
 *  high scores) whose TPR reaches the target; it never relies on an exact
 *  float match (MSMA's pitfall). */
#pragma once
#include <scoreood/metrics/validate.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

namespace scoreood::metrics {

namespace detail {

/// Cumulative counts at each distinct threshold, thresholds in decreasing order:
/// tp[j] = #out with score >= thresholds[j], fp[j] = #in with score >= thresholds[j].
struct RocCounts {
  std::vector<double> thresholds;
  std::vector<std::uint64_t> tp, fp;
  std::uint64_t n_pos = 0, n_neg = 0;
};

/// `pos` are the positives (label 1), `neg` the negatives; both already checked.
inline RocCounts roc_counts(std::span<const double> pos, std::span<const double> neg) {
  std::vector<std::pair<double, bool>> all;  // (score, is_positive)
  all.reserve(pos.size() + neg.size());
  for (double s : pos) all.emplace_back(s, true);
  for (double s : neg) all.emplace_back(s, false);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  RocCounts c;
  c.n_pos = pos.size();
  c.n_neg = neg.size();
  std::uint64_t tp = 0, fp = 0;
  for (std::size_t i = 0; i < all.size();) {
    const double t = all[i].first;
    for (; i < all.size() && all[i].first == t; ++i) (all[i].second ? tp : fp) += 1;
    c.thresholds.push_back(t);
    c.tp.push_back(tp);
    c.fp.push_back(fp);
  }
  return c;
}

/// Calls f with double spans, converting float containers once.
template <ScoreContainer A, ScoreContainer B, class F>
decltype(auto) with_double(const A& a, const B& b, F&& f) {
  auto view = [](const auto& c) {
    using V = std::remove_cv_t<typename std::remove_cvref_t<decltype(c)>::value_type>;
    if constexpr (std::same_as<V, double>) return std::span<const double>(c.data(), c.size());
    else return detail::to_double(c);
  };
  auto va = view(a);
  auto vb = view(b);
  return f(std::span<const double>(va), std::span<const double>(vb));
}

}  // namespace detail

/// ROC curve like sklearn.metrics.roc_curve(drop_intermediate=False) with OOD positive:
/// point 0 is (0, 0) at threshold +inf (sklearn >= 1.3's convention; 1.2 wrote max+1),
/// then one point per distinct score, in decreasing threshold order, ending at (1, 1).
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
};

inline RocCurve roc_curve(std::span<const double> in_scores, std::span<const double> out_scores) {
  detail::check_pair(in_scores, out_scores);
  const auto c = detail::roc_counts(out_scores, in_scores);
  RocCurve r;
  const std::size_t n = c.thresholds.size() + 1;
  r.fpr.reserve(n);
  r.tpr.reserve(n);
  r.thresholds.reserve(n);
  r.fpr.push_back(0.0);
  r.tpr.push_back(0.0);
  r.thresholds.push_back(std::numeric_limits<double>::infinity());
  for (std::size_t j = 0; j < c.thresholds.size(); ++j) {
    r.fpr.push_back(double(c.fp[j]) / double(c.n_neg));
    r.tpr.push_back(double(c.tp[j]) / double(c.n_pos));
    r.thresholds.push_back(c.thresholds[j]);
  }
  return r;
}

/// Area under the ROC curve = P(out score > in score) + 0.5 P(tie)
/// (Mann-Whitney U with average ranks; exact integer counting, then one division).
inline double auroc(std::span<const double> in_scores, std::span<const double> out_scores) {
  detail::check_pair(in_scores, out_scores);
  const auto c = detail::roc_counts(out_scores, in_scores);
  // For each tie group: its in-samples lose to every out-sample above the group
  // and tie with the group's out-samples (counted as one half). Sum of 2*U.
  std::uint64_t twice_u = 0, tp_before = 0, fp_before = 0;
  for (std::size_t j = 0; j < c.thresholds.size(); ++j) {
    const std::uint64_t a = c.tp[j] - tp_before, b = c.fp[j] - fp_before;
    twice_u += b * (2 * tp_before + a);
    tp_before = c.tp[j];
    fp_before = c.fp[j];
  }
  return double(twice_u) / (2.0 * double(c.n_pos) * double(c.n_neg));
}

/// FPR (share of in-distribution samples flagged) at the first threshold, scanning
/// from high scores, whose TPR (share of OOD samples flagged) is >= `tpr`.
inline double fpr_at_tpr(std::span<const double> in_scores, std::span<const double> out_scores, double tpr = 0.95) {
  detail::check_tpr_target(tpr);
  detail::check_pair(in_scores, out_scores);
  const auto c = detail::roc_counts(out_scores, in_scores);
  for (std::size_t j = 0; j < c.thresholds.size(); ++j)
    if (double(c.tp[j]) / double(c.n_pos) >= tpr) return double(c.fp[j]) / double(c.n_neg);
  return 1.0;  // unreachable: the last threshold has TPR 1
}

/// 1 - fpr_at_tpr: share of in-distribution samples kept at that threshold.
inline double tnr_at_tpr(std::span<const double> in_scores, std::span<const double> out_scores, double tpr = 0.95) {
  return 1.0 - fpr_at_tpr(in_scores, out_scores, tpr);
}

/// max over thresholds of 0.5 * (TPR + TNR), the flag-none (0.5) and flag-all (0.5) thresholds included.
inline double detection_accuracy(std::span<const double> in_scores, std::span<const double> out_scores) {
  detail::check_pair(in_scores, out_scores);
  const auto c = detail::roc_counts(out_scores, in_scores);
  double best = 0.5;  // threshold +inf: TPR 0, TNR 1
  for (std::size_t j = 0; j < c.thresholds.size(); ++j) {
    const double tpr = double(c.tp[j]) / double(c.n_pos), fpr = double(c.fp[j]) / double(c.n_neg);
    best = std::max(best, 0.5 * (tpr + 1.0 - fpr));
  }
  return best;
}

// ---- float / other containers: converted to double, then the overloads above.
template <ScoreContainer A, ScoreContainer B>
RocCurve roc_curve(const A& in_scores, const B& out_scores) {
  return detail::with_double(in_scores, out_scores, [](auto a, auto b) { return roc_curve(a, b); });
}
template <ScoreContainer A, ScoreContainer B>
double auroc(const A& in_scores, const B& out_scores) {
  return detail::with_double(in_scores, out_scores, [](auto a, auto b) { return auroc(a, b); });
}
template <ScoreContainer A, ScoreContainer B>
double fpr_at_tpr(const A& in_scores, const B& out_scores, double tpr = 0.95) {
  return detail::with_double(in_scores, out_scores, [tpr](auto a, auto b) { return fpr_at_tpr(a, b, tpr); });
}
template <ScoreContainer A, ScoreContainer B>
double tnr_at_tpr(const A& in_scores, const B& out_scores, double tpr = 0.95) {
  return detail::with_double(in_scores, out_scores, [tpr](auto a, auto b) { return tnr_at_tpr(a, b, tpr); });
}
template <ScoreContainer A, ScoreContainer B>
double detection_accuracy(const A& in_scores, const B& out_scores) {
  return detail::with_double(in_scores, out_scores, [](auto a, auto b) { return detection_accuracy(a, b); });
}

}  // namespace scoreood::metrics
