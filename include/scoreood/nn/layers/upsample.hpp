/** @file upsample.hpp
 *  @brief Resizing to a fixed size with PyTorch F.interpolate semantics:
 *  UpsampleNearest (mode='nearest') and UpsampleBilinear (mode='bilinear').
 *
 *    nearest   y[i, j] = x[floor(i * H / out_h), floor(j * W / out_w)]
 *    bilinear  y = the linear interpolation of the two nearest rows and columns
 *              (align_corners: the corners of input and output coincide)
 *  NCSN's multi-resolution fusion uses bilinear with align_corners=True.
 *  backward() is the exact adjoint, so only the input shape is cached. Both
 *  also shrink. The kernels are the backend's (on the CPU cpu/tiered/upsample.hpp). */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/backend.hpp>

#include <cstddef>
#include <string>
#include <type_traits>

namespace scoreood::nn {

namespace detail {
inline void check_resize_target(const char* layer, std::size_t out_h, std::size_t out_w) {
  if (out_h == 0 || out_w == 0) throw ValueError(std::string(layer) + ": output size must be positive");
}
}  // namespace detail

/// F.interpolate(x, size=(out_h, out_w), mode='nearest').
/// @tparam B backend tag (core/backend.hpp).
template <class T, class B = backend::cpu>
class UpsampleNearest {
  using Ops = backend::ops<B>;

 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;

  UpsampleNearest(std::size_t out_h, std::size_t out_w) : out_h_(out_h), out_w_(out_w) {
    detail::check_resize_target("UpsampleNearest", out_h, out_w);
  }
  Shape4 output_shape(Shape4 in) const {
    if (in[2] == 0 || in[3] == 0) throw ShapeError("UpsampleNearest: empty input " + to_string(in));
    return {in[0], in[1], out_h_, out_w_};
  }
  std::size_t macs(Shape4) const { return 0; }

  /// With a `residual` (the output's shape, not y) y = up(x) + residual in the
  /// same pass (a U-Net's skip add; its gradient is dy itself).
  void forward(Context& ctx, const Tensor& x, Tensor& y, const Tensor* residual = nullptr) {
    infer(ctx, x, y, residual);
    in_shape_ = shape_of(x);
    have_ = true;
  }

  void infer(Context& ctx, const Tensor& x, Tensor& y, const Tensor* residual = nullptr) const {
    if (&x == &y) throw Error("UpsampleNearest: input and output must be different tensors");
    const Shape4 out = output_shape(shape_of(x));
    if (residual && (residual == &y || shape_of(*residual) != out))
      throw ShapeError("UpsampleNearest: the residual must be a separate tensor of the output's shape " +
                       to_string(out));
    Ops::resize(y, out);
    Ops::nearest_forward(ctx, x, y, residual);
  }

  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    if (!have_) throw Error("UpsampleNearest: backward() called without a training forward()");
    const Shape4 in = in_shape_, out = output_shape(in);
    if (shape_of(dy) != out)
      throw ShapeError("UpsampleNearest: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(out));
    if (&dx == &dy) throw Error("UpsampleNearest: dx and dy must be different tensors");
    Ops::resize(dx, in);
    Ops::nearest_backward(ctx, dy, dx);
  }

  // The CPU needs no context: the same calls without one.
  void forward(const Tensor& x, Tensor& y, const Tensor* residual = nullptr)
    requires std::is_same_v<B, backend::cpu>
  { forward(cpu_context(), x, y, residual); }
  void infer(const Tensor& x, Tensor& y, const Tensor* residual = nullptr) const
    requires std::is_same_v<B, backend::cpu>
  { infer(cpu_context(), x, y, residual); }
  void backward(const Tensor& dy, Tensor& dx)
    requires std::is_same_v<B, backend::cpu>
  { backward(cpu_context(), dy, dx); }

 private:
  std::size_t out_h_, out_w_;
  Shape4 in_shape_{};
  bool have_ = false;
};

/// F.interpolate(x, size=(out_h, out_w), mode='bilinear', align_corners).
/// @tparam B backend tag (core/backend.hpp).
template <class T, class B = backend::cpu>
class UpsampleBilinear {
  using Ops = backend::ops<B>;

 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;

  UpsampleBilinear(std::size_t out_h, std::size_t out_w, bool align_corners)
      : out_h_(out_h), out_w_(out_w), align_corners_(align_corners) {
    detail::check_resize_target("UpsampleBilinear", out_h, out_w);
  }
  bool align_corners() const { return align_corners_; }
  Shape4 output_shape(Shape4 in) const {
    if (in[2] == 0 || in[3] == 0) throw ShapeError("UpsampleBilinear: empty input " + to_string(in));
    return {in[0], in[1], out_h_, out_w_};
  }
  std::size_t macs(Shape4 in) const { return in[0] * in[1] * out_h_ * out_w_ * 4; }

  void forward(Context& ctx, const Tensor& x, Tensor& y) {
    infer(ctx, x, y);
    in_shape_ = shape_of(x);
    have_ = true;
  }

  void infer(Context& ctx, const Tensor& x, Tensor& y) const {
    if (&x == &y) throw Error("UpsampleBilinear: input and output must be different tensors");
    Ops::resize(y, output_shape(shape_of(x)));
    Ops::bilinear_forward(ctx, x, y, align_corners_);
  }

  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    if (!have_) throw Error("UpsampleBilinear: backward() called without a training forward()");
    const Shape4 in = in_shape_, out = output_shape(in);
    if (shape_of(dy) != out)
      throw ShapeError("UpsampleBilinear: output gradient " + to_string(shape_of(dy)) + ", expected " + to_string(out));
    if (&dx == &dy) throw Error("UpsampleBilinear: dx and dy must be different tensors");
    Ops::resize(dx, in);
    Ops::bilinear_backward(ctx, dy, dx, align_corners_);
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
  std::size_t out_h_, out_w_;
  bool align_corners_;
  Shape4 in_shape_{};
  bool have_ = false;
};

}  // namespace scoreood::nn
