/** @file report.hpp
 *  @brief All OOD metrics at once (metrics::Report); table.hpp formats rows of them.
 *
 *  OOD is the POSITIVE class; a HIGHER score means MORE out-of-distribution. */
#pragma once
#include <scoreood/metrics/precision_recall.hpp>
#include <scoreood/metrics/roc.hpp>

#include <cstddef>
#include <span>

namespace scoreood::metrics {

/// Every metric of one in-distribution vs OOD comparison.
struct Report {
  double auroc = 0, aupr_in = 0, aupr_out = 0, fpr_at_95_tpr = 0, tnr_at_95_tpr = 0, detection_accuracy = 0;
  std::size_t n_in = 0, n_out = 0;
};

inline Report evaluate(std::span<const double> in_scores, std::span<const double> out_scores) {
  Report r;
  r.auroc = auroc(in_scores, out_scores);
  r.aupr_in = aupr_in(in_scores, out_scores);
  r.aupr_out = aupr_out(in_scores, out_scores);
  r.fpr_at_95_tpr = fpr_at_tpr(in_scores, out_scores, 0.95);
  r.tnr_at_95_tpr = 1.0 - r.fpr_at_95_tpr;
  r.detection_accuracy = detection_accuracy(in_scores, out_scores);
  r.n_in = in_scores.size();
  r.n_out = out_scores.size();
  return r;
}

template <ScoreContainer A, ScoreContainer B>
Report evaluate(const A& in_scores, const B& out_scores) {
  return detail::with_double(in_scores, out_scores, [](auto a, auto b) { return evaluate(a, b); });
}

}  // namespace scoreood::metrics
