/** @file explicit_list.hpp
 *  @brief A user-given list of noise levels (must be positive; order is kept). */
#pragma once
#include <scoreood/core/error.hpp>

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::schedule {

struct ExplicitList {
  static constexpr std::string_view name = "explicit";
  std::vector<float> values;

  std::vector<float> sigmas() const {
    if (values.empty()) throw ValueError("schedule::ExplicitList: the list of sigmas is empty");
    for (std::size_t i = 0; i < values.size(); ++i)
      if (!(values[i] > 0.0f) || !std::isfinite(values[i]))
        throw ValueError("schedule::ExplicitList: sigma[" + std::to_string(i) + "] is not a positive number");
    return values;
  }
};

}  // namespace scoreood::schedule
