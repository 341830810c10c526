/** @file parse.hpp
 *  @brief Command lines of the scoreood tool and the examples, on CLI11: the
 *  value checks they share (counts, finite numbers, comma lists), hand-written
 *  --help texts, and every parse problem turned into ONE ValueError that
 *  names the flag ("train: --steps: 'ten' is not a non-negative integer").
 *
 *  Conventions every program gets from configure():
 *    --name value and --name=value;  a flag given twice: the last value wins
 *    (scripts/demo relies on it);  -h/--help prints the usage and exits 0;
 *    unknown options and arguments are refused by name after parsing. */
#pragma once
#include <scoreood/core/error.hpp>

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace scoreood::cli {

/// --help prints this text as it is (each program writes its own usage).
class UsageText : public CLI::FormatterBase {
 public:
  explicit UsageText(std::string text) : text_(std::move(text)) {}
  std::string make_help(const CLI::App*, std::string, CLI::AppFormatMode) const override { return text_; }

 private:
  std::string text_;
};

/// The conventions above, for a program or one of its subcommands; `usage` is its --help text.
inline void configure(CLI::App& app, std::string usage) {
  app.formatter(std::make_shared<UsageText>(std::move(usage)));
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.allow_extras();  // kept for reject_extras(), which names them our way
}

// ------------------------------------------------------------ values
/// A decimal integer >= 0 (>= 1 when `positive`); anything else, "-1", "1e3", "0x10" or " 7", is refused.
template <std::unsigned_integral T>
T to_count(const std::string& flag, const std::string& v, bool positive = false) {
  T n = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || (positive && n == 0))
    throw CLI::ValidationError(flag, "'" + v + "' is not a " + (positive ? "positive" : "non-negative") + " integer");
  return n;
}
/// A finite number (> 0 when `positive`), read exactly (std::from_chars: the nearest double).
inline double to_real(const std::string& flag, const std::string& v, bool positive = false) {
  double x = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || !std::isfinite(x) || (positive && !(x > 0)))
    throw CLI::ValidationError(flag, "'" + v + "' is not a " + (positive ? "positive " : "") + "number");
  return x;
}

/// --flag N into `var` (unchanged when the flag is absent).
template <std::unsigned_integral T>
CLI::Option* add_count(CLI::App& app, const std::string& flag, T& var, bool positive = false) {
  return app.add_option_function<std::string>(
      flag, [&var, flag, positive](const std::string& v) { var = to_count<T>(flag, v, positive); });
}
/// --flag X into `var` (unchanged when the flag is absent).
inline CLI::Option* add_real(CLI::App& app, const std::string& flag, double& var, bool positive = false) {
  return app.add_option_function<std::string>(
      flag, [&var, flag, positive](const std::string& v) { var = to_real(flag, v, positive); });
}
/// A flag that may be given several times, one value each: every value, in order.
inline CLI::Option* add_repeated(CLI::App& app, const std::string& flag, std::vector<std::string>& values) {
  return app.add_option(flag, values)
      ->allow_extra_args(false)  // --ood a=x b=y: b=y is not a second value of --ood
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}
/// A switch without a value (--json; --json=1 is refused).
inline CLI::Option* add_switch(CLI::App& app, const std::string& flag, bool& var) {
  return app.add_flag(flag, var)->disable_flag_override();
}

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

// ------------------------------------------------------------ errors
namespace detail {
/// "scoreood train" for the train subcommand of scoreood.
inline std::string full_name(const CLI::App& app) {
  const CLI::App* p = app.get_parent();
  return p ? full_name(*p) + " " + app.get_name() : app.get_name();
}
/// The subcommand being parsed (the deepest one selected), or the program itself.
inline CLI::App& selected(CLI::App& app) {
  const auto subs = app.get_subcommands();
  return subs.empty() ? app : selected(*subs.front());
}
/// "train: " for a subcommand; nothing for the program (its main prints its own name first).
inline std::string prefix(const CLI::App& app) {
  std::string s;
  for (const CLI::App* a = &app; a->get_parent(); a = a->get_parent()) s = a->get_name() + ": " + s;
  return s;
}
/// The app whose option an error message starts with ("--data-root: ..." is the program's even
/// while a subcommand is being parsed); `at` when the message names none.
inline const CLI::App& owner_of(const CLI::App& at, const std::string& msg) {
  if (!msg.starts_with("-")) return at;
  const std::string flag = msg.substr(0, msg.find_first_of(": "));
  for (const CLI::App* a = &at; a; a = a->get_parent())
    if (a->get_option_no_throw(flag)) return *a;
  return at;
}

/// CLI11's message, reworded where it does not say plainly what is wrong.
inline std::string message_of(const CLI::Error& e, const CLI::App& at) {
  std::string m = e.what();
  const std::string see = " (see " + full_name(at) + " --help)";
  if (dynamic_cast<const CLI::RequiredError*>(&e) && m.ends_with(" is required"))
    return "missing " + m.substr(0, m.size() - 12) + see;  // "--in is required"
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) {
    if (const auto colon = m.find(": "); m.starts_with("-") && colon != std::string::npos && m.ends_with(" missing"))
      return m.substr(0, colon) + " needs a value";  // "--steps: 1 required TEXT missing"
    if (const auto at_ = m.find(" was given a disallowed flag override"); at_ != std::string::npos) {
      const std::string name = m.substr(0, at_);
      return (name.starts_with("-") ? name : "--" + name) + " takes no value";
    }
  }
  return m;
}
}  // namespace detail

/// Refuses what allow_extras() kept in `app`: "unknown option --bogus (see scoreood metrics --help)",
/// "unexpected argument 'x'", or for a program with subcommands and none given "unknown command 'x'".
inline void reject_extras(const CLI::App& app) {
  const auto rest = app.remaining();
  if (rest.empty()) return;
  const std::string& a = rest.front();
  const std::string see = " (see " + detail::full_name(app) + " --help)";
  auto fail = [&](const std::string& m) { throw ValueError(detail::prefix(app) + m); };
  if (a.size() > 1 && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9'))
    fail("unknown option " + a.substr(0, a.find('=')) + see);
  const auto commands = app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
  if (!commands.empty() && app.get_subcommands().empty()) {
    std::string names;
    for (const CLI::App* c : commands) names += (names.empty() ? "" : ", ") + c->get_name();
    fail("unknown command '" + a + "' (commands: " + names + ")");
  }
  fail("unexpected argument '" + a + "'");
}

/// Parses argv into `app` (configured with configure()). Returns false when --help printed the
/// usage of the program or of its subcommand (exit 0); throws ValueError for any problem, prefixed
/// with the subcommand ("train: --steps needs a value").
inline bool parse(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();  // CLI11 hands this to the selected subcommand
    return false;
  } catch (const CLI::Error& e) {
    // An unknown (often misspelt) flag explains most other errors ("missing --out" after
    // "--ouut m"): it is reported first.
    reject_extras(detail::selected(app));
    reject_extras(app);
    const CLI::App& at = detail::owner_of(detail::selected(app), e.what());
    throw ValueError(detail::prefix(at) + detail::message_of(e, at));
  }
  reject_extras(detail::selected(app));
  reject_extras(app);
  return true;
}

}  // namespace scoreood::cli
