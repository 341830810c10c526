/** @file args.hpp
 *  @brief Strict flag parsing for the scoreood command line: every flag is
 *  declared, every value checked, every problem one ValueError naming the flag. */
#pragma once
#include <scoreood/core/error.hpp>

#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::cli {

/// Parsed `--flag value` pairs (repeatable flags keep every value), `--switch`es and positionals.
class Args {
 public:
  /// @param valued   flags that take a value (`--name V` or `--name=V`)
  /// @param switches flags without a value
  Args(std::string_view command, std::vector<std::string> argv, std::set<std::string> valued,
       std::set<std::string> switches = {}, std::size_t max_positional = 0)
      : cmd_(command) {
    for (std::size_t i = 0; i < argv.size(); ++i) {
      std::string a = argv[i];
      if (a.size() > 2 && a.starts_with("--")) {
        std::string name = a.substr(2), value;
        bool has_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
          value = name.substr(eq + 1);
          name = name.substr(0, eq);
          has_value = true;
        }
        if (switches.count(name)) {
          if (has_value) fail("--" + name + " takes no value");
          switches_.insert(name);
        } else if (valued.count(name)) {
          if (!has_value) {
            if (i + 1 >= argv.size()) fail("--" + name + " needs a value");
            value = argv[++i];
          }
          values_[name].push_back(value);
        } else {
          fail("unknown option --" + name + " (see scoreood " + cmd_ + " --help)");
        }
      } else if (a.size() > 1 && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9')) {
        fail("unknown option " + a + " (see scoreood " + cmd_ + " --help)");
      } else {
        if (positional_.size() >= max_positional) fail("unexpected argument '" + a + "'");
        positional_.push_back(a);
      }
    }
  }

  bool has(const std::string& name) const { return values_.count(name) || switches_.count(name); }
  const std::vector<std::string>& positional() const { return positional_; }

  /// The single value of --name (the last one given), or nullopt.
  std::optional<std::string> get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second.back();
  }
  std::string required(const std::string& name) const {
    auto v = get(name);
    if (!v) fail("missing --" + name + " (see scoreood " + cmd_ + " --help)");
    return *v;
  }
  std::string str(const std::string& name, std::string def) const { return get(name).value_or(std::move(def)); }
  std::vector<std::string> all(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }

  /// Non-negative integer value of --name; `def` when absent.
  std::size_t count(const std::string& name, std::size_t def) const {
    auto v = get(name);
    if (!v) return def;
    std::size_t n = 0;
    const auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (v->empty() || ec != std::errc() || p != v->data() + v->size())
      fail("--" + name + ": '" + *v + "' is not a non-negative integer");
    return n;
  }
  /// Finite real value of --name; `def` when absent.
  double real(const std::string& name, double def) const {
    auto v = get(name);
    if (!v) return def;
    double x = 0;
    const auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), x);
    if (v->empty() || ec != std::errc() || p != v->data() + v->size() || !std::isfinite(x))
      fail("--" + name + ": '" + *v + "' is not a number");
    return x;
  }

  [[noreturn]] void fail(const std::string& msg) const { throw ValueError(cmd_ + ": " + msg); }

 private:
  std::string cmd_;
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> switches_;
  std::vector<std::string> positional_;
};

/// Splits "a,b,c" (empty items dropped).
inline std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const auto end = std::min(s.find(',', pos), s.size());
    if (end > pos) out.emplace_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

}  // namespace scoreood::cli
