/** @file cond_res_block.hpp
 *  @brief The SmallUNet residual block:
 *  CIN++ -> ELU -> conv3x3(stride) -> CIN++ -> ELU -> conv3x3, plus an identity
 *  skip, or a 1x1 convolution (with the stride) when the shape changes. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/nn/layers/conv2d.hpp>
#include <scoreood/nn/layers/elu.hpp>
#include <scoreood/nn/layers/instance_norm.hpp>
#include <scoreood/nn/parameter.hpp>

#include <optional>
#include <span>
#include <string>
#include <type_traits>

namespace scoreood::nn {

/// @tparam B backend tag (core/backend.hpp).
template <class T, class B = backend::cpu>
class CondResBlock {
 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;

  CondResBlock(ParameterStore<T, B>& store, const std::string& name, std::size_t in, std::size_t out,
               std::size_t stride, std::size_t num_levels, CounterRng init)
      : norm1_(store, name + ".norm1", in, num_levels, init.substream(0)),
        conv1_(store, name + ".conv1", {.in = in, .out = out, .kernel = 3, .stride = stride}, init.substream(1)),
        norm2_(store, name + ".norm2", out, num_levels, init.substream(2)),
        conv2_(store, name + ".conv2", {.in = out, .out = out, .kernel = 3}, init.substream(3)) {
    if (in != out || stride != 1)
      skip_.emplace(store, name + ".skip",
                    typename Conv2d<T, B>::Spec{.in = in, .out = out, .kernel = 1, .stride = stride},
                    init.substream(4));
  }

  Shape4 output_shape(Shape4 in) const { return conv2_.output_shape(conv1_.output_shape(in)); }
  std::size_t macs(Shape4 in) const {
    const Shape4 mid = conv1_.output_shape(in);
    return conv1_.macs(in) + conv2_.macs(mid) + (skip_ ? skip_->macs(in) : 0);
  }

  /// Training forward: keeps every intermediate for backward(). `x` must stay alive and unchanged until then.
  void forward(Context& ctx, const Tensor& x, std::span<const int> levels, Tensor& y) {
    // CIN++ -> ELU fused (one memory pass); ELU keeps its output, the conv keeps its input: the same tensor.
    // The norms keep their inputs by reference (no normalised copies): x is
    // kept alive by the contract above, b_ is this block's own.
    norm1_.forward_elu(ctx, x, levels, a_, elu1_, true);
    conv1_.forward(ctx, a_, b_);
    norm2_.forward_elu(ctx, b_, levels, c_, elu2_, true);
    // The skip is added by conv2 while its output is in cache.
    if (skip_) {
      skip_->forward(ctx, x, s_);
      conv2_.forward(ctx, c_, y, &s_);
    } else {
      conv2_.forward(ctx, c_, y, &x);
    }
  }

  /// Inference scratch. One tensor per shape: reusing one for two shapes would reallocate
  /// (and page-fault in) megabytes on every call.
  struct Workspace {
    Tensor a, b, c;
  };

  /// Forward without caching; the scratch is the caller's `ws` (reused across calls).
  void infer(Context& ctx, Workspace& ws, const Tensor& x, std::span<const int> levels, Tensor& y) const {
    Tensor& a = ws.a;
    Tensor& b = ws.b;
    Tensor& c = ws.c;
    norm1_.infer_elu(ctx, x, levels, a, elu1_);
    conv1_.infer(ctx, a, b);
    norm2_.infer_elu(ctx, b, levels, c, elu2_);
    if (skip_) {
      skip_->infer(ctx, x, b);
      conv2_.infer(ctx, c, y, &b);
    } else {
      conv2_.infer(ctx, c, y, &x);
    }
  }

  /// dx = dL/dx; parameter gradients accumulate.
  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    // The ELU backwards run inside the norms' backward passes (one memory pass less each).
    conv2_.backward(ctx, dy, g1_);
    norm2_.backward_elu(ctx, g1_, g2_, elu2_);
    conv1_.backward(ctx, g2_, g3_);  // g1_, g2_: the middle shape; g3_, g4_: the input shape (no reallocation)
    // The skip's gradient is added inside norm1's output pass (no separate add).
    if (skip_) {
      skip_->backward(ctx, dy, g4_);
      norm1_.backward_elu(ctx, g3_, dx, elu1_, &g4_);
    } else {
      norm1_.backward_elu(ctx, g3_, dx, elu1_, &dy);
    }
  }

  // The CPU needs no context: the same calls without one.
  void forward(const Tensor& x, std::span<const int> levels, Tensor& y)
    requires std::is_same_v<B, backend::cpu>
  { forward(cpu_context(), x, levels, y); }
  void infer(const Tensor& x, std::span<const int> levels, Tensor& y) const
    requires std::is_same_v<B, backend::cpu>
  {
    Workspace ws;
    infer(cpu_context(), ws, x, levels, y);
  }
  void backward(const Tensor& dy, Tensor& dx)
    requires std::is_same_v<B, backend::cpu>
  { backward(cpu_context(), dy, dx); }

 private:
  CondInstanceNormPlusPlus<T, B> norm1_;
  Elu<T, B> elu1_;
  Conv2d<T, B> conv1_;
  CondInstanceNormPlusPlus<T, B> norm2_;
  Elu<T, B> elu2_;
  Conv2d<T, B> conv2_;
  std::optional<Conv2d<T, B>> skip_;
  Tensor a_, b_, c_, s_;      // activations kept for backward
  Tensor g1_, g2_, g3_, g4_;  // gradient scratch
};

}  // namespace scoreood::nn
