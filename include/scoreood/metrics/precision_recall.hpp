/** @file precision_recall.hpp
 *  @brief Area under the precision-recall curve, OOD positive (AUPR-out) and
 *  in-distribution positive (AUPR-in).
 *
 *  Step-wise average precision as in sklearn.metrics.average_precision_score:
 *  AP = sum_k (R_k - R_{k-1}) P_k over distinct thresholds in decreasing order,
 *  no interpolation (trapezoidal AUPR is optimistic). Higher score = more OOD. */
#pragma once
#include <scoreood/metrics/roc.hpp>

#include <algorithm>
#include <span>
#include <vector>

namespace scoreood::metrics {

namespace detail {
/// Average precision of `pos` against `neg`, higher score = more positive; inputs checked.
inline double average_precision(std::span<const double> pos, std::span<const double> neg) {
  const auto c = roc_counts(pos, neg);
  double ap = 0.0;
  std::uint64_t tp_before = 0;
  for (std::size_t j = 0; j < c.thresholds.size(); ++j) {
    if (c.tp[j] == tp_before) continue;  // recall unchanged: no contribution
    const double precision = double(c.tp[j]) / double(c.tp[j] + c.fp[j]);
    ap += double(c.tp[j] - tp_before) / double(c.n_pos) * precision;
    tp_before = c.tp[j];
  }
  // Rounding in the sum can overshoot a perfect 1 by an ulp; a precision-weighted
  // average of recall steps is at most 1 by definition.
  return std::min(ap, 1.0);
}
}  // namespace detail

/// Average precision with OOD as the positive class.
inline double aupr_out(std::span<const double> in_scores, std::span<const double> out_scores) {
  detail::check_pair(in_scores, out_scores);
  return detail::average_precision(out_scores, in_scores);
}

/// Average precision with in-distribution as the positive class (scores negated).
inline double aupr_in(std::span<const double> in_scores, std::span<const double> out_scores) {
  detail::check_pair(in_scores, out_scores);
  std::vector<double> pos(in_scores.size()), neg(out_scores.size());
  for (std::size_t i = 0; i < pos.size(); ++i) pos[i] = -in_scores[i];
  for (std::size_t i = 0; i < neg.size(); ++i) neg[i] = -out_scores[i];
  return detail::average_precision(pos, neg);
}

template <ScoreContainer A, ScoreContainer B>
double aupr_out(const A& in_scores, const B& out_scores) {
  return detail::with_double(in_scores, out_scores, [](auto a, auto b) { return aupr_out(a, b); });
}
template <ScoreContainer A, ScoreContainer B>
double aupr_in(const A& in_scores, const B& out_scores) {
  return detail::with_double(in_scores, out_scores, [](auto a, auto b) { return aupr_in(a, b); });
}

}  // namespace scoreood::metrics
