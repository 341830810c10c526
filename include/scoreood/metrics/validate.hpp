/** @file validate.hpp
 *  @brief Input checks shared by every metric: non-empty, finite score sets.
 *
 *  Convention for the whole metrics area: OOD is the POSITIVE class and a
 *  HIGHER score means MORE out-of-distribution. Metrics never transform the
 *  raw scores (no sigmoid, no float rounding): everything is double. */
#pragma once
#include <scoreood/core/error.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace scoreood::metrics {

namespace detail {

/// Throws ValueError if `s` is empty or holds a NaN/inf; `which` names the set.
inline void check_scores(std::span<const double> s, std::string_view which) {
  if (s.empty()) throw ValueError(std::string(which) + " is empty: a metric needs at least one score per set");
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (!std::isfinite(s[i]))
      throw ValueError(std::string(which) + "[" + std::to_string(i) + "] is not finite (" + std::to_string(s[i]) +
                       "): scores must be finite numbers");
  }
}

inline void check_pair(std::span<const double> in, std::span<const double> out) {
  check_scores(in, "in_scores");
  check_scores(out, "out_scores");
}

inline void check_tpr_target(double tpr) {
  if (!(tpr > 0.0 && tpr <= 1.0))
    throw ValueError("tpr target " + std::to_string(tpr) + " is outside (0, 1]");
}

}  // namespace detail

/// Any contiguous container of float or double scores (std::vector<float>,
/// std::span<const float>, xt::xtensor<double, 1>, ...): converted to double.
template <class C>
concept ScoreContainer = requires(const C& c) {
  { c.data() } -> std::convertible_to<const typename C::value_type*>;
  { c.size() } -> std::convertible_to<std::size_t>;
} && (std::same_as<std::remove_cv_t<typename C::value_type>, float> ||
      std::same_as<std::remove_cv_t<typename C::value_type>, double>);

namespace detail {
/// Copies any ScoreContainer into double precision (exact for float input).
template <ScoreContainer C>
std::vector<double> to_double(const C& c) {
  const auto* p = c.data();
  return std::vector<double>(p, p + c.size());
}
}  // namespace detail

}  // namespace scoreood::metrics
