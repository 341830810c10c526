/** @file ref_file.hpp
 *  @brief Test-side reader for the reference files written by refs_format.py.
 *
 *  Format: "case <name>", then lines "<key> <ndim> <dims...> <values...>", then "end". */
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
  double scalar() const { return values.at(0); }
  std::size_t dim(std::size_t i) const { return shape.at(i); }
};

struct RefCase {
  std::string name;
  std::map<std::string, RefArray> items;
  const RefArray& at(const std::string& key) const {
    auto it = items.find(key);
    if (it == items.end()) throw Error("reference case '" + name + "' has no key '" + key + "'");
    return it->second;
  }
  bool has(const std::string& key) const { return items.count(key) != 0; }
};

inline std::vector<RefCase> read_ref_file(const std::string& path) {
  std::ifstream is(path);
  if (!is) throw Error(path + ": cannot open reference file (run the generator in tests/reference/)");
  std::vector<RefCase> cases;
  std::string line;
  std::size_t lineno = 0;
  bool open = false;
  while (std::getline(is, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    const auto where = path + ":" + std::to_string(lineno);
    if (key == "case") {
      cases.emplace_back();
      ls >> cases.back().name;
      open = true;
    } else if (key == "end") {
      open = false;
    } else {
      if (!open) throw Error(where + ": record outside a case");
      RefArray a;
      std::size_t ndim = 0, n = 1;
      ls >> ndim;
      for (std::size_t i = 0; i < ndim; ++i) {
        std::size_t d = 0;
        ls >> d;
        a.shape.push_back(d);
        n *= d;
      }
      a.values.resize(n);
      for (auto& v : a.values) {
        std::string tok;
        if (!(ls >> tok)) throw Error(where + ": too few values for '" + key + "'");
        v = std::stod(tok);  // handles "nan", "inf"
      }
      cases.back().items[key] = std::move(a);
    }
  }
  if (cases.empty()) throw Error(path + ": no cases");
  return cases;
}

}  // namespace scoreood::testing
