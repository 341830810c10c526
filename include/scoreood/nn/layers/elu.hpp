/** @file elu.hpp
 *  @brief ELU activation, y = x for x > 0 else alpha * (exp(x) - 1) (PyTorch nn.ELU, alpha = 1).
 *
 *  The exponential is Eigen's vectorised exp (a scalar libm call per element
 *  would cost as much as the convolution next to it). backward()
 *  needs only the output: dy/dx = 1 for y > 0, else y + alpha — so in-place
 *  use (x and y the same tensor) is allowed. The output must stay alive and
 *  unchanged until backward(). */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/elementwise.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstddef>
#include <string>
#include <type_traits>

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
    cpu::detail::chunked(x.size(), [=](std::size_t b, std::size_t e) { apply(xd + b, yd + b, e - b, a); });
  }

  /// y[i] = elu(x[i]) for n contiguous values (y may be x): the kernel of
  /// infer(), public so that a layer can apply it to data still in cache.
  static void apply(const T* xd, T* yd, std::size_t n, T a) {
    // Eigen 3.4 does not vectorise select(), so the expm1 of a small block
    // goes to a stack buffer (vectorised) and a SIMD loop picks per element.
    // Blocks also make in-place use safe: x[i] is read before y[i] is written.
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    constexpr std::size_t B = 512;
    alignas(64) T tmp[B];
    for (std::size_t i0 = 0; i0 < n; i0 += B) {
      const std::size_t len = std::min(B, n - i0);
      Eigen::Map<Arr> tv(tmp, Eigen::Index(len));
      // min(x, 0) keeps exp finite on large inputs (their branch is discarded).
      // float: exp(x) - 1 like PyTorch's vectorised CPU kernel (Eigen's expm1
      // costs a log on top); double (gradient tests): the accurate expm1.
      const auto xm = Eigen::Map<const Arr>(xd + i0, Eigen::Index(len)).min(T(0));
      if constexpr (std::is_same_v<T, float>) tv = a * (xm.exp() - T(1));
      else tv = a * xm.expm1();
      const T* xs = xd + i0;
      T* ys = yd + i0;
#pragma omp simd
      for (std::size_t i = 0; i < len; ++i) ys[i] = xs[i] > T(0) ? xs[i] : tmp[i];
    }
  }

  /// Records y as this layer's training output when another layer computed
  /// elu into it (a fused norm -> ELU); backward() then works as after forward().
  void attach_output(const Tensor4<T>& y) {
    y_ = &y;
    y_data_ = y.data();
    shape_ = shape_of(y);
  }

  /// The cached output, checked as backward() checks it, for a layer that
  /// applies this ELU's backward itself (a fused ELU -> norm backward).
  const T* output_for_backward(const Shape4& dy_shape) const {
    if (!y_) throw Error("Elu: backward() called without a training forward()");
    if (y_->data() != y_data_ || shape_of(*y_) != shape_)
      throw Error("Elu: the forward output was resized or freed before backward()");
    if (dy_shape != shape_)
      throw ShapeError("Elu: output gradient " + to_string(dy_shape) + ", expected " + to_string(shape_));
    return y_data_;
  }

  /// dx = dy * elu'(x), from the cached output. dx may be dy itself.
  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) {
    const T* yd = output_for_backward(shape_of(dy));
    if (&dx != &dy) cpu::detail::resize_like(dx, shape_);
    const T* g = dy.data();
    T* d = dx.data();
    const T a = alpha_;
    cpu::detail::chunked(dy.size(), [=](std::size_t b, std::size_t e) { backward_kernel(yd + b, g + b, d + b, e - b, a); });
  }

 private:
  /// A plain function (not a lambda body): GCC vectorises it reliably.
  static void backward_kernel(const T* y, const T* g, T* d, std::size_t n, T a) {
#pragma omp simd
    for (std::size_t i = 0; i < n; ++i) {
      const T yv = y[i];
      d[i] = g[i] * (yv > T(0) ? T(1) : yv + a);  // a select of values
    }
  }

  T alpha_;
  const Tensor4<T>* y_ = nullptr;
  const T* y_data_ = nullptr;
  Shape4 shape_{};
};

}  // namespace scoreood::nn
