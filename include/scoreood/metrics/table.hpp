/** @file table.hpp
 *  @brief Paper-style evaluation table (one row per OOD set) as fixed-width text.
 *
 *  Each row compares the in-distribution test set against one OOD set or one
 *  transformed copy of the test set; OOD is the positive class. */
#pragma once
#include <scoreood/metrics/report.hpp>

#include <algorithm>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>

namespace scoreood::metrics {

/// One OOD set (or transform) evaluated against the in-distribution test set.
struct EvalRow {
  std::string name;
  Report report;
};

/// Fixed-width text table: optional title line, a header line, one line per row
/// (AUROC, AUPR-in, AUPR-out, FPR@95, TNR@95, DetAcc with 3 decimals, then n_in, n_out).
inline std::string format_table(std::span<const EvalRow> rows, std::string_view title = {}) {
  std::size_t w = 8;  // name column: wide enough for the longest name
  for (const auto& r : rows) w = std::max(w, r.name.size());
  std::string s;
  if (!title.empty()) (s += title) += '\n';
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-*s %8s %8s %8s %8s %8s %8s %8s %8s\n", static_cast<int>(w), "OOD set", "AUROC",
                "AUPR-in", "AUPR-out", "FPR@95", "TNR@95", "DetAcc", "n_in", "n_out");
  s += buf;
  for (const auto& row : rows) {
    const Report& r = row.report;
    std::snprintf(buf, sizeof buf, "%-*s %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8zu %8zu\n", static_cast<int>(w), "",
                  r.auroc, r.aupr_in, r.aupr_out, r.fpr_at_95_tpr, r.tnr_at_95_tpr, r.detection_accuracy, r.n_in,
                  r.n_out);
    // The name goes in separately so an arbitrarily long one is never truncated by buf.
    std::string line = buf;
    line.replace(0, row.name.size(), row.name);
    s += line;
  }
  return s;
}

}  // namespace scoreood::metrics
