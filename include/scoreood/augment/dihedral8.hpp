/** @file dihedral8.hpp
 *  @brief The eight symmetries of the square: k < 4 rotates by k quarter turns
 *  counter-clockwise; k >= 4 flips horizontally, then rotates by k - 4. */
#pragma once
#include <scoreood/augment/geometry.hpp>
#include <scoreood/augment/group.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace scoreood::augment {

struct Dihedral8 : GroupBase<Dihedral8> {
  static constexpr std::string_view name = "dihedral8";
  std::size_t size() const { return 8; }
  /// Odd elements (90/270 degree turns, transposes) need square images.
  void check_shape(std::size_t, std::size_t H, std::size_t W, std::size_t k) const {
    if (k >= 8) throw ValueError("Dihedral8: element " + std::to_string(k) + " is outside 0..7");
    detail::d4_check_shape("Dihedral8", H, W, k);
  }
  template <class T>
  void apply_image(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t k) const {
    check_shape(C, H, W, k);
    detail::d4_apply(src, dst, C, H, W, k);
  }
  template <class T>
  void inverse_image(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t k) const {
    apply_image(src, dst, C, H, W, inverse(k));
  }
  /// Rotations invert to the opposite turn; flip-then-rotate elements are their own inverse.
  std::size_t inverse(std::size_t k) const { return detail::d4_inverse(k); }
};

}  // namespace scoreood::augment
