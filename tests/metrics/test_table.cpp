// Evaluation table and its JSON form: rows computed with evaluate() on small score sets.
#include <scoreood/metrics/table.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <charconv>
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

// The number that follows `"key": ` after position `from` in s.
double number_after(const std::string& s, const std::string& key, std::size_t from) {
  const auto k = s.find("\"" + key + "\": ", from);
  REQUIRE(k != std::string::npos);
  const char* p = s.data() + k + key.size() + 4;
  double v = 0;
  const auto res = std::from_chars(p, s.data() + s.size(), v);
  REQUIRE(res.ec == std::errc{});
  return v;
}
}  // namespace

TEST_CASE("rows_to_json holds every set with full-precision metrics", "[metrics][table]") {
  const auto rows = sample_rows();
  const std::string j = m::rows_to_json(rows);
  REQUIRE(j.rfind("{\"sets\": {", 0) == 0);
  // Balanced braces outside strings, and the escaped quote in the second name.
  int depth = 0;
  bool in_str = false;
  for (std::size_t i = 0; i < j.size(); ++i) {
    if (in_str) {
      if (j[i] == '\\') ++i;
      else if (j[i] == '"') in_str = false;
    } else if (j[i] == '"') {
      in_str = true;
    } else if (j[i] == '{') {
      ++depth;
    } else if (j[i] == '}') {
      REQUIRE(depth > 0);
      --depth;
    }
  }
  CHECK(depth == 0);
  CHECK_FALSE(in_str);
  CHECK(j.find("\"rot90 \\\"q\\\"\": {") != std::string::npos);

  const auto a = j.find("\"mnist\": {");
  const auto b = j.find("\"rot90");
  REQUIRE(a != std::string::npos);
  CHECK(number_after(j, "auroc", a) == rows[0].report.auroc);  // exact: shortest round-trip text
  CHECK(number_after(j, "fpr_at_95_tpr", a) == rows[0].report.fpr_at_95_tpr);
  CHECK(number_after(j, "n_out", a) == 4);
  CHECK(number_after(j, "auroc", b) == rows[1].report.auroc);
  CHECK(rows[1].report.auroc < 0.5);
  CHECK(m::rows_to_json({}) == "{\"sets\": {}}");
}

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
