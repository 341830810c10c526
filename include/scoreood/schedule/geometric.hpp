/** @file geometric.hpp
 *  @brief sigma_1 > ... > sigma_L spaced geometrically (NCSN's default 1.0 -> 0.01, L = 10). */
#pragma once
#include <scoreood/core/error.hpp>

#include <cmath>
#include <cstddef>
#include <string_view>
#include <vector>

namespace scoreood::schedule {

/// Geometric noise levels: sigma_i = sigma_max * (sigma_min / sigma_max)^(i / (L - 1)).
struct Geometric {
  static constexpr std::string_view name = "geometric";
  float sigma_max = 1.0f;
  float sigma_min = 0.01f;
  std::size_t levels = 10;

  std::vector<float> sigmas() const {
    if (levels == 0) throw ValueError("schedule::Geometric: levels must be > 0");
    if (!(sigma_max > 0.0f) || !(sigma_min > 0.0f)) throw ValueError("schedule::Geometric: sigmas must be positive");
    std::vector<float> s(levels);
    for (std::size_t i = 0; i < levels; ++i) {
      const double t = levels == 1 ? 0.0 : double(i) / double(levels - 1);
      s[i] = float(double(sigma_max) * std::pow(double(sigma_min) / double(sigma_max), t));
    }
    return s;
  }
};

}  // namespace scoreood::schedule
