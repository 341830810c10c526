// Direct convolution loops in double: the independent reference that the Conv2d tests
// compare every algorithm (direct, Winograd, phase planes, im2col) against.
#pragma once
#include <scoreood/core/tensor.hpp>
#include <scoreood/nn/layers/conv2d.hpp>

#include <cstddef>
#include <vector>

namespace scoreood::testing {

/// Calls f(n, m, oy, ox, c, iy, ix, wi) for every kernel tap of every output (n, m, oy, ox) of
/// `conv` on an input of shape `in` that lands inside the input (wi: the tap's weight index).
template <class T, class F>
void for_each_tap(const nn::Conv2d<T>& conv, const Shape4& in, F f) {
  const auto& s = conv.spec();
  const Shape4 o = conv.output_shape(in);
  const std::ptrdiff_t p = std::ptrdiff_t(conv.padding());
  for (std::size_t n = 0; n < o[0]; ++n)
    for (std::size_t m = 0; m < o[1]; ++m)
      for (std::size_t oy = 0; oy < o[2]; ++oy)
        for (std::size_t ox = 0; ox < o[3]; ++ox)
          for (std::size_t c = 0; c < s.in; ++c)
            for (std::size_t ky = 0; ky < s.kernel; ++ky)
              for (std::size_t kx = 0; kx < s.kernel; ++kx) {
                const std::ptrdiff_t iy = std::ptrdiff_t(oy * s.stride + ky * s.dilation) - p;
                const std::ptrdiff_t ix = std::ptrdiff_t(ox * s.stride + kx * s.dilation) - p;
                if (iy < 0 || ix < 0 || iy >= std::ptrdiff_t(in[2]) || ix >= std::ptrdiff_t(in[3])) continue;
                f(n, m, oy, ox, c, std::size_t(iy), std::size_t(ix), ((m * s.in + c) * s.kernel + ky) * s.kernel + kx);
              }
}

/// y = conv(x) (+ bias) by the definition.
template <class T>
Tensor4<double> naive_forward(const Tensor4<T>& x, const nn::Conv2d<T>& conv) {
  const Shape4 o = conv.output_shape(shape_of(x));
  const T* w = conv.weight().value();
  Tensor4<double> y = xt::zeros<double>(o);
  if (conv.spec().bias)
    for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = double(conv.bias().value()[i / (o[2] * o[3]) % o[1]]);
  for_each_tap(conv, shape_of(x), [&](auto n, auto m, auto oy, auto ox, auto c, auto iy, auto ix, auto wi) {
    y(n, m, oy, ox) += double(w[wi]) * double(x(n, c, iy, ix));
  });
  return y;
}

/// dx, dW, db for a given dy by the same loops.
template <class T>
void naive_backward(const Tensor4<T>& x, const Tensor4<T>& dy, const nn::Conv2d<T>& conv, Tensor4<double>& dx,
                    std::vector<double>& dw, std::vector<double>& db) {
  const Shape4 o = shape_of(dy);
  const T* w = conv.weight().value();
  dx = xt::zeros<double>(shape_of(x));
  dw.assign(conv.weight().size, 0.0);
  db.assign(conv.spec().out, 0.0);
  for (std::size_t i = 0; i < dy.size(); ++i) db[i / (o[2] * o[3]) % o[1]] += double(dy.data()[i]);
  for_each_tap(conv, shape_of(x), [&](auto n, auto m, auto oy, auto ox, auto c, auto iy, auto ix, auto wi) {
    const double g = dy(n, m, oy, ox);
    dx(n, c, iy, ix) += double(w[wi]) * g;
    dw[wi] += double(x(n, c, iy, ix)) * g;
  });
}

}  // namespace scoreood::testing
