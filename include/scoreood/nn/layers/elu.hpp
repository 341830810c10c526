/** @file elu.hpp
 *  @brief ELU activation, y = x for x > 0 else alpha * (exp(x) - 1) (PyTorch nn.ELU, alpha = 1).
 *
 *  The exponential goes through Eigen's vectorised expm1 (a scalar libm call
 *  per element would cost as much as the convolution next to it). backward()
 *  needs only the output: dy/dx = 1 for y > 0, else y + alpha — so in-place
 *  use (x and y the same tensor) is allowed. The output must stay alive and
 *  unchanged until backward(). */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/elementwise.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <string>

namespace scoreood::nn {

template <class T>
class Elu {
 public:
  explicit Elu(T alpha = T(1)) : alpha_(alpha) {}

  T alpha() const { return alpha_; }
  Shape4 output_shape(Shape4 in) const { return in; }
  std::size_t macs(Shape4) const { return 0; }

  /// y = elu(x); y may be x itself.
  void forward(const Tensor4<T>& x, Tensor4<T>& y) {
    infer(x, y);
    y_ = &y;
    y_data_ = y.data();
    shape_ = shape_of(y);
  }

  void infer(const Tensor4<T>& x, Tensor4<T>& y) const {
    if (&x != &y) cpu::detail::resize_like(y, shape_of(x));
    const T* xd = x.data();
    T* yd = y.data();
    const T a = alpha_;
    cpu::detail::chunked(x.size(), [&](std::size_t b, std::size_t e) {
      using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
      Eigen::Map<const Arr> xv(xd + b, Eigen::Index(e - b));
      Eigen::Map<Arr> yv(yd + b, Eigen::Index(e - b));
      // min(x, 0) keeps expm1 finite on large inputs (their branch is discarded anyway).
      yv = (xv > T(0)).select(xv, a * xv.min(T(0)).expm1());
    });
  }

  /// dx = dy * elu'(x), from the cached output. dx may be dy itself.
  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
    if (!y_) throw Error("Elu: backward() called without a training forward()");
    if (y_->data() != y_data_ || shape_of(*y_) != shape_)
      throw Error("Elu: the forward output was resized or freed before backward()");
    if (shape_of(dy) != shape_)
      throw ShapeError("Elu: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(shape_));
    if (&dx != &dy) cpu::detail::resize_like(dx, shape_);
    const T* yd = y_data_;
    const T* g = dy.data();
    T* d = dx.data();
    const T a = alpha_;
    cpu::detail::chunked(dy.size(), [&](std::size_t b, std::size_t e) {
#pragma omp simd
      for (std::size_t i = b; i < e; ++i) d[i] = yd[i] > T(0) ? g[i] : g[i] * (yd[i] + a);
    });
  }

 private:
  T alpha_;
  const Tensor4<T>* y_ = nullptr;
  const T* y_data_ = nullptr;
  Shape4 shape_{};
};

}  // namespace scoreood::nn
