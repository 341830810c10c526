/** @file score_file.hpp
 *  @brief Plain-text score files for the command-line tool: one number per line. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::metrics {

/// Reads one finite number per line; blank (whitespace-only) lines are skipped.
/// A line that is not exactly one finite number throws FormatError "file:line: ...".
inline std::vector<double> read_scores(const std::filesystem::path& path) {
  std::ifstream is(path);
  if (!is) throw FormatError(path.string() + ": cannot open score file");
  std::vector<double> out;
  std::string line;
  std::size_t lineno = 0;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  while (std::getline(is, line)) {
    ++lineno;
    std::size_t b = 0, e = line.size();
    while (b < e && is_space(line[b])) ++b;
    while (e > b && is_space(line[e - 1])) --e;
    if (b == e) continue;
    std::string_view tok(line.data() + b, e - b);
    if (tok.front() == '+') tok.remove_prefix(1);  // from_chars refuses a leading '+'
    double v = 0;
    const auto res = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    const auto where = path.string() + ":" + std::to_string(lineno);
    if (res.ec == std::errc::result_out_of_range)
      throw FormatError(where + ": number out of range: '" + std::string(line, b, e - b) + "'");
    if (res.ec != std::errc() || res.ptr != tok.data() + tok.size())
      throw FormatError(where + ": expected one number per line, got '" + std::string(line, b, std::min<std::size_t>(e - b, 80)) + "'");
    if (!std::isfinite(v)) throw FormatError(where + ": score is not finite");
    out.push_back(v);
  }
  if (is.bad()) throw FormatError(path.string() + ": read error");
  return out;
}

/// Writes one score per line with 17 significant digits (round-trips exactly); atomic.
inline void write_scores(const std::filesystem::path& path, std::span<const double> scores) {
  std::vector<char> buf;
  buf.reserve(scores.size() * 24);
  char line[40];
  for (double s : scores) {
    const int n = std::snprintf(line, sizeof line, "%.17g\n", s);
    buf.insert(buf.end(), line, line + n);
  }
  io::write_file_atomic(path, buf);
}

}  // namespace scoreood::metrics
