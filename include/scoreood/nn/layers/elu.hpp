/** @file elu.hpp
 *  @brief ELU activation, y = x for x > 0 else alpha * (exp(x) - 1) (PyTorch nn.ELU, alpha = 1).
 *
 *  dy/dx = 1 for y > 0, else y + alpha: backward() needs only the output, so
 *  in-place use (x and y the same tensor) is allowed. The output must stay
 *  alive and unchanged until backward(). The kernels are the backend's
 *  (ops<B>::elu_forward / elu_backward; on the CPU cpu/tiered/elu.hpp). */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/backend.hpp>

#include <type_traits>

namespace scoreood::nn {

/// @tparam T float for work, double for gradient tests.
/// @tparam B backend tag (core/backend.hpp).
template <class T, class B = backend::cpu>
class Elu {
  using Ops = backend::ops<B>;

 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;

  explicit Elu(T alpha = T(1)) : alpha_(alpha) {}

  T alpha() const { return alpha_; }
  Shape4 output_shape(Shape4 in) const { return in; }
  std::size_t macs(Shape4) const { return 0; }

  /// y = elu(x); y may be x itself.
  void forward(Context& ctx, const Tensor& x, Tensor& y) {
    infer(ctx, x, y);
    attach_output(y);
  }

  void infer(Context& ctx, const Tensor& x, Tensor& y) const {
    if (&x != &y) Ops::resize(y, shape_of(x));
    Ops::elu_forward(ctx, x, y, alpha_);
  }

  /// Records y as this layer's training output when another layer computed
  /// elu into it (a fused norm -> ELU); backward() then works as after forward().
  void attach_output(const Tensor& y) {
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
  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    const T* yd = output_for_backward(shape_of(dy));
    if (&dx != &dy) Ops::resize(dx, shape_);
    Ops::elu_backward(ctx, yd, dy, dx, alpha_);
  }

  // The CPU needs no context: the same calls without one.
  void forward(const Tensor& x, Tensor& y)
    requires std::is_same_v<B, backend::cpu>
  { forward(cpu_context(), x, y); }
  void infer(const Tensor& x, Tensor& y) const
    requires std::is_same_v<B, backend::cpu>
  { infer(cpu_context(), x, y); }
  void backward(const Tensor& dy, Tensor& dx)
    requires std::is_same_v<B, backend::cpu>
  { backward(cpu_context(), dy, dx); }

 private:
  T alpha_;
  const Tensor* y_ = nullptr;
  const T* y_data_ = nullptr;
  Shape4 shape_{};
};

}  // namespace scoreood::nn
