/** @file rot4.hpp
 *  @brief The paper's group (Eq. 4): rotations by 0, 90, 180, 270 degrees
 *  counter-clockwise, as numpy's np.rot90(img, k, axes=(H, W)). */
#pragma once
#include <scoreood/augment/geometry.hpp>
#include <scoreood/augment/group.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace scoreood::augment {

struct Rot4 : GroupBase<Rot4> {
  static constexpr std::string_view name = "rot4";
  std::size_t size() const { return 4; }
  /// 90 and 270 degrees need square images.
  void check_shape(std::size_t, std::size_t H, std::size_t W, std::size_t k) const {
    if (k >= 4) throw ValueError("Rot4: element " + std::to_string(k) + " is outside 0..3");
    detail::d4_check_shape("Rot4", H, W, k);
  }
  /// Element k rotates by k quarter turns counter-clockwise.
  template <class T>
  void apply_image(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t k) const {
    check_shape(C, H, W, k);
    detail::d4_apply(src, dst, C, H, W, k);
  }
  template <class T>
  void inverse_image(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t k) const {
    apply_image(src, dst, C, H, W, inverse(k));
  }
  std::size_t inverse(std::size_t k) const { if (k >= 4) throw ValueError("Rot4: element " + std::to_string(k) + " is outside 0..3");
    return detail::d4_inverse(k); }
};

}  // namespace scoreood::augment
