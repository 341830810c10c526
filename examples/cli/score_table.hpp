/** @file score_table.hpp
 *  @brief The score table `scoreood score --out` writes and `scoreood metrics`
 *  reads back.
 *
 *  One image per line, in input order: `PATH<TAB>SCORE`, plus `<TAB>0|1`
 *  (is_ood) when the detector has a threshold. PATH is the image's file, or
 *  `NAME[i]` for image i (from 0) of an IDX or CIFAR file NAME; a tab, newline,
 *  carriage return or backslash in it is written `\t`, `\n`, `\r`, `\\`, so
 *  that the columns stay apart. SCORE is the shortest text that reads back to
 *  the same double. Plain score files (one number per line,
 *  metrics::write_scores) read the same way. */
#pragma once
#include <scoreood/core/error.hpp>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::cli {

/// The PATH column: `\t`, `\n`, `\r` and `\\` for the characters that would break a line or a column.
inline std::string tsv_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\\': out += "\\\\"; break;
      default: out += c;
    }
  }
  return out;
}

/// The shortest text that reads back to `v` exactly.
inline std::string number_text(double v) {
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

/// The scores of a score table or a plain score file, in line order; blank lines are skipped.
/// A line that is neither one number nor PATH<TAB>SCORE[<TAB>0|1] with a finite SCORE throws
/// FormatError "file:line: ...".
inline std::vector<double> read_score_column(const std::filesystem::path& path) {
  std::ifstream is(path);
  if (!is) throw FormatError(path.string() + ": cannot open score file");
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
  std::vector<double> out;
  std::string line;
  for (std::size_t lineno = 1; std::getline(is, line); ++lineno) {
    std::string_view rest(line);
    while (!rest.empty() && blank(rest.front())) rest.remove_prefix(1);
    while (!rest.empty() && blank(rest.back())) rest.remove_suffix(1);
    if (rest.empty()) continue;
    const std::string where = path.string() + ":" + std::to_string(lineno);
    const auto bad = [&](const std::string& why) {
      throw FormatError(where + ": " + why + ": '" + std::string(rest.substr(0, 80)) + "'");
    };
    std::string_view tok = rest;
    if (const auto tab = rest.find('\t'); tab != std::string_view::npos) {  // PATH, SCORE[, 0|1]
      tok = rest.substr(tab + 1);
      if (const auto flag = tok.find('\t'); flag != std::string_view::npos) {
        const std::string_view f = tok.substr(flag + 1);
        if (f != "0" && f != "1") bad("the third column is not 0 or 1");
        tok = tok.substr(0, flag);
      }
    }
    if (!tok.empty() && tok.front() == '+') tok.remove_prefix(1);  // from_chars refuses a leading '+'
    double v = 0;
    const auto res = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    if (tok.empty() || res.ec != std::errc() || res.ptr != tok.data() + tok.size())
      bad("expected one number, or PATH<TAB>SCORE[<TAB>0|1] as scoreood score writes");
    if (!std::isfinite(v)) bad("score is not finite");
    out.push_back(v);
  }
  if (is.bad()) throw FormatError(path.string() + ": read error");
  return out;
}

}  // namespace scoreood::cli
