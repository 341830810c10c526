/** @file json.hpp
 *  @brief The JSON that the scoreood tool and the examples write, through
 *  nlohmann-json: metric reports, evaluation tables and the files built from
 *  them (`scoreood metrics --json`, `scoreood eval --json`, `results.json`).
 *
 *  Numbers are written as the shortest text that reads back to the same
 *  double (nlohmann-json's dump), counts as integers; objects keep their keys
 *  in the order written here. A non-finite number would be written as null
 *  (the metrics are always finite). */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/metrics/report.hpp>
#include <scoreood/metrics/table.hpp>

#include <nlohmann/json.hpp>

#include <span>
#include <string>

namespace scoreood::cli {

/// A JSON value whose objects keep insertion order.
using Json = nlohmann::ordered_json;

/// {"auroc": ..., "aupr_in": ..., "aupr_out": ..., "fpr_at_95_tpr": ..., "tnr_at_95_tpr": ...,
///  "detection_accuracy": ..., "n_in": ..., "n_out": ...}
inline Json to_json(const metrics::Report& r) {
  return Json{{"auroc", r.auroc},
              {"aupr_in", r.aupr_in},
              {"aupr_out", r.aupr_out},
              {"fpr_at_95_tpr", r.fpr_at_95_tpr},
              {"tnr_at_95_tpr", r.tnr_at_95_tpr},
              {"detection_accuracy", r.detection_accuracy},
              {"n_in", r.n_in},
              {"n_out", r.n_out}};
}

/// {"sets": {"<name>": to_json(report), ...}}, in row order. Two rows of one name would make
/// one key hide the other: refused (ValueError).
inline Json rows_to_json(std::span<const metrics::EvalRow> rows) {
  Json sets = Json::object();
  for (const auto& row : rows) {
    if (sets.contains(row.name)) throw ValueError("two evaluated sets are named '" + row.name + "'");
    sets[row.name] = to_json(row.report);
  }
  return Json{{"sets", std::move(sets)}};
}

/// One line, no newline (a summary on stdout). Bytes that are not UTF-8 (a set name or a path
/// from the command line) become U+FFFD instead of failing the dump.
inline std::string dump_line(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

/// Indented by two spaces, with a final newline (a file).
inline std::string dump_file(const Json& j) { return j.dump(2, ' ', false, Json::error_handler_t::replace) + '\n'; }

}  // namespace scoreood::cli
