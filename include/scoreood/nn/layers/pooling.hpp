/** @file pooling.hpp
 *  @brief Average pooling: AvgPool2d (PyTorch nn.AvgPool2d) and MeanPool2x2 (NCSN's mean pool).
 *
 *    AvgPool2d    y[i, j] = sum over the k x k window at (s*i - p, s*j - p) of x, divided by k^2
 *                 (count_include_pad) or by the number of real pixels in the window;
 *    MeanPool2x2  y[i, j] = mean of x[2i..2i+1, 2j..2j+1] (the last odd row/column dropped).
 *  Both are linear, so backward() needs only the input shape (nothing is
 *  cached but the shape). The kernels are the backend's (on the CPU cpu/pooling.hpp). */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/backend.hpp>

#include <cstddef>
#include <string>
#include <type_traits>

namespace scoreood::nn {

/// nn.AvgPool2d(kernel, stride, padding, ceil_mode=False, count_include_pad).
/// @tparam B backend tag (core/backend.hpp).
template <class T, class B = backend::cpu>
class AvgPool2d {
  using Ops = backend::ops<B>;

 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;

  struct Spec {
    std::size_t kernel = 2;
    std::size_t stride = 0;   ///< 0: stride = kernel (PyTorch's default)
    std::size_t padding = 0;  ///< at most kernel / 2, as in PyTorch
    bool count_include_pad = true;
  };

  AvgPool2d(std::size_t kernel, std::size_t stride = 0, std::size_t padding = 0, bool count_include_pad = true)
      : AvgPool2d(Spec{kernel, stride, padding, count_include_pad}) {}
  explicit AvgPool2d(Spec s) : spec_(s) {
    if (spec_.kernel == 0) throw ValueError("AvgPool2d: kernel must be positive");
    if (spec_.stride == 0) spec_.stride = spec_.kernel;
    if (2 * spec_.padding > spec_.kernel)
      throw ValueError("AvgPool2d: padding " + std::to_string(spec_.padding) + " exceeds half the kernel " +
                       std::to_string(spec_.kernel));
  }
  const Spec& spec() const { return spec_; }
  backend::PoolParams params() const {
    return {.kernel = spec_.kernel, .stride = spec_.stride, .pad = spec_.padding,
            .count_include_pad = spec_.count_include_pad};
  }

  Shape4 output_shape(Shape4 in) const {
    const std::size_t k = spec_.kernel, p = spec_.padding, s = spec_.stride;
    if (in[2] + 2 * p < k || in[3] + 2 * p < k)
      throw ShapeError("AvgPool2d: input " + to_string(in) + " is smaller than the " + std::to_string(k) +
                       "x" + std::to_string(k) + " window");
    return {in[0], in[1], (in[2] + 2 * p - k) / s + 1, (in[3] + 2 * p - k) / s + 1};
  }
  std::size_t macs(Shape4 in) const {
    const Shape4 o = output_shape(in);
    return o[0] * o[1] * o[2] * o[3] * spec_.kernel * spec_.kernel;
  }

  void forward(Context& ctx, const Tensor& x, Tensor& y) {
    infer(ctx, x, y);
    in_shape_ = shape_of(x);
    have_ = true;
  }

  void infer(Context& ctx, const Tensor& x, Tensor& y) const {
    if (&x == &y) throw Error("AvgPool2d: input and output must be different tensors");
    Ops::resize(y, output_shape(shape_of(x)));
    Ops::avg_pool_forward(ctx, params(), x, y);
  }

  /// dx (resized, overwritten) = adjoint of the pooling applied to dy.
  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    if (!have_) throw Error("AvgPool2d: backward() called without a training forward()");
    const Shape4 in = in_shape_, out = output_shape(in);
    if (shape_of(dy) != out)
      throw ShapeError("AvgPool2d: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(out));
    if (&dx == &dy) throw Error("AvgPool2d: dx and dy must be different tensors");
    Ops::resize(dx, in);
    Ops::avg_pool_backward(ctx, params(), dy, dx);
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
  Spec spec_;
  Shape4 in_shape_{};
  bool have_ = false;
};

/// Mean of each 2x2 block (NCSN's ConvMeanPool / MeanPoolConv): output H/2 x W/2,
/// rounded down like avg_pool2d(2) — NCSN itself only sees even sizes.
/// @tparam B backend tag (core/backend.hpp).
template <class T, class B = backend::cpu>
class MeanPool2x2 {
  using Ops = backend::ops<B>;

 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;

  Shape4 output_shape(Shape4 in) const {
    if (in[2] < 2 || in[3] < 2) throw ShapeError("MeanPool2x2: input " + to_string(in) + " is smaller than 2x2");
    return {in[0], in[1], in[2] / 2, in[3] / 2};
  }
  std::size_t macs(Shape4 in) const {
    const Shape4 o = output_shape(in);
    return o[0] * o[1] * o[2] * o[3] * 4;
  }

  void forward(Context& ctx, const Tensor& x, Tensor& y) {
    infer(ctx, x, y);
    in_shape_ = shape_of(x);
    have_ = true;
  }

  void infer(Context& ctx, const Tensor& x, Tensor& y) const {
    if (&x == &y) throw Error("MeanPool2x2: input and output must be different tensors");
    Ops::resize(y, output_shape(shape_of(x)));
    Ops::mean_pool2_forward(ctx, x, y);
  }

  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    if (!have_) throw Error("MeanPool2x2: backward() called without a training forward()");
    const Shape4 in = in_shape_, out = output_shape(in);
    if (shape_of(dy) != out)
      throw ShapeError("MeanPool2x2: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(out));
    if (&dx == &dy) throw Error("MeanPool2x2: dx and dy must be different tensors");
    Ops::resize(dx, in);
    Ops::mean_pool2_backward(ctx, dy, dx);
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
  Shape4 in_shape_{};
  bool have_ = false;
};

}  // namespace scoreood::nn
