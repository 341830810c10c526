/** @file linear.hpp
 *  @brief sigma_1 > ... > sigma_L spaced linearly. */
#pragma once
#include <scoreood/core/error.hpp>

#include <cstddef>
#include <string_view>
#include <vector>

namespace scoreood::schedule {

struct Linear {
  static constexpr std::string_view name = "linear";
  float sigma_max = 1.0f;
  float sigma_min = 0.01f;
  std::size_t levels = 10;

  std::vector<float> sigmas() const {
    if (levels == 0) throw ValueError("schedule::Linear: levels must be > 0");
    if (!(sigma_max > 0.0f) || !(sigma_min > 0.0f)) throw ValueError("schedule::Linear: sigmas must be positive");
    std::vector<float> s(levels);
    for (std::size_t i = 0; i < levels; ++i) {
      const double t = levels == 1 ? 0.0 : double(i) / double(levels - 1);
      s[i] = float(double(sigma_max) + (double(sigma_min) - double(sigma_max)) * t);
    }
    return s;
  }
};

}  // namespace scoreood::schedule
