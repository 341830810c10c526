/** @file validate.hpp
 *  @brief The rule every noise schedule obeys, checked wherever sigmas enter:
 *  at least one level, each finite and positive, strictly decreasing
 *  (sigma_1 > ... > sigma_L), and at most kMaxLevels of them. Detectors and
 *  trainers check it when they are made and when a file is loaded, so nothing
 *  that can be saved fails to load. */
#pragma once
#include <scoreood/core/error.hpp>

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace scoreood::schedule {

/// Far above any schedule in use (NCSN: 10 levels; NCSN v2: ~1000).
inline constexpr std::size_t kMaxLevels = 10000;

/// What is wrong with `sigmas` ("" when nothing is).
inline std::string sigma_problem(std::span<const float> sigmas) {
  if (sigmas.empty()) return "has no noise levels";
  if (sigmas.size() > kMaxLevels)
    return "has " + std::to_string(sigmas.size()) + " noise levels, more than " + std::to_string(kMaxLevels);
  for (std::size_t i = 0; i < sigmas.size(); ++i) {
    const std::string at = "sigma[" + std::to_string(i) + "] = " + std::to_string(sigmas[i]);
    if (!std::isfinite(sigmas[i])) return at + " is not finite";
    if (!(sigmas[i] > 0.0f)) return at + " is not positive";
    if (i > 0 && !(sigmas[i] < sigmas[i - 1]))
      return at + " is not below sigma[" + std::to_string(i - 1) + "] = " + std::to_string(sigmas[i - 1]) +
             " (noise levels must be strictly decreasing)";
  }
  return {};
}

/// Throws ValueError("<who>: <problem>") when `sigmas` breaks the rule.
inline void check_sigmas(std::span<const float> sigmas, std::string_view who) {
  if (auto p = sigma_problem(sigmas); !p.empty()) throw ValueError(std::string(who) + ": the schedule " + p);
}

}  // namespace scoreood::schedule
