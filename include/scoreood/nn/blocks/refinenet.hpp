/** @file refinenet.hpp
 *  @brief The blocks of NCSN's CondRefineNetDilated (ermongroup/ncsn,
 *  models/cond_refinenet_dilated.py), with forward, infer and backward:
 *
 *  - NcsnResBlock: NCSN's ConditionalResidualBlock (CIN++ -> ELU -> conv ->
 *    CIN++ -> ELU -> conv, plus a shortcut), in its variants: plain, dilated,
 *    'down' with a 2x2 mean pool after conv2 and after a 1x1 shortcut, and
 *    'down' with a dilation, which NCSN turns into dilated convs WITHOUT any
 *    down-sampling (res3[0], res4[0]).
 *  - CondRCUBlock: residual conv units, n_blocks x (n_stages x (CIN++ -> ELU ->
 *    conv3x3 without bias)) each wrapped by an identity skip.
 *  - CondMSFBlock: multi-resolution fusion, sum over inputs of bilinear
 *    (align_corners) resize(conv3x3 with bias(CIN++(x_i))).
 *  - CondCRPBlock: chained residual pooling, ELU, then n_stages x (CIN++ ->
 *    5x5 average pool (stride 1, pad 2) -> conv3x3 without bias), each stage's
 *    output added to the running sum and fed to the next stage.
 *  - CondRefineBlock: one RCU(2 blocks) per input -> MSF (if several inputs)
 *    -> CRP(2 stages) -> RCU(1 block, or 3 for the last refine block).
 *
 *  Parameter names and registration order follow NCSN's state_dict (the
 *  embedding of a CIN++ named "<x>" is "<x>.embed", torch's "<x>.embed.weight"),
 *  so the store's order is the torch model's parameter order.
 *
 *  Conventions as for the layers: forward() keeps what backward() needs (the
 *  inputs it is given must stay alive and unchanged until backward(), outputs
 *  must be tensors distinct from the inputs), backward() writes the input
 *  gradients and accumulates parameter gradients; infer() keeps nothing: its
 *  scratch is the caller's `Workspace` (one per thread), so any number of
 *  threads may infer through one block at once. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/nn/layers/conv2d.hpp>
#include <scoreood/nn/layers/elu.hpp>
#include <scoreood/nn/layers/instance_norm.hpp>
#include <scoreood/nn/layers/pooling.hpp>
#include <scoreood/nn/layers/upsample.hpp>
#include <scoreood/nn/parameter.hpp>

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace scoreood::nn {

/// NCSN's `resample` argument of ConditionalResidualBlock.
enum class Resample { none, down };

/// NCSN's ConditionalResidualBlock with CIN++ and ELU.
/// @tparam T float for work, double for gradient checks.
template <class T, class B = backend::cpu>
class NcsnResBlock {
 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;
  using Ops = backend::ops<B>;

  struct Spec {
    std::size_t in = 0, out = 0;
    Resample resample = Resample::none;
    std::size_t dilation = 0;  ///< 0: NCSN's dilation=None (3x3 convs, padding 1)
    std::size_t num_levels = 1;
  };

  NcsnResBlock(ParameterStore<T, B>& store, const std::string& name, Spec s, CounterRng init)
      : spec_(check(name, s)),
        pooled_(s.resample == Resample::down && s.dilation == 0),
        // NCSN registers conv1, normalize2, conv2, shortcut, normalize1 in this order.
        conv1_(store, name + ".conv1", conv_spec(s.in, first_out(s), s.dilation), init.substream(0)),
        norm2_(store, name + ".normalize2", first_out(s), s.num_levels, init.substream(1)),
        conv2_(store, name + (pooled_ ? ".conv2.conv" : ".conv2"), conv_spec(first_out(s), s.out, s.dilation),
               init.substream(2)) {
    if (s.in != s.out || s.resample == Resample::down) {
      // 'down' without dilation: ConvMeanPool(kernel 1); with a dilation: the dilated 3x3 conv.
      // (NCSN would fail to build the plain in != out case; a 1x1 conv is the natural reading.)
      typename Conv2d<T, B>::Spec sc = s.dilation ? conv_spec(s.in, s.out, s.dilation)
                                               : typename Conv2d<T, B>::Spec{.in = s.in, .out = s.out, .kernel = 1};
      shortcut_.emplace(store, name + (pooled_ ? ".shortcut.conv" : ".shortcut"), sc, init.substream(3));
    }
    norm1_.emplace(store, name + ".normalize1", s.in, s.num_levels, init.substream(4));
  }

  const Spec& spec() const { return spec_; }

  Shape4 output_shape(Shape4 in) const {
    const Shape4 o = conv2_.output_shape(conv1_.output_shape(in));
    return pooled_ ? pool_.output_shape(o) : o;
  }
  /// Multiply-accumulates of the convolutions for an input of this shape.
  std::size_t macs(Shape4 in) const {
    const Shape4 mid = conv1_.output_shape(in);
    return conv1_.macs(in) + conv2_.macs(mid) + (shortcut_ ? shortcut_->macs(in) : 0);
  }

  /// y = block(x); x must stay unchanged until backward() (the shortcut conv keeps it).
  void forward(Context& ctx, const Tensor& x, std::span<const int> levels, Tensor& y) {
    norm1_->forward(ctx, x, levels, a_);
    elu1_.forward(ctx, a_, a_);  // in place: the ELU keeps its output, conv1 its input, the same tensor
    conv1_.forward(ctx, a_, t1_);
    norm2_.forward(ctx, t1_, levels, c_);  // the norm keeps its own cache, not its input
    elu2_.forward(ctx, c_, c_);
    if (pooled_) {
      conv2_.forward(ctx, c_, t2_);
      pool_.forward(ctx, t2_, y);
    } else {
      conv2_.forward(ctx, c_, y);
    }
    if (shortcut_) {
      shortcut_->forward(ctx, x, s_);
      if (pooled_) {
        pool_s_.forward(ctx, s_, t3_);
        Ops::add_inplace(ctx, y, t3_);
      } else {
        Ops::add_inplace(ctx, y, s_);
      }
    } else {
      Ops::add_inplace(ctx, y, x);
    }
  }

  /// Inference scratch: one tensor per shape, so repeated calls with one workspace never reallocate.
  struct Workspace {
    Tensor a, b, c, d, e;
  };

  void infer(Context& ctx, Workspace& ws, const Tensor& x, std::span<const int> levels, Tensor& y) const {
    norm1_->infer(ctx, x, levels, ws.a);
    elu1_.infer(ctx, ws.a, ws.a);
    conv1_.infer(ctx, ws.a, ws.b);
    norm2_.infer(ctx, ws.b, levels, ws.c);
    elu2_.infer(ctx, ws.c, ws.c);
    if (pooled_) {
      conv2_.infer(ctx, ws.c, ws.d);
      pool_.infer(ctx, ws.d, y);
    } else {
      conv2_.infer(ctx, ws.c, y);
    }
    if (shortcut_) {
      shortcut_->infer(ctx, x, ws.d);
      if (pooled_) {
        pool_s_.infer(ctx, ws.d, ws.e);
        Ops::add_inplace(ctx, y, ws.e);
      } else {
        Ops::add_inplace(ctx, y, ws.d);
      }
    } else {
      Ops::add_inplace(ctx, y, x);
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

  /// dx = dL/dx (dx distinct from dy); parameter gradients accumulate.
  void backward(const Tensor& dy, Tensor& dx)
    requires std::is_same_v<B, backend::cpu>
  { backward(cpu_context(), dy, dx); }
  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    if (pooled_) {
      pool_.backward(ctx, dy, g_full_);
      conv2_.backward(ctx, g_full_, g_mid_);
    } else {
      conv2_.backward(ctx, dy, g_mid_);
    }
    elu2_.backward(ctx, g_mid_, g_mid_);
    norm2_.backward(ctx, g_mid_, g_mid2_);
    conv1_.backward(ctx, g_mid2_, g_in_);
    elu1_.backward(ctx, g_in_, g_in_);
    norm1_->backward(ctx, g_in_, dx);
    if (shortcut_) {
      if (pooled_) {
        pool_s_.backward(ctx, dy, g_full_);
        shortcut_->backward(ctx, g_full_, g_in_);
      } else {
        shortcut_->backward(ctx, dy, g_in_);
      }
      Ops::add_inplace(ctx, dx, g_in_);
    } else {
      Ops::add_inplace(ctx, dx, dy);
    }
  }

 private:
  static Spec check(const std::string& name, Spec s) {
    if (s.in == 0 || s.out == 0) throw ValueError("NcsnResBlock '" + name + "': channels must be positive");
    return s;
  }
  /// conv1's output channels: NCSN keeps the input width in 'down' blocks.
  static std::size_t first_out(const Spec& s) { return s.resample == Resample::down ? s.in : s.out; }
  static typename Conv2d<T, B>::Spec conv_spec(std::size_t in, std::size_t out, std::size_t dilation) {
    return {.in = in, .out = out, .kernel = 3, .padding = -1, .dilation = dilation ? dilation : 1};
  }

  Spec spec_;
  bool pooled_;
  Conv2d<T, B> conv1_;
  CondInstanceNormPlusPlus<T, B> norm2_;
  Conv2d<T, B> conv2_;
  std::optional<Conv2d<T, B>> shortcut_;
  std::optional<CondInstanceNormPlusPlus<T, B>> norm1_;  // always set; registered last, as NCSN's normalize1
  Elu<T, B> elu1_, elu2_;
  MeanPool2x2<T, B> pool_, pool_s_;
  // Every buffer keeps one shape across calls (a shape change would reallocate).
  Tensor a_, c_;                      // conv inputs kept for backward
  Tensor t1_, t2_, t3_, s_;           // temporaries: conv1 out, conv2 out before pooling, pooled shortcut, shortcut
  Tensor g_full_, g_mid_, g_mid2_, g_in_;   // gradient scratch (before pooling, middle, input shape)
};

/// NCSN's CondRCUBlock: n_blocks residual units of n_stages (CIN++ -> ELU -> conv3x3, no bias).
template <class T, class B = backend::cpu>
class CondRCUBlock {
 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;
  using Ops = backend::ops<B>;

  CondRCUBlock(ParameterStore<T, B>& store, const std::string& name, std::size_t features, std::size_t n_blocks,
               std::size_t n_stages, std::size_t num_levels, CounterRng init)
      : nb_(n_blocks), ns_(n_stages) {
    if (n_blocks == 0 || n_stages == 0) throw ValueError("CondRCUBlock '" + name + "': needs blocks and stages");
    norms_.reserve(nb_ * ns_);
    convs_.reserve(nb_ * ns_);
    for (std::size_t i = 0; i < nb_; ++i)
      for (std::size_t j = 0; j < ns_; ++j) {
        const std::string p = name + "." + std::to_string(i + 1) + "_" + std::to_string(j + 1);
        const std::size_t k = i * ns_ + j;
        norms_.emplace_back(store, p + "_norm", features, num_levels, init.substream(2 * k));
        convs_.emplace_back(store, p + "_conv",
                            typename Conv2d<T, B>::Spec{.in = features, .out = features, .kernel = 3, .bias = false},
                            init.substream(2 * k + 1));
      }
    elus_.resize(nb_ * ns_);
    act_.resize(nb_ * ns_);
    out_.resize(nb_);
  }

  Shape4 output_shape(Shape4 in) const { return in; }
  std::size_t macs(Shape4 in) const {
    std::size_t m = 0;
    for (const auto& c : convs_) m += c.macs(in);
    return m;
  }

  void forward(Context& ctx, const Tensor& x, std::span<const int> levels, Tensor& y) {
    const Tensor* in = &x;
    for (std::size_t i = 0; i < nb_; ++i) {
      Tensor& bout = i + 1 == nb_ ? y : out_[i];
      const Tensor* h = in;
      for (std::size_t j = 0; j < ns_; ++j) {
        const std::size_t k = i * ns_ + j;
        norms_[k].forward(ctx, *h, levels, act_[k]);  // the norm keeps its own cache, not its input
        elus_[k].forward(ctx, act_[k], act_[k]);
        Tensor& dst = j + 1 == ns_ ? bout : tmp_;
        convs_[k].forward(ctx, act_[k], dst);
        h = &dst;
      }
      Ops::add_inplace(ctx, bout, *in);
      in = &bout;
    }
  }

  /// Inference scratch: each unit is a = x; a = conv(elu(norm(a))) per stage; y = a + x, so two tensors suffice.
  struct Workspace {
    Tensor a, b;
  };

  void infer(Context& ctx, Workspace& ws, const Tensor& x, std::span<const int> levels, Tensor& y) const {
    const Tensor* in = &x;
    for (std::size_t i = 0; i < nb_; ++i) {
      const Tensor* h = in;
      for (std::size_t j = 0; j < ns_; ++j) {
        const std::size_t k = i * ns_ + j;
        norms_[k].infer(ctx, *h, levels, ws.a);
        elus_[k].infer(ctx, ws.a, ws.a);
        convs_[k].infer(ctx, ws.a, ws.b);
        h = &ws.b;
      }
      Ops::add_inplace(ctx, ws.b, *in);
      Ops::copy(ctx, ws.b, y);
      in = &y;
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
  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    const Tensor* g = &dy;  // gradient w.r.t. the current unit's output
    for (std::size_t i = nb_; i-- > 0;) {
      Tensor& din = i == 0 ? dx : blk_[i % 2];
      const Tensor* gs = g;
      for (std::size_t j = ns_; j-- > 0;) {
        const std::size_t k = i * ns_ + j;
        convs_[k].backward(ctx, *gs, t1_);
        elus_[k].backward(ctx, t1_, t1_);
        Tensor& dst = j == 0 ? din : t2_;
        norms_[k].backward(ctx, t1_, dst);
        gs = &dst;
      }
      Ops::add_inplace(ctx, din, *g);  // identity skip
      g = &din;
    }
  }

 private:
  std::size_t nb_, ns_;
  std::vector<CondInstanceNormPlusPlus<T, B>> norms_;
  std::vector<Conv2d<T, B>> convs_;
  std::vector<Elu<T, B>> elus_;
  std::vector<Tensor> act_;  // per stage: ELU output = conv input (kept for backward)
  std::vector<Tensor> out_;  // per unit output (the last unit writes into y)
  Tensor tmp_;               // conv outputs that only feed the next norm
  Tensor t1_, t2_, blk_[2];  // gradient scratch
};

/// NCSN's CondCRPBlock: x = elu(x); path = x; per stage path = conv(avgpool5(CIN++(path))); x += path.
template <class T, class B = backend::cpu>
class CondCRPBlock {
 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;
  using Ops = backend::ops<B>;

  CondCRPBlock(ParameterStore<T, B>& store, const std::string& name, std::size_t features, std::size_t n_stages,
               std::size_t num_levels, CounterRng init)
      : ns_(n_stages) {
    if (n_stages == 0) throw ValueError("CondCRPBlock '" + name + "': needs at least one stage");
    convs_.reserve(ns_);
    norms_.reserve(ns_);
    // NCSN's module lists: convs registered before norms.
    for (std::size_t i = 0; i < ns_; ++i)
      convs_.emplace_back(store, name + ".convs." + std::to_string(i),
                          typename Conv2d<T, B>::Spec{.in = features, .out = features, .kernel = 3, .bias = false},
                          init.substream(2 * i + 1));
    for (std::size_t i = 0; i < ns_; ++i)
      norms_.emplace_back(store, name + ".norms." + std::to_string(i), features, num_levels, init.substream(2 * i));
    pools_.assign(ns_, AvgPool2d<T, B>(5, 1, 2, true));
    pooled_.resize(ns_);
  }

  Shape4 output_shape(Shape4 in) const { return in; }
  std::size_t macs(Shape4 in) const {
    std::size_t m = 0;
    for (const auto& c : convs_) m += c.macs(in);
    return m;
  }

  void forward(Context& ctx, const Tensor& x, std::span<const int> levels, Tensor& y) {
    elu_.forward(ctx, x, e_);
    Ops::copy(ctx, e_, y);
    const Tensor* path = &e_;
    for (std::size_t i = 0; i < ns_; ++i) {
      norms_[i].forward(ctx, *path, levels, n_);
      pools_[i].forward(ctx, n_, pooled_[i]);
      convs_[i].forward(ctx, pooled_[i], p_);  // p_ only feeds the next norm and the sum
      Ops::add_inplace(ctx, y, p_);
      path = &p_;
    }
  }

  /// Inference scratch: the normed and pooled path and the stage output.
  struct Workspace {
    Tensor a, b, p;
  };

  void infer(Context& ctx, Workspace& ws, const Tensor& x, std::span<const int> levels, Tensor& y) const {
    elu_.infer(ctx, x, y);  // y: the running sum, starting at elu(x) = the first path input
    const Tensor* path = &y;
    for (std::size_t i = 0; i < ns_; ++i) {
      norms_[i].infer(ctx, *path, levels, ws.a);  // reads y before it is added to below
      pools_[i].infer(ctx, ws.a, ws.b);
      convs_[i].infer(ctx, ws.b, ws.p);
      Ops::add_inplace(ctx, y, ws.p);
      path = &ws.p;
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
  void backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    // d(path_i) = dy (direct sum) + gradient through stage i+1; path_{-1} is elu(x).
    const Tensor* g = &dy;
    for (std::size_t i = ns_; i-- > 0;) {
      convs_[i].backward(ctx, *g, t1_);
      pools_[i].backward(ctx, t1_, t2_);
      Tensor& dst = i == 0 ? dx : gp_;
      norms_[i].backward(ctx, t2_, dst);
      Ops::add_inplace(ctx, dst, dy);
      g = &dst;
    }
    elu_.backward(ctx, dx, dx);
  }

 private:
  std::size_t ns_;
  std::vector<Conv2d<T, B>> convs_;
  std::vector<CondInstanceNormPlusPlus<T, B>> norms_;
  std::vector<AvgPool2d<T, B>> pools_;
  Elu<T, B> elu_;
  Tensor e_, n_, p_;                   // e_: ELU output (kept); n_, p_: temporaries
  std::vector<Tensor> pooled_;         // conv inputs (kept)
  Tensor t1_, t2_, gp_;                // gradient scratch
};

/// NCSN's CondMSFBlock: y = sum_i bilinear_resize(conv3x3_i(CIN++_i(x_i)), (out_h, out_w)).
template <class T, class B = backend::cpu>
class CondMSFBlock {
 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;
  using Ops = backend::ops<B>;

  CondMSFBlock(ParameterStore<T, B>& store, const std::string& name, const std::vector<std::size_t>& in_planes,
               std::size_t features, std::size_t num_levels, CounterRng init)
      : name_(name), features_(features), n_(in_planes.size()) {
    if (n_ == 0) throw ValueError("CondMSFBlock '" + name + "': needs at least one input");
    convs_.reserve(n_);
    norms_.reserve(n_);
    for (std::size_t i = 0; i < n_; ++i)
      convs_.emplace_back(store, name + ".convs." + std::to_string(i),
                          typename Conv2d<T, B>::Spec{.in = in_planes[i], .out = features, .kernel = 3},
                          init.substream(2 * i + 1));
    for (std::size_t i = 0; i < n_; ++i)
      norms_.emplace_back(store, name + ".norms." + std::to_string(i), in_planes[i], num_levels,
                          init.substream(2 * i));
    normed_.resize(n_);
    conv_out_.resize(n_);
    ups_.resize(n_);
    g_conv_.resize(n_);
    g_norm_.resize(n_);
  }

  std::size_t inputs() const { return n_; }
  std::size_t macs(std::span<const Shape4> ins) const {
    std::size_t m = 0;
    for (std::size_t i = 0; i < n_; ++i) m += convs_[i].macs(ins[i]);
    return m;
  }

  void forward(Context& ctx, std::span<const Tensor* const> xs, std::span<const int> levels, std::size_t out_h,
               std::size_t out_w, Tensor& y) {
    const Shape4 ys = out_shape(xs, out_h, out_w);
    Ops::zeros(ctx, y, ys);
    for (std::size_t i = 0; i < n_; ++i) {
      norms_[i].forward(ctx, *xs[i], levels, normed_[i]);
      convs_[i].forward(ctx, normed_[i], conv_out_[i]);
      if (same_size(conv_out_[i], ys)) {
        // align_corners resizing to the same size is the identity (weights exactly 1 and 0).
        ups_[i].reset();
        Ops::add_inplace(ctx, y, conv_out_[i]);
      } else {
        ups_[i].emplace(out_h, out_w, true);
        ups_[i]->forward(ctx, conv_out_[i], r_);
        Ops::add_inplace(ctx, y, r_);
      }
    }
  }

  /// Inference scratch, per input (inputs differ in shape), so no tensor changes shape between calls.
  struct Workspace {
    std::vector<Tensor> a, b;
    Tensor r;  ///< a resized conv output
  };

  void infer(Context& ctx, Workspace& ws, std::span<const Tensor* const> xs, std::span<const int> levels, std::size_t out_h,
             std::size_t out_w, Tensor& y) const {
    const Shape4 ys = out_shape(xs, out_h, out_w);
    Ops::zeros(ctx, y, ys);
    ws.a.resize(n_);
    ws.b.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) {
      norms_[i].infer(ctx, *xs[i], levels, ws.a[i]);
      convs_[i].infer(ctx, ws.a[i], ws.b[i]);
      if (same_size(ws.b[i], ys)) {
        Ops::add_inplace(ctx, y, ws.b[i]);
      } else {
        UpsampleBilinear<T, B>(out_h, out_w, true).infer(ctx, ws.b[i], ws.r);
        Ops::add_inplace(ctx, y, ws.r);
      }
    }
  }
  // The CPU needs no context: the same calls without one.
  void forward(std::span<const Tensor* const> xs, std::span<const int> levels, std::size_t out_h, std::size_t out_w,
               Tensor& y)
    requires std::is_same_v<B, backend::cpu>
  { forward(cpu_context(), xs, levels, out_h, out_w, y); }
  void infer(std::span<const Tensor* const> xs, std::span<const int> levels, std::size_t out_h,
             std::size_t out_w, Tensor& y) const
    requires std::is_same_v<B, backend::cpu>
  {
    Workspace ws;
    infer(cpu_context(), ws, xs, levels, out_h, out_w, y);
  }

  /// dxs[i] = dL/dx_i (resized); parameter gradients accumulate.
  void backward(const Tensor& dy, std::span<Tensor* const> dxs)
    requires std::is_same_v<B, backend::cpu>
  { backward(cpu_context(), dy, dxs); }
  void backward(Context& ctx, const Tensor& dy, std::span<Tensor* const> dxs) {
    if (dxs.size() != n_) throw Error("CondMSFBlock '" + name_ + "': wrong number of gradient outputs");
    for (std::size_t i = 0; i < n_; ++i) {
      const Tensor* g = &dy;
      if (ups_[i]) {
        ups_[i]->backward(ctx, dy, g_conv_[i]);
        g = &g_conv_[i];
      }
      convs_[i].backward(ctx, *g, g_norm_[i]);
      norms_[i].backward(ctx, g_norm_[i], *dxs[i]);
    }
  }

 private:
  Shape4 out_shape(std::span<const Tensor* const> xs, std::size_t out_h, std::size_t out_w) const {
    if (xs.size() != n_)
      throw ShapeError("CondMSFBlock '" + name_ + "': " + std::to_string(xs.size()) + " inputs, expected " +
                       std::to_string(n_));
    return {xs[0]->shape()[0], features_, out_h, out_w};
  }
  static bool same_size(const Tensor& t, const Shape4& s) { return t.shape()[2] == s[2] && t.shape()[3] == s[3]; }

  std::string name_;
  std::size_t features_, n_;
  std::vector<Conv2d<T, B>> convs_;
  std::vector<CondInstanceNormPlusPlus<T, B>> norms_;
  std::vector<std::optional<UpsampleBilinear<T, B>>> ups_;  // empty where no resizing happened
  // Per input (inputs differ in shape), so no buffer changes shape between calls.
  std::vector<Tensor> normed_, conv_out_;            // normed_: conv inputs (kept)
  std::vector<Tensor> g_conv_, g_norm_;              // gradient scratch
  Tensor r_;                                         // resized conv output
};

/// NCSN's CondRefineBlock. One input (start = true, no fusion) or several (fused at the given size).
template <class T, class B = backend::cpu>
class CondRefineBlock {
 public:
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;
  using Ops = backend::ops<B>;

  CondRefineBlock(ParameterStore<T, B>& store, const std::string& name, const std::vector<std::size_t>& in_planes,
                  std::size_t features, std::size_t num_levels, bool start, bool end, CounterRng init)
      : name_(name), n_(in_planes.size()), out_features_(features) {
    if (n_ == 0) throw ValueError("CondRefineBlock '" + name + "': needs at least one input");
    if (start && n_ > 1) throw ValueError("CondRefineBlock '" + name + "': a start block takes one input");
    if (n_ == 1 && in_planes[0] != features)
      throw ValueError("CondRefineBlock '" + name + "': a single input must have 'features' channels");
    adapt_.reserve(n_);
    for (std::size_t i = 0; i < n_; ++i)
      adapt_.emplace_back(store, name + ".adapt_convs." + std::to_string(i), in_planes[i], 2, 2, num_levels,
                          init.substream(i));
    out_.emplace(store, name + ".output_convs", features, end ? 3 : 1, 2, num_levels, init.substream(100));
    // As in NCSN, a non-start block owns the fusion even with one input (then unused).
    if (!start) msf_.emplace(store, name + ".msf", in_planes, features, num_levels, init.substream(101));
    crp_.emplace(store, name + ".crp", features, 2, num_levels, init.substream(102));
    hs_.resize(n_);
    dh_.resize(n_);
  }

  std::size_t inputs() const { return n_; }
  /// Output shape: (N, features, out_h, out_w) with fusion; the input's shape without.
  std::size_t macs(std::span<const Shape4> ins, std::size_t out_h, std::size_t out_w) const {
    std::size_t m = 0;
    for (std::size_t i = 0; i < n_; ++i) m += adapt_[i].macs(ins[i]);
    Shape4 o = ins[0];
    if (n_ > 1) {
      m += msf_->macs(ins);
      o = {ins[0][0], 0, out_h, out_w};
    }
    return m + crp_macs(o);
  }

  void forward(Context& ctx, std::span<const Tensor* const> xs, std::span<const int> levels, std::size_t out_h,
               std::size_t out_w, Tensor& y) {
    check_inputs(xs.size());
    for (std::size_t i = 0; i < n_; ++i) adapt_[i].forward(ctx, *xs[i], levels, hs_[i]);
    const Tensor* h = &hs_[0];
    if (n_ > 1) {
      std::vector<const Tensor*> ptrs;
      for (auto& t : hs_) ptrs.push_back(&t);
      msf_->forward(ctx, ptrs, levels, out_h, out_w, m_);
      h = &m_;
    }
    crp_->forward(ctx, *h, levels, c_);
    out_->forward(ctx, c_, levels, y);
  }

  /// Inference scratch: the sub-blocks' workspaces (one per adapting RCU: their inputs differ in shape)
  /// and the intermediate tensors.
  struct Workspace {
    std::vector<typename CondRCUBlock<T, B>::Workspace> adapt;
    typename CondMSFBlock<T, B>::Workspace msf;
    typename CondCRPBlock<T, B>::Workspace crp;
    typename CondRCUBlock<T, B>::Workspace out;
    std::vector<Tensor> hs;
    Tensor m, c;
  };

  void infer(Context& ctx, Workspace& ws, std::span<const Tensor* const> xs, std::span<const int> levels, std::size_t out_h,
             std::size_t out_w, Tensor& y) const {
    check_inputs(xs.size());
    ws.hs.resize(n_);
    ws.adapt.resize(n_);
    for (std::size_t i = 0; i < n_; ++i) adapt_[i].infer(ctx, ws.adapt[i], *xs[i], levels, ws.hs[i]);
    const Tensor* h = &ws.hs[0];
    if (n_ > 1) {
      std::vector<const Tensor*> ptrs;
      for (auto& t : ws.hs) ptrs.push_back(&t);
      msf_->infer(ctx, ws.msf, ptrs, levels, out_h, out_w, ws.m);
      h = &ws.m;
    }
    crp_->infer(ctx, ws.crp, *h, levels, ws.c);
    out_->infer(ctx, ws.out, ws.c, levels, y);
  }
  // The CPU needs no context: the same calls without one.
  void forward(std::span<const Tensor* const> xs, std::span<const int> levels, std::size_t out_h, std::size_t out_w,
               Tensor& y)
    requires std::is_same_v<B, backend::cpu>
  { forward(cpu_context(), xs, levels, out_h, out_w, y); }
  void infer(std::span<const Tensor* const> xs, std::span<const int> levels, std::size_t out_h,
             std::size_t out_w, Tensor& y) const
    requires std::is_same_v<B, backend::cpu>
  {
    Workspace ws;
    infer(cpu_context(), ws, xs, levels, out_h, out_w, y);
  }

  void backward(const Tensor& dy, std::span<Tensor* const> dxs)
    requires std::is_same_v<B, backend::cpu>
  { backward(cpu_context(), dy, dxs); }
  void backward(Context& ctx, const Tensor& dy, std::span<Tensor* const> dxs) {
    check_inputs(dxs.size());
    out_->backward(ctx, dy, g1_);
    crp_->backward(ctx, g1_, g2_);
    if (n_ > 1) {
      std::vector<Tensor*> ptrs;
      for (auto& t : dh_) ptrs.push_back(&t);
      msf_->backward(ctx, g2_, ptrs);
      for (std::size_t i = 0; i < n_; ++i) adapt_[i].backward(ctx, dh_[i], *dxs[i]);
    } else {
      adapt_[0].backward(ctx, g2_, *dxs[0]);
    }
  }

 private:
  void check_inputs(std::size_t k) const {
    if (k != n_)
      throw ShapeError("CondRefineBlock '" + name_ + "': " + std::to_string(k) + " inputs, expected " +
                       std::to_string(n_));
  }
  std::size_t crp_macs(Shape4 o) const {
    // CRP and output RCU convolutions run at the output size with 'features' channels.
    Shape4 s{o[0], features(), o[2], o[3]};
    return crp_->macs(s) + out_->macs(s);
  }
  std::size_t features() const { return out_features_; }

  std::string name_;
  std::size_t n_, out_features_;
  std::vector<CondRCUBlock<T, B>> adapt_;
  std::optional<CondRCUBlock<T, B>> out_;
  std::optional<CondMSFBlock<T, B>> msf_;
  std::optional<CondCRPBlock<T, B>> crp_;
  std::vector<Tensor> hs_, dh_;
  Tensor m_, c_, g1_, g2_;
};

}  // namespace scoreood::nn
