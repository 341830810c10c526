// The fixed-width evaluation table: rows computed with evaluate() on small score sets
// (its JSON form is the examples' cli/json.hpp, tested in tests/cli/test_json.cpp).
#include <scoreood/metrics/table.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace m = scoreood::metrics;

namespace {
std::vector<m::EvalRow> sample_rows() {
  const std::vector<double> in{0.1, 0.2, 0.3, 0.4, 0.5};
  const std::vector<double> out_a{0.35, 0.6, 0.7, 0.8};     // partly overlapping
  const std::vector<double> out_b{0.05, 0.15, 0.25};        // below the in-distribution scores
  return {{"mnist", m::evaluate(in, out_a)}, {"rot90 \"q\"", m::evaluate(in, out_b)}};
}
}  // namespace

TEST_CASE("format_table prints a header and one line per row", "[metrics][table]") {
  const auto rows = sample_rows();
  const std::string t = m::format_table(rows, "Fashion-MNIST vs");
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = t.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(t.substr(start, nl - start));
  REQUIRE(lines.size() == 2 + rows.size());  // title, header, rows
  CHECK(lines[0] == "Fashion-MNIST vs");
  CHECK(lines[1].find("AUROC") != std::string::npos);
  CHECK(lines[2].rfind("mnist ", 0) == 0);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", rows[0].report.auroc);
  CHECK(lines[2].find(buf) != std::string::npos);
  // Fixed width: every row line as long as the header.
  CHECK(lines[2].size() == lines[1].size());
  CHECK(lines[3].size() == lines[1].size());
  // A long name widens the column instead of being cut.
  std::vector<m::EvalRow> long_rows{{std::string(40, 'x'), rows[0].report}};
  const std::string t2 = m::format_table(long_rows);
  CHECK(t2.find(std::string(40, 'x') + " ") != std::string::npos);
  CHECK(std::count(t2.begin(), t2.end(), '\n') == 2);
}
