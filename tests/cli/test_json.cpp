// examples/cli/json.hpp, the JSON of the scoreood tool and the examples: every metric of a
// report read back exactly (on the scikit-learn reference cases and on awkward doubles), keys
// in their documented order, evaluation tables keyed by set name with names escaped, and one
// line or an indented file as asked.
#include "cli/json.hpp"

#include <scoreood/metrics/report.hpp>
#include <scoreood/metrics/table.hpp>

#include <catch2/catch.hpp>

#include "../reference/ref_file.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

namespace m = scoreood::metrics;
namespace cli = scoreood::cli;
using scoreood::testing::read_ref_file;

namespace {
const std::vector<std::string> kReportKeys{"auroc",         "aupr_in",           "aupr_out", "fpr_at_95_tpr",
                                           "tnr_at_95_tpr", "detection_accuracy", "n_in",     "n_out"};

std::vector<std::string> keys_of(const cli::Json& j) {
  std::vector<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.push_back(it.key());
  return k;
}

/// The text of `key`'s number in `line`, as written.
std::string number_text(const std::string& line, const std::string& key) {
  const auto k = line.find("\"" + key + "\":");
  REQUIRE(k != std::string::npos);
  const auto from = k + key.size() + 3;
  return line.substr(from, line.find_first_of(",}", from) - from);
}

std::vector<m::EvalRow> sample_rows() {
  const std::vector<double> in{0.1, 0.2, 0.3, 0.4, 0.5};
  const std::vector<double> out_a{0.35, 0.6, 0.7, 0.8};  // partly overlapping
  const std::vector<double> out_b{0.05, 0.15, 0.25};     // below the in-distribution scores
  return {{"mnist", m::evaluate(in, out_a)}, {"rot90 \"q\"\\\n\t\x01 \xC3\xBC", m::evaluate(in, out_b)}};
}
}  // namespace

TEST_CASE("to_json writes every metric of a report so that it reads back exactly", "[cli][json]") {
  const auto cases = read_ref_file(std::string(SCOREOOD_TEST_DATA_DIR) + "/metric_refs.txt");
  REQUIRE(cases.size() >= 12);
  for (const auto& c : cases) {
    INFO("case " << c.name);
    const auto rep = m::evaluate(c.at("in").values, c.at("out").values);
    const std::string line = cli::dump_line(cli::to_json(rep));
    CHECK(line.find('\n') == std::string::npos);
    const auto j = cli::Json::parse(line);
    CHECK(keys_of(j) == kReportKeys);
    CHECK(j["auroc"].get<double>() == rep.auroc);  // exact: shortest round-trip text
    CHECK(j["aupr_in"].get<double>() == rep.aupr_in);
    CHECK(j["aupr_out"].get<double>() == rep.aupr_out);
    CHECK(j["fpr_at_95_tpr"].get<double>() == rep.fpr_at_95_tpr);
    CHECK(j["tnr_at_95_tpr"].get<double>() == rep.tnr_at_95_tpr);
    CHECK(j["detection_accuracy"].get<double>() == rep.detection_accuracy);
    CHECK(j["n_in"].is_number_unsigned());
    CHECK(j["n_in"].get<std::size_t>() == c.at("in").values.size());
    CHECK(j["n_out"].get<std::size_t>() == c.at("out").values.size());
    // Any JSON reader gets the same doubles: strtod on the text as written.
    CHECK(std::strtod(number_text(line, "auroc").c_str(), nullptr) == rep.auroc);
    CHECK(std::strtod(number_text(line, "aupr_out").c_str(), nullptr) == rep.aupr_out);
  }
}

TEST_CASE("to_json keeps awkward doubles to the last bit, in their shortest text", "[cli][json]") {
  const std::vector<double> values{0.1,
                                   1.0 / 3.0,
                                   0.30000000000000004,
                                   2.0 / 3.0 - 1e-17,
                                   std::numeric_limits<double>::denorm_min(),
                                   std::numeric_limits<double>::min(),
                                   std::numeric_limits<double>::max(),
                                   std::nextafter(1.0, 0.0),
                                   0.0,
                                   1.0};
  for (double v : values) {
    INFO(v);
    m::Report r;
    r.auroc = v;
    const std::string line = cli::dump_line(cli::to_json(r));
    CHECK(cli::Json::parse(line)["auroc"].get<double>() == v);
    const std::string text = number_text(line, "auroc");
    CHECK(std::strtod(text.c_str(), nullptr) == v);
    CHECK(text.size() <= 24);  // shortest form, not a fixed 17 significant digits
  }
  m::Report tenth;
  tenth.auroc = 0.1;
  CHECK(number_text(cli::dump_line(cli::to_json(tenth)), "auroc") == "0.1");
}

TEST_CASE("rows_to_json holds every set by name, in row order", "[cli][json]") {
  const auto rows = sample_rows();
  const cli::Json j = cli::rows_to_json(rows);
  REQUIRE(keys_of(j) == std::vector<std::string>{"sets"});
  REQUIRE(keys_of(j["sets"]) == std::vector<std::string>{rows[0].name, rows[1].name});

  // The line parses back to the same names (quote, backslash, newline, tab, a control
  // character and UTF-8 escaped as JSON requires) and the same numbers.
  const std::string line = cli::dump_line(j);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.find("\\\"q\\\"") != std::string::npos);
  CHECK(line.find("\\u0001") != std::string::npos);
  const auto back = cli::Json::parse(line);
  for (const auto& row : rows) {
    INFO(row.name);
    const auto& o = back["sets"][row.name];
    CHECK(keys_of(o) == kReportKeys);
    CHECK(o["auroc"].get<double>() == row.report.auroc);
    CHECK(o["fpr_at_95_tpr"].get<double>() == row.report.fpr_at_95_tpr);
    CHECK(o["n_out"].get<std::size_t>() == row.report.n_out);
  }
  CHECK(back["sets"]["mnist"]["n_out"] == 4);
  CHECK(rows[1].report.auroc < 0.5);

  // The file form: indented, one final newline, the same value.
  const std::string file = cli::dump_file(j);
  CHECK(file.back() == '\n');
  CHECK(file.find("\n  \"sets\": {") != std::string::npos);
  CHECK(cli::Json::parse(file) == back);

  CHECK(cli::dump_line(cli::rows_to_json({})) == "{\"sets\":{}}");
}

TEST_CASE("rows_to_json refuses two sets of one name; dumps survive bytes that are not UTF-8", "[cli][json]") {
  auto rows = sample_rows();
  rows.push_back({"mnist", rows[1].report});
  CHECK_THROWS_AS(cli::rows_to_json(rows), scoreood::ValueError);
  CHECK_THROWS_WITH(cli::rows_to_json(rows), Catch::Contains("'mnist'"));

  const std::vector<m::EvalRow> latin1{{"caf\xE9", rows[0].report}};  // ISO-8859-1, not UTF-8
  const std::string line = cli::dump_line(cli::rows_to_json(latin1));
  CHECK(cli::Json::parse(line)["sets"].contains("caf\xEF\xBF\xBD"));  // U+FFFD replaces the byte
}
