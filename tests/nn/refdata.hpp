/** @file refdata.hpp
 *  @brief Reads the reference arrays that the scripts in tests/reference/ store (test helper).
 *
 *  Text format, written by tests/reference/refdata.py:
 *    # comment lines
 *    NAME NDIM D0 D1 ...      (one header line per array)
 *    v0 v1 ...                (prod(D) values, any whitespace, printed with 17 digits)
 *  Plain text keeps the stored values reviewable in diffs and exact in double. */
#pragma once
#include <scoreood/core/error.hpp>

#include <cstddef>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace scoreood::testing {

struct RefArray {
  std::vector<std::size_t> shape;
  std::vector<double> values;
};

inline std::map<std::string, RefArray> load_refdata(const std::string& path) {
  std::ifstream is(path);
  if (!is) throw FormatError(path + ": cannot open reference data (run the generator in tests/reference/)");
  std::map<std::string, RefArray> out;
  std::string line;
  while (std::getline(is, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream hs(line);
    std::string name;
    std::size_t nd = 0;
    if (!(hs >> name >> nd)) throw FormatError(path + ": bad header line '" + line + "'");
    RefArray a;
    std::size_t n = 1;
    for (std::size_t i = 0; i < nd; ++i) {
      std::size_t d;
      if (!(hs >> d)) throw FormatError(path + ": bad shape for '" + name + "'");
      a.shape.push_back(d);
      n *= d;
    }
    a.values.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      if (!(is >> a.values[i])) throw FormatError(path + ": '" + name + "' is truncated");
    if (n > 0) std::getline(is, line);  // rest of the last value line
    out[name] = std::move(a);
  }
  return out;
}

}  // namespace scoreood::testing
