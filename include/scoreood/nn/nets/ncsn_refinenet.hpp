/** @file ncsn_refinenet.hpp
 *  @brief NcsnRefineNet: a faithful CPU port of NCSN's CondRefineNetDilated
 *  (Song & Ermon 2019; the network MSMA and RotNCSN use). 7,638,657 parameters
 *  and ~1.89 GMAC (convolutions) per 28x28 image at ngf = 64, L = 10.
 *
 *  x -> 2x - 1 -> conv3x3(ch->F) -> res1: 2 x RB(F) @S
 *    -> res2: RB(F->2F, down: mean pool) , RB(2F) @S/2
 *    -> res3: RB(2F, 'down' dilation 2: no resampling), RB(2F, dilation 2) @S/2
 *    -> res4: RB(2F, 'down' dilation 4), RB(2F, dilation 4) @S/2
 *    -> refine1([l4]) -> refine2([l3, r1]) -> refine3([l2, r2]) @S/2
 *    -> refine4([l1, r3]) @S -> CIN++ -> ELU -> conv3x3(F->ch).
 *  RB = NcsnResBlock, refine = CondRefineBlock (nn/blocks/refinenet.hpp). The
 *  output is not divided by sigma (NCSN v1 / MSMA). NCSN's 28-px variant sets
 *  adjust_padding on res4[0], which only a non-dilated 'down' block reads: it
 *  has no effect, so one definition serves every image size.
 *
 *  Parameter names and order equal NCSN's state_dict (with "<norm>.embed" for
 *  torch's "<norm>.embed.weight"), so trained NCSN weights can be converted
 *  by renaming alone. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/nn/blocks/refinenet.hpp>
#include <scoreood/nn/checkpoint.hpp>
#include <scoreood/nn/layers/conv2d.hpp>
#include <scoreood/nn/layers/elu.hpp>
#include <scoreood/nn/layers/instance_norm.hpp>
#include <scoreood/nn/nets/input_check.hpp>
#include <scoreood/nn/nets/net_file.hpp>
#include <scoreood/nn/parameter.hpp>
#include <scoreood/nn/workspace.hpp>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace scoreood::nn {

/// Architecture hyper-parameters of NcsnRefineNet (saved in checkpoints).
struct NcsnRefineNetConfig {
  std::size_t channels = 1;     ///< image channels (1 gray, 3 colour)
  std::size_t image_size = 28;  ///< square images; even (res2 halves it), at least 4
  std::size_t ngf = 64;         ///< F: feature width (NCSN: 64 for MNIST-like data, 128 for CIFAR-10)
  std::size_t num_levels = 10;  ///< L: noise levels the norms are conditioned on

  bool operator==(const NcsnRefineNetConfig&) const = default;
};

/// @tparam B backend tag (core/backend.hpp): backend::cpu, or backend::cuda in a translation
///           unit compiled by nvcc with <scoreood/cuda.hpp> included.
/// @tparam T value type: float for work, double for gradient checks (CPU).
template <concepts::Backend B = backend::cpu, class T = float>
class NcsnRefineNet {
  using Ops = backend::ops<B>;

 public:
  using backend_type = B;
  using value_type = T;
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;
  using Config = NcsnRefineNetConfig;
  static constexpr std::string_view name = "ncsn";

  explicit NcsnRefineNet(Config cfg = {}, std::uint64_t seed = 0) : cfg_(check(cfg)) { build(seed); }

  NcsnRefineNet(const NcsnRefineNet&) = delete;  // layers point into the parameter store
  NcsnRefineNet& operator=(const NcsnRefineNet&) = delete;

  const Config& config() const { return cfg_; }
  ParameterStore<T, B>& parameters() { return *store_; }
  const ParameterStore<T, B>& parameters() const { return *store_; }
  /// The context of training calls (forward, backward, the optimiser): one stream on CUDA.
  Context& context() { return ctx_; }
  std::size_t parameter_count() const { return store_->count(); }
  /// The parameter count of a network of config `c`, computed without building
  /// it (load() checks it against the file before allocating). `c` must pass
  /// the size bounds, which keep the count far from overflowing.
  static std::uint64_t count_parameters(const Config& c) {
    using u64 = std::uint64_t;
    const u64 ch = c.channels, F = c.ngf, L = c.num_levels;
    auto conv = [](u64 in, u64 out, u64 k, bool bias = true) { return out * in * k * k + (bias ? out : 0); };
    auto cin = [L](u64 n) { return 3 * L * n; };  // CondInstanceNormPlusPlus: (L, 3n)
    auto res = [&](u64 in, u64 out, bool down, u64 dilation) {  // NcsnResBlock
      const u64 mid = down ? in : out;
      const u64 shortcut = in != out || down ? conv(in, out, dilation ? 3 : 1) : 0;
      return conv(in, mid, 3) + cin(mid) + conv(mid, out, 3) + shortcut + cin(in);
    };
    auto rcu = [&](u64 f, u64 blocks) { return blocks * 2 * (cin(f) + conv(f, f, 3, false)); };  // 2 stages
    auto crp = [&](u64 f) { return 2 * (conv(f, f, 3, false) + cin(f)); };                        // 2 stages
    auto refine = [&](std::initializer_list<u64> planes, u64 f, bool start, bool end) {          // CondRefineBlock
      u64 n = rcu(f, end ? 3 : 1) + crp(f);
      for (u64 p : planes) n += rcu(p, 2) + (start ? 0 : conv(p, f, 3) + cin(p));  // adapt conv; MSF conv + norm
      return n;
    };
    return conv(ch, F, 3) + cin(F) + conv(F, ch, 3) + 2 * res(F, F, false, 0) + res(F, 2 * F, true, 0) +
           res(2 * F, 2 * F, false, 0) + res(2 * F, 2 * F, true, 2) + res(2 * F, 2 * F, false, 2) +
           res(2 * F, 2 * F, true, 4) + res(2 * F, 2 * F, false, 4) + refine({2 * F}, 2 * F, true, false) +
           refine({2 * F, 2 * F}, 2 * F, false, false) + refine({2 * F, 2 * F}, F, false, false) +
           refine({F, F}, F, false, true);
  }

  /// Multiply-accumulates of the convolutions of one forward pass for one image
  /// (norms, pooling and resizing excluded, as in the PyTorch hook count).
  std::size_t macs_per_image() const {
    const auto& L = *l_;
    const std::size_t S = cfg_.image_size, F = cfg_.ngf, h = S / 2;
    const Shape4 s1{1, F, S, S}, s2{1, 2 * F, h, h}, s3{1, F, h, h};  // s3: refine3's output
    std::size_t m = L.begin_conv.macs({1, cfg_.channels, S, S}) + L.end_conv.macs(s1);
    m += L.res1a.macs(s1) + L.res1b.macs(s1) + L.res2a.macs(s1) + L.res2b.macs(s2);
    m += L.res3a.macs(s2) + L.res3b.macs(s2) + L.res4a.macs(s2) + L.res4b.macs(s2);
    const std::array<Shape4, 1> i1{s2};
    const std::array<Shape4, 2> i23{s2, s2}, i4{s1, s3};
    m += L.refine1.macs(i1, h, h) + L.refine2.macs(i23, h, h) + L.refine3.macs(i23, h, h);
    m += L.refine4.macs(i4, S, S);
    return m;
  }

  /// Training forward: s(x, level) per sample, intermediates kept for backward().
  const Tensor& forward(const Tensor& x, std::span<const int> levels) {
    check_input(x, levels);
    auto& L = *l_;
    auto& ctx = ctx_;
    const std::size_t S = cfg_.image_size, h = S / 2;
    to_symmetric(ctx, x, xin_);
    L.begin_conv.forward(ctx, xin_, h0_);
    L.res1a.forward(ctx, h0_, levels, l1a_);
    L.res1b.forward(ctx, l1a_, levels, l1_);
    L.res2a.forward(ctx, l1_, levels, l2a_);
    L.res2b.forward(ctx, l2a_, levels, l2_);
    L.res3a.forward(ctx, l2_, levels, l3a_);
    L.res3b.forward(ctx, l3a_, levels, l3_);
    L.res4a.forward(ctx, l3_, levels, l4a_);
    L.res4b.forward(ctx, l4a_, levels, l4_);
    const Tensor* in1[] = {&l4_};
    L.refine1.forward(ctx, in1, levels, h, h, r1_);
    const Tensor* in2[] = {&l3_, &r1_};
    L.refine2.forward(ctx, in2, levels, h, h, r2_);
    const Tensor* in3[] = {&l2_, &r2_};
    L.refine3.forward(ctx, in3, levels, h, h, r3_);
    const Tensor* in4[] = {&l1_, &r3_};
    L.refine4.forward(ctx, in4, levels, S, S, r4_);
    L.normalizer.forward(ctx, r4_, levels, n_);
    L.elu.forward(ctx, n_, n_);
    L.end_conv.forward(ctx, n_, out_);
    return out_;
  }

  /// Inference scratch (nn/workspace.hpp): every tensor keeps one shape across calls
  /// (no reallocation), one block workspace per block.
  struct Workspace {
    Context ctx;  ///< this workspace's own (on CUDA a stream and library handles: one per thread)
    Tensor t[13];
    typename NcsnResBlock<T, B>::Workspace res[8];
    typename CondRefineBlock<T, B>::Workspace refine[4];
  };

  /// Inference forward (no caching): the score for each image at its level. Writes only
  /// `ws` and `out`: safe from several threads, each with its own workspace.
  void infer(Workspace& ws, const Tensor& x, std::span<const int> levels, Tensor& out) const {
    check_input(x, levels);
    const auto& L = *l_;
    auto& ctx = ws.ctx;
    const std::size_t S = cfg_.image_size, h = S / 2;
    auto& b = ws.t;
    auto& w = ws.res;
    auto& f = ws.refine;
    enum { xs, h0, w1, l1, w2, l2, l3, l4, ra, rb, r3, r4, nrm };  // shapes: ch@S, F@S x3, 2F@S/2 x6, F@S/2, F@S x2
    to_symmetric(ctx, x, b[xs]);
    L.begin_conv.infer(ctx, b[xs], b[h0]);
    L.res1a.infer(ctx, w[0], b[h0], levels, b[w1]);
    L.res1b.infer(ctx, w[1], b[w1], levels, b[l1]);
    L.res2a.infer(ctx, w[2], b[l1], levels, b[w2]);
    L.res2b.infer(ctx, w[3], b[w2], levels, b[l2]);
    L.res3a.infer(ctx, w[4], b[l2], levels, b[w2]);
    L.res3b.infer(ctx, w[5], b[w2], levels, b[l3]);
    L.res4a.infer(ctx, w[6], b[l3], levels, b[w2]);
    L.res4b.infer(ctx, w[7], b[w2], levels, b[l4]);
    const Tensor* in1[] = {&b[l4]};
    L.refine1.infer(ctx, f[0], in1, levels, h, h, b[ra]);
    const Tensor* in2[] = {&b[l3], &b[ra]};
    L.refine2.infer(ctx, f[1], in2, levels, h, h, b[rb]);
    const Tensor* in3[] = {&b[l2], &b[rb]};
    L.refine3.infer(ctx, f[2], in3, levels, h, h, b[r3]);
    const Tensor* in4[] = {&b[l1], &b[r3]};
    L.refine4.infer(ctx, f[3], in4, levels, S, S, b[r4]);
    L.normalizer.infer(ctx, b[r4], levels, b[nrm]);
    L.elu.infer(ctx, b[nrm], b[nrm]);
    L.end_conv.infer(ctx, b[nrm], out);
  }
  /// The same with the network's spare workspace (a fresh one while another thread holds it).
  void infer(const Tensor& x, std::span<const int> levels, Tensor& out) const {
    spare_.use([&](Workspace& ws) { infer(ws, x, levels, out); });
  }

  /// Back-propagates dL/d(score); parameter gradients accumulate (zero them first).
  void backward(const Tensor& d_score) {
    if (shape_of(d_score) != shape_of(out_))
      throw ShapeError("NcsnRefineNet: score gradient " + to_string(shape_of(d_score)) +
                       " does not match the last forward output " + to_string(shape_of(out_)));
    auto& L = *l_;
    auto& ctx = ctx_;
    auto& g = g_;
    L.end_conv.backward(ctx, d_score, g[0]);
    L.elu.backward(ctx, g[0], g[0]);
    L.normalizer.backward(ctx, g[0], g[1]);  // g1: d r4
    Tensor* d4[] = {&g[2], &g[3]};  // g2: d l1 (skip), g3: d r3
    L.refine4.backward(ctx, g[1], d4);
    Tensor* d3[] = {&g[4], &g[1]};  // g4: d l2 (skip), g1: d r2
    L.refine3.backward(ctx, g[3], d3);
    Tensor* d2[] = {&g[5], &g[3]};  // g5: d l3 (skip), g3: d r1
    L.refine2.backward(ctx, g[1], d2);
    Tensor* d1[] = {&g[1]};         // g1: d l4
    L.refine1.backward(ctx, g[3], d1);
    L.res4b.backward(ctx, g[1], g[0]);
    L.res4a.backward(ctx, g[0], g[1]);       // + d l3 through res4
    Ops::add_inplace(ctx, g[5], g[1]);
    L.res3b.backward(ctx, g[5], g[0]);
    L.res3a.backward(ctx, g[0], g[1]);
    Ops::add_inplace(ctx, g[4], g[1]);       // d l2
    L.res2b.backward(ctx, g[4], g[0]);
    L.res2a.backward(ctx, g[0], g[1]);
    Ops::add_inplace(ctx, g[2], g[1]);       // d l1
    L.res1b.backward(ctx, g[2], g[0]);
    L.res1a.backward(ctx, g[0], g[1]);
    L.begin_conv.backward_params(ctx, g[1]);  // the input gradient is not needed
  }

  /// The sizes a file records of this architecture (nn/nets/net_file.hpp).
  detail::NetSizes sizes() const { return {cfg_.channels, cfg_.image_size, cfg_.ngf, cfg_.num_levels}; }

  /// Architecture + parameter values (no optimiser state).
  void save(io::ByteWriter& w) const {
    detail::write_net_header(w, name, sizes());
    save_parameters(w, *store_);
  }
  /// Reads what save() wrote; a different architecture is rebuilt to match the file.
  /// The sizes are checked before anything is built; on error the network is unchanged.
  void load(io::ByteReader& r) {
    const detail::NetSizes sizes = detail::read_net_header(r, name);
    Config c;
    c.channels = sizes.channels;
    c.image_size = sizes.image_size;
    c.ngf = sizes.width;
    c.num_levels = sizes.num_levels;
    try {
      check(c);
    } catch (const Error& e) {
      r.fail(std::string("bad architecture: ") + e.what());
    }
    // Before anything is built: the file must hold the parameters this config implies.
    detail::expect_parameters_fit(r,
                                  "network '" + std::string(name) + "' (channels " + std::to_string(c.channels) +
                                      ", image_size " + std::to_string(c.image_size) + ", ngf " +
                                      std::to_string(c.ngf) + ", num_levels " + std::to_string(c.num_levels) + ")",
                                  count_parameters(c));
    if (!(c == cfg_)) {
      // Built aside and committed only once its parameters loaded: a failed
      // load leaves this network as it was (as load_parameters does for the values).
      auto store = std::make_unique<ParameterStore<T, B>>();
      auto layers = std::make_unique<Layers>(*store, c, CounterRng(0, 0x9C5E));
      store->finalize();
      load_parameters(r, *store);
      l_ = std::move(layers);  // the old layers go before the store they point into
      store_ = std::move(store);
      cfg_ = c;
      return;
    }
    load_parameters(r, *store_);
  }

 private:
  struct Layers {
    // Declaration order = registration order = NCSN's state_dict order.
    Conv2d<T, B> begin_conv;
    CondInstanceNormPlusPlus<T, B> normalizer;
    Conv2d<T, B> end_conv;
    NcsnResBlock<T, B> res1a, res1b, res2a, res2b, res3a, res3b, res4a, res4b;
    CondRefineBlock<T, B> refine1, refine2, refine3, refine4;
    Elu<T, B> elu;

    Layers(ParameterStore<T, B>& s, const Config& c, CounterRng r)
        : begin_conv(s, "begin_conv", {.in = c.channels, .out = c.ngf, .kernel = 3}, r.substream(0)),
          normalizer(s, "normalizer", c.ngf, c.num_levels, r.substream(1)),
          end_conv(s, "end_conv", {.in = c.ngf, .out = c.channels, .kernel = 3}, r.substream(2)),
          res1a(s, "res1.0", rb(c, 1, 1, Resample::none, 0), r.substream(3)),
          res1b(s, "res1.1", rb(c, 1, 1, Resample::none, 0), r.substream(4)),
          res2a(s, "res2.0", rb(c, 1, 2, Resample::down, 0), r.substream(5)),
          res2b(s, "res2.1", rb(c, 2, 2, Resample::none, 0), r.substream(6)),
          res3a(s, "res3.0", rb(c, 2, 2, Resample::down, 2), r.substream(7)),
          res3b(s, "res3.1", rb(c, 2, 2, Resample::none, 2), r.substream(8)),
          res4a(s, "res4.0", rb(c, 2, 2, Resample::down, 4), r.substream(9)),
          res4b(s, "res4.1", rb(c, 2, 2, Resample::none, 4), r.substream(10)),
          refine1(s, "refine1", {2 * c.ngf}, 2 * c.ngf, c.num_levels, true, false, r.substream(11)),
          refine2(s, "refine2", {2 * c.ngf, 2 * c.ngf}, 2 * c.ngf, c.num_levels, false, false, r.substream(12)),
          refine3(s, "refine3", {2 * c.ngf, 2 * c.ngf}, c.ngf, c.num_levels, false, false, r.substream(13)),
          refine4(s, "refine4", {c.ngf, c.ngf}, c.ngf, c.num_levels, false, true, r.substream(14)) {}

    static typename NcsnResBlock<T, B>::Spec rb(const Config& c, std::size_t in_mult, std::size_t out_mult, Resample rs,
                                             std::size_t dilation) {
      return {.in = in_mult * c.ngf, .out = out_mult * c.ngf, .resample = rs, .dilation = dilation,
              .num_levels = c.num_levels};
    }
  };

  static Config check(Config c) {
    using Lim = detail::NetLimits;
    detail::check_net_size("NcsnRefineNet", "channels", c.channels, 1, Lim::max_channels);
    detail::check_net_size("NcsnRefineNet", "num_levels", c.num_levels, 1, Lim::max_levels);
    if (c.ngf < 2)
      throw ValueError("NcsnRefineNet: ngf must be at least 2 (instance norm++ needs two channels), got " +
                       std::to_string(c.ngf));
    detail::check_net_size("NcsnRefineNet", "ngf", c.ngf, 2, Lim::max_width);
    detail::check_net_size("NcsnRefineNet", "image_size", c.image_size, 4, Lim::max_image_size);
    if (c.image_size % 2 != 0)
      throw ValueError("NcsnRefineNet: image_size must be even and at least 4 (res2 halves it), got " +
                       std::to_string(c.image_size));
    return c;
  }

  void build(std::uint64_t seed) {
    l_.reset();
    store_ = std::make_unique<ParameterStore<T, B>>();
    l_ = std::make_unique<Layers>(*store_, cfg_, CounterRng(seed, 0x9C5E));
    store_->finalize();
  }

  /// NCSN maps the input from [0, 1] to [-1, 1] (logit_transform off).
  static void to_symmetric(Context& ctx, const Tensor& x, Tensor& y) { Ops::affine(ctx, x, y, T(2), T(-1)); }

  void check_input(const Tensor& x, std::span<const int> levels) const {
    detail::check_score_net_input("NcsnRefineNet", x, levels, cfg_.channels, cfg_.image_size, cfg_.num_levels);
  }


  Config cfg_;
  std::unique_ptr<ParameterStore<T, B>> store_;
  std::unique_ptr<Layers> l_;
  // Training activations: every block input stays here unchanged until backward().
  Context ctx_;  // training calls
  Tensor xin_, h0_, l1a_, l1_, l2a_, l2_, l3a_, l3_, l4a_, l4_, r1_, r2_, r3_, r4_, n_, out_;
  Tensor g_[6];                 // gradient scratch
  WorkspaceCache<Workspace> spare_;  // for infer(x, levels, out)
};

}  // namespace scoreood::nn
