/** @file identity.hpp
 *  @brief The trivial group (one element): with it, RotNCSN training is plain NCSN (Eq. 1). */
#pragma once
#include <scoreood/augment/group.hpp>

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace scoreood::augment {

struct Identity : GroupBase<Identity> {
  static constexpr std::string_view name = "identity";
  std::size_t size() const { return 1; }
  void check_shape(std::size_t, std::size_t, std::size_t, std::size_t) const {}
  template <class T>
  void apply_image(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t) const {
    std::copy(src, src + C * H * W, dst);
  }
  template <class T>
  void inverse_image(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t k) const {
    apply_image(src, dst, C, H, W, k);
  }
  std::size_t inverse(std::size_t) const { return 0; }
};

}  // namespace scoreood::augment
