/** @file input_check.hpp
 *  @brief The input contract every score network checks: a non-empty batch of
 *  C x S x S images and one valid noise-level index per image. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace scoreood::nn::detail {

/// @tparam Tn the backend's tensor (anything shape_of() takes).
template <class Tn>
void check_score_net_input(std::string_view net, const Tn& x, std::span<const int> levels,
                           std::size_t channels, std::size_t image_size, std::size_t num_levels) {
  const std::string who(net);
  const Shape4 s = shape_of(x);
  if (s[0] == 0 || s[1] != channels || s[2] != image_size || s[3] != image_size)
    throw ShapeError(who + ": input " + to_string(s) + " does not match the network's images [N, " +
                     std::to_string(channels) + ", " + std::to_string(image_size) + ", " +
                     std::to_string(image_size) + "]");
  if (levels.size() != s[0])
    throw ShapeError(who + ": " + std::to_string(levels.size()) + " noise levels for a batch of " +
                     std::to_string(s[0]));
  for (int l : levels)
    if (l < 0 || std::size_t(l) >= num_levels)
      throw ValueError(who + ": noise level index " + std::to_string(l) + " outside [0, " +
                       std::to_string(num_levels) + ")");
}

}  // namespace scoreood::nn::detail
