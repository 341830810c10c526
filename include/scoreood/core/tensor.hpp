/** @file tensor.hpp
 *  @brief Tensor aliases: NCHW float images on xtensor, helpers for shapes. */
#pragma once
#include <xtensor/xtensor.hpp>
#include <xtensor/xarray.hpp>

#include <array>
#include <cstddef>
#include <sstream>
#include <string>

namespace scoreood {

/// A 4-D tensor in NCHW order. `T` is float for work, double for gradient tests.
template <class T = float>
using Tensor4 = xt::xtensor<T, 4>;
/// A batch of images, NCHW, float in [0, 1].
using Images = Tensor4<float>;
/// An N x D matrix of row vectors (normality vectors, density inputs).
template <class T = double>
using Matrix = xt::xtensor<T, 2>;
template <class T = double>
using Vector = xt::xtensor<T, 1>;

using Shape4 = std::array<std::size_t, 4>;

inline std::string to_string(const Shape4& s) {
  std::ostringstream os;
  os << '[' << s[0] << ", " << s[1] << ", " << s[2] << ", " << s[3] << ']';
  return os.str();
}

template <class T>
Shape4 shape_of(const Tensor4<T>& t) {
  return {t.shape()[0], t.shape()[1], t.shape()[2], t.shape()[3]};
}

}  // namespace scoreood
