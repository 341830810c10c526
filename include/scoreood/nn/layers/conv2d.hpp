/** @file conv2d.hpp
 *  @brief 2-D convolution (square kernel, stride, zero padding, dilation).
 *
 *  PyTorch semantics and layout: weight [out, in, k, k], bias [out], output
 *  size (H + 2p - d(k-1) - 1) / s + 1, default init U(±1/sqrt(in*k*k)):
 *    y[n, o] = b[o] + sum_{c, ky, kx} w[o, c, ky, kx] x[n, c, s*i + d*ky - p, s*j + d*kx - p]
 *    dx = the transposed convolution of dy, dW[o, c, ky, kx] = sum_n,i,j dy[n, o, i, j] x[...].
 *  The computation is the backend's (ops<B>::conv2d_forward / conv2d_backward;
 *  on the CPU cpu/tiered/conv2d.hpp picks Winograd, padded offsets, phase planes or
 *  im2col per shape; on CUDA cuDNN).
 *
 *  Training contract: forward() keeps a pointer to its input (no copy). The
 *  input tensor must stay alive and unchanged until backward(); a resized or
 *  reallocated input is detected and reported. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/backend.hpp>
#include <scoreood/nn/parameter.hpp>

#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>

namespace scoreood::nn {

/// @tparam T float for work, double for gradient tests.
/// @tparam B backend tag (core/backend.hpp).
template <class T, class B = backend::cpu>
class Conv2d {
  using Ops = backend::ops<B>;

 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;

  struct Spec {
    std::size_t in = 0, out = 0, kernel = 3;
    std::size_t stride = 1;
    std::ptrdiff_t padding = -1;  ///< -1: "same" padding dilation*(kernel-1)/2
    std::size_t dilation = 1;
    bool bias = true;
  };

  /// Registers name+".weight" [out,in,k,k] and (if spec.bias) name+".bias" [out],
  /// both drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in*k*k (PyTorch's default).
  Conv2d(ParameterStore<T, B>& store, const std::string& name, Spec spec, CounterRng init)
      : name_(name), spec_(spec) {
    auto bad = [&](const std::string& what) { throw ValueError("Conv2d '" + name + "': " + what); };
    if (spec.in == 0 || spec.out == 0) bad("in and out channels must be positive");
    if (spec.kernel == 0) bad("kernel must be positive");
    if (spec.stride == 0) bad("stride must be positive");
    if (spec.dilation == 0) bad("dilation must be positive");
    if (spec.padding < -1) bad("padding must be >= 0, or -1 for same padding");
    pad_ = spec.padding < 0 ? spec.dilation * (spec.kernel - 1) / 2 : std::size_t(spec.padding);
    const std::size_t k = spec.kernel;
    weight_ = store.add(name + ".weight", {spec.out, spec.in, k, k});
    if (spec.bias) bias_ = store.add(name + ".bias", {spec.out});
    const double bound = 1.0 / std::sqrt(double(spec.in * k * k));
    const CounterRng wr = init.substream(0), br = init.substream(1);
    T* w = weight_.host();
    for (std::size_t i = 0; i < weight_.size; ++i) w[i] = T(bound * (2.0 * wr.uniform(i) - 1.0));
    if (spec.bias) {
      T* b = bias_.host();
      for (std::size_t i = 0; i < bias_.size; ++i) b[i] = T(bound * (2.0 * br.uniform(i) - 1.0));
    }
  }

  /// How a convolution that Winograd can run is computed on the CPU (other shapes and backends ignore it).
  enum class Algorithm { automatic, direct };
  void set_algorithm(Algorithm a) { algorithm_ = a; }
  Algorithm algorithm() const { return algorithm_; }
  /// True when all three CPU passes (forward, backward-data, weight gradient) of this input shape run
  /// F(4x4, 3x3) on the active ISA tier (cpu/isa.hpp).
  bool uses_winograd(Shape4 in) const {
    if constexpr (!std::is_same_v<B, backend::cpu>) return false;
    else return SCOREOOD_CPU_DISPATCH(k::conv::winograd_applies<T>(params(), geometry(in)));
  }
  /// True when the CPU forward of this input shape runs F(4x4, 3x3) on the active tier: where
  /// uses_winograd() is, and dilated "same" convolutions on their phase planes (AVX2 tier).
  bool forward_uses_winograd(Shape4 in) const {
    if constexpr (!std::is_same_v<B, backend::cpu>) return false;
    else
      return SCOREOOD_CPU_DISPATCH(k::conv::plan<T>(params(), geometry(in)).forward == k::conv::Path::winograd);
  }

  const Spec& spec() const { return spec_; }
  const std::string& name() const { return name_; }
  std::size_t padding() const { return pad_; }  ///< the resolved padding
  const ParamRef<T, B>& weight() const { return weight_; }
  const ParamRef<T, B>& bias() const { return bias_; }  ///< size 0 without bias
  /// What the backend computes.
  backend::ConvParams params() const {
    return {.in = spec_.in, .out = spec_.out, .kernel = spec_.kernel, .stride = spec_.stride, .pad = pad_,
            .dilation = spec_.dilation, .bias = spec_.bias, .winograd = algorithm_ == Algorithm::automatic};
  }

  /// Output shape for an input shape; ShapeError when channels or size do not fit.
  Shape4 output_shape(Shape4 in) const {
    const cpu::ConvGeometry g = geometry(in);
    return {in[0], spec_.out, g.out_h, g.out_w};
  }
  /// Multiply-accumulates of one forward pass over a batch of this shape.
  std::size_t macs(Shape4 in) const {
    const Shape4 o = output_shape(in);
    return o[0] * o[1] * o[2] * o[3] * spec_.in * spec_.kernel * spec_.kernel;
  }

  /// Training forward: computes y (resized) and remembers x for backward.
  /// With a `residual` (the output's shape, not y itself) y = conv(x) + residual
  /// in the same pass (a residual block's skip add; its gradient is dy itself).
  void forward(Context& ctx, const Tensor& x, Tensor& y, const Tensor* residual = nullptr) {
    infer(ctx, x, y, residual);
    x_ = &x;
    x_data_ = x.data();
    x_shape_ = shape_of(x);
  }

  /// Inference forward: no state kept (safe to interleave with training calls).
  void infer(Context& ctx, const Tensor& x, Tensor& y, const Tensor* residual = nullptr) const {
    if (&x == &y) throw Error("Conv2d '" + name_ + "': input and output must be different tensors");
    const Shape4 xs = shape_of(x);
    const cpu::ConvGeometry g = geometry(xs);
    const Shape4 ys{xs[0], spec_.out, g.out_h, g.out_w};
    if (residual && (residual == &y || shape_of(*residual) != ys))
      throw ShapeError("Conv2d '" + name_ + "': the residual must be a separate tensor of the output's shape " +
                       to_string(ys) + (residual == &y ? "" : ", got " + to_string(shape_of(*residual))));
    Ops::resize(y, ys);
    Ops::conv2d_forward(ctx, params(), weight_.value(), spec_.bias ? bias_.value() : nullptr, x, y, residual);
  }

  /// dx = dL/dx (resized, overwritten); weight/bias grads += dL/dW, dL/db.
  void backward(Context& ctx, const Tensor& dy, Tensor& dx) { backward_impl(ctx, dy, &dx); }

  /// Parameter gradients only (first layer of a net: dL/dx is not needed).
  void backward_params(Context& ctx, const Tensor& dy) { backward_impl(ctx, dy, nullptr); }

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
  void backward_params(const Tensor& dy)
    requires std::is_same_v<B, backend::cpu>
  { backward_params(cpu_context(), dy); }

 private:
  cpu::ConvGeometry geometry(const Shape4& in) const {
    if (in[1] != spec_.in)
      throw ShapeError("Conv2d '" + name_ + "': input " + to_string(in) + " has " + std::to_string(in[1]) +
                       " channels, expected " + std::to_string(spec_.in));
    cpu::ConvGeometry g = cpu::conv::geometry(params(), in);
    if (!g.compute_output())
      throw ShapeError("Conv2d '" + name_ + "': input " + to_string(in) + " is smaller than the dilated kernel (" +
                       std::to_string(spec_.dilation * (spec_.kernel - 1) + 1) + " with padding " +
                       std::to_string(pad_) + ")");
    return g;
  }

  void backward_impl(Context& ctx, const Tensor& dy, Tensor* dx) {
    if (!x_) throw Error("Conv2d '" + name_ + "': backward() called without a training forward()");
    if (x_->data() != x_data_ || shape_of(*x_) != x_shape_)
      throw Error("Conv2d '" + name_ + "': the forward input was resized or freed before backward()");
    const cpu::ConvGeometry g = geometry(x_shape_);
    const Shape4 ys{x_shape_[0], spec_.out, g.out_h, g.out_w};
    if (shape_of(dy) != ys)
      throw ShapeError("Conv2d '" + name_ + "': output gradient " + to_string(shape_of(dy)) + ", expected " +
                       to_string(ys));
    if (dx) {
      if (dx == x_ || dx == &dy) throw Error("Conv2d '" + name_ + "': dx must be a separate tensor");
      Ops::resize(*dx, x_shape_);
    }
    Ops::conv2d_backward(ctx, params(), weight_.value(), *x_, dy, dx, weight_.grad(),
                         spec_.bias ? bias_.grad() : nullptr);
  }

  std::string name_;
  Spec spec_;
  std::size_t pad_ = 0;
  Algorithm algorithm_ = Algorithm::automatic;
  ParamRef<T, B> weight_{}, bias_{};
  // Training cache: the input of the last forward().
  const Tensor* x_ = nullptr;
  const T* x_data_ = nullptr;
  Shape4 x_shape_{};
};

}  // namespace scoreood::nn
