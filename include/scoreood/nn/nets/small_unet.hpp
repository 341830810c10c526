/** @file small_unet.hpp
 *  @brief SmallUNet: a CPU-sized noise-conditional score network (~0.3 M
 *  parameters and ~54 MMAC per 28x28 image at width 32).
 *
 *  conv3x3(ch->C) -> RB(C) @28 -> RB(C->2C, /2) @14 -> RB(2C->2C, /2) @7 -> RB(2C)
 *  -> nearest-up to 14 + skip -> RB(2C->C) -> nearest-up to 28 + skip -> RB(C)
 *  -> CIN++ -> ELU -> conv3x3(C->ch). RB = CondResBlock. As in NCSN/MSMA the
 *  output is not divided by sigma: the noise level enters only through the
 *  conditional instance norms. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/nn/blocks/cond_res_block.hpp>
#include <scoreood/nn/checkpoint.hpp>
#include <scoreood/nn/layers/conv2d.hpp>
#include <scoreood/nn/layers/elu.hpp>
#include <scoreood/nn/layers/instance_norm.hpp>
#include <scoreood/nn/layers/upsample.hpp>
#include <scoreood/nn/nets/input_check.hpp>
#include <scoreood/nn/nets/net_file.hpp>
#include <scoreood/nn/parameter.hpp>
#include <scoreood/nn/workspace.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace scoreood::nn {

/// Architecture hyper-parameters of SmallUNet (saved in checkpoints).
struct SmallUNetConfig {
  std::size_t channels = 1;     ///< image channels (1 gray, 3 colour)
  std::size_t image_size = 28;  ///< square images; must be divisible by 4
  std::size_t width = 32;       ///< C: channels of the first stage
  std::size_t num_levels = 10;  ///< L: noise levels the norms are conditioned on

  bool operator==(const SmallUNetConfig&) const = default;
};

/// @tparam B backend tag (core/backend.hpp): backend::cpu, or backend::cuda in a translation
///           unit compiled by nvcc with <scoreood/cuda.hpp> included.
/// @tparam T value type: float for work, double for gradient checks (CPU).
template <concepts::Backend B = backend::cpu, class T = float>
class SmallUNet {
  using Ops = backend::ops<B>;

 public:
  using backend_type = B;
  using value_type = T;
  using Tensor = backend::tensor_t<B, T>;
  using Context = backend::context_t<B>;
  using Config = SmallUNetConfig;
  static constexpr std::string_view name = "small-unet";

  explicit SmallUNet(Config cfg = {}, std::uint64_t seed = 0) : cfg_(check(cfg)) { build(seed); }

  SmallUNet(const SmallUNet&) = delete;  // layers point into the parameter store
  SmallUNet& operator=(const SmallUNet&) = delete;

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
    const std::uint64_t ch = c.channels, C = c.width, L = c.num_levels;
    auto conv = [](std::uint64_t in, std::uint64_t out, std::uint64_t k) { return out * in * k * k + out; };
    auto cin = [L](std::uint64_t n) { return 3 * L * n; };  // CondInstanceNormPlusPlus: (L, 3n)
    auto rb = [&](std::uint64_t in, std::uint64_t out, std::uint64_t stride) {  // CondResBlock
      return cin(in) + conv(in, out, 3) + cin(out) + conv(out, out, 3) + (in != out || stride != 1 ? conv(in, out, 1) : 0);
    };
    return conv(ch, C, 3) + rb(C, C, 1) + rb(C, 2 * C, 2) + rb(2 * C, 2 * C, 2) + rb(2 * C, 2 * C, 1) +
           rb(2 * C, C, 1) + rb(C, C, 1) + cin(C) + conv(C, ch, 3);
  }

  /// Multiply-accumulates of one forward pass for one image.
  std::size_t macs_per_image() const {
    const std::size_t S = cfg_.image_size, C = cfg_.width;
    const Shape4 s28{1, C, S, S}, s14{1, 2 * C, S / 2, S / 2}, s7{1, 2 * C, S / 4, S / 4};
    return l_->conv_in.macs({1, cfg_.channels, S, S}) + l_->rb1.macs(s28) + l_->rb2.macs({1, C, S, S}) +
           l_->rb3.macs(s14) + l_->rb4.macs(s7) + l_->rb5.macs(s14) + l_->rb6.macs(s28) + l_->conv_out.macs(s28);
  }

  /// Training forward: s(x, level) per sample, intermediates kept for backward().
  /// `x` must stay alive and unchanged until backward().
  const Tensor& forward(const Tensor& x, std::span<const int> levels) {
    check_input(x, levels);
    auto& L = *l_;
    auto& ctx = ctx_;
    L.conv_in.forward(ctx, x, h0_);
    L.rb1.forward(ctx, h0_, levels, h28_);
    L.rb2.forward(ctx, h28_, levels, h14_);
    L.rb3.forward(ctx, h14_, levels, h7a_);
    L.rb4.forward(ctx, h7a_, levels, h7b_);
    L.up14.forward(ctx, h7b_, u14_, &h14_);  // + skip, in the same pass
    L.rb5.forward(ctx, u14_, levels, h14b_);
    L.up28.forward(ctx, h14b_, u28_, &h28_);
    L.rb6.forward(ctx, u28_, levels, h28b_);
    L.norm_out.forward_elu(ctx, h28b_, levels, n_, L.elu_out, true);  // h28b_ is kept until backward
    L.conv_out.forward(ctx, n_, out_);
    return out_;
  }

  /// Inference scratch (nn/workspace.hpp): every tensor keeps one shape across calls
  /// (a shape change reallocates), one block workspace per block.
  struct Workspace {
    Context ctx;  ///< this workspace's own (on CUDA a stream and library handles: one per thread)
    Tensor t[8];
    typename CondResBlock<T, B>::Workspace rb[6];
  };

  /// Inference forward (no caching): the score for each image at its level. Writes only
  /// `ws` and `out`: safe from several threads, each with its own workspace.
  void infer(Workspace& ws, const Tensor& x, std::span<const int> levels, Tensor& out) const {
    check_input(x, levels);
    const auto& L = *l_;
    auto& ctx = ws.ctx;
    auto& b = ws.t;
    auto& w = ws.rb;
    L.conv_in.infer(ctx, x, b[0]);                // C@28
    L.rb1.infer(ctx, w[0], b[0], levels, b[1]);   // C@28: 28-px skip
    L.rb2.infer(ctx, w[1], b[1], levels, b[2]);   // 2C@14: 14-px skip
    L.rb3.infer(ctx, w[2], b[2], levels, b[3]);   // 2C@7
    L.rb4.infer(ctx, w[3], b[3], levels, b[4]);   // 2C@7
    L.up14.infer(ctx, b[4], b[5], &b[2]);         // 2C@14, + 14-px skip
    L.rb5.infer(ctx, w[4], b[5], levels, b[6]);   // C@14
    L.up28.infer(ctx, b[6], b[0], &b[1]);         // C@28, + 28-px skip
    L.rb6.infer(ctx, w[5], b[0], levels, b[7]);   // C@28
    L.norm_out.infer_elu(ctx, b[7], levels, b[1], L.elu_out);
    L.conv_out.infer(ctx, b[1], out);
  }
  /// The same with the network's spare workspace (a fresh one while another thread holds it).
  void infer(const Tensor& x, std::span<const int> levels, Tensor& out) const {
    spare_.use([&](Workspace& ws) { infer(ws, x, levels, out); });
  }

  /// Back-propagates dL/d(score); parameter gradients accumulate (zero them first).
  void backward(const Tensor& d_score) {
    auto& L = *l_;
    auto& ctx = ctx_;
    // Gradient buffers by shape (C@28: 0, 1; 2C@14: 2, 3; C@14: 4; 2C@7: 5, 6) so none is reallocated.
    L.conv_out.backward(ctx, d_score, g_[0]);
    L.norm_out.backward_elu(ctx, g_[0], g_[1], L.elu_out);  // elu_out's backward fused in
    L.rb6.backward(ctx, g_[1], g_[0]);        // g0: d u28 = d(up28 out) = d h28 (skip)
    L.up28.backward(ctx, g_[0], g_[4]);       // g4: d h14b
    L.rb5.backward(ctx, g_[4], g_[2]);        // g2: d u14
    L.up14.backward(ctx, g_[2], g_[5]);       // g5: d h7b
    L.rb4.backward(ctx, g_[5], g_[6]);        // g6: d h7a
    L.rb3.backward(ctx, g_[6], g_[3]);        // g3: d h14 (via rb3)
    Ops::add_inplace(ctx, g_[3], g_[2]);      //     + d h14 via the skip add
    L.rb2.backward(ctx, g_[3], g_[1]);        // g1: d h28 (via rb2)
    Ops::add_inplace(ctx, g_[1], g_[0]);      //     + d h28 via the skip add
    L.rb1.backward(ctx, g_[1], g_[0]);        // g0: d h0
    L.conv_in.backward_params(ctx, g_[0]);    // the input gradient is not needed
  }

  /// The sizes a file records of this architecture (nn/nets/net_file.hpp).
  detail::NetSizes sizes() const { return {cfg_.channels, cfg_.image_size, cfg_.width, cfg_.num_levels}; }

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
    c.width = sizes.width;
    c.num_levels = sizes.num_levels;
    try {
      check(c);
    } catch (const Error& e) {
      r.fail(std::string("bad architecture: ") + e.what());
    }
    // Before anything is built: the file must hold the parameters this config implies.
    detail::expect_parameters_fit(r,
                                  "network '" + std::string(name) + "' (channels " + std::to_string(c.channels) +
                                      ", image_size " + std::to_string(c.image_size) + ", width " +
                                      std::to_string(c.width) + ", num_levels " + std::to_string(c.num_levels) + ")",
                                  count_parameters(c));
    if (!(c == cfg_)) {
      // Built aside and committed only once its parameters loaded: a failed
      // load leaves this network as it was (as load_parameters does for the values).
      auto store = std::make_unique<ParameterStore<T, B>>();
      auto layers = std::make_unique<Layers>(*store, c, CounterRng(0, 0x5EED));
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
    Conv2d<T, B> conv_in;
    CondResBlock<T, B> rb1, rb2, rb3, rb4, rb5, rb6;
    UpsampleNearest<T, B> up14, up28;
    CondInstanceNormPlusPlus<T, B> norm_out;
    Elu<T, B> elu_out;
    Conv2d<T, B> conv_out;

    Layers(ParameterStore<T, B>& s, const Config& c, CounterRng r)
        : conv_in(s, "conv_in", {.in = c.channels, .out = c.width, .kernel = 3}, r.substream(0)),
          rb1(s, "rb1", c.width, c.width, 1, c.num_levels, r.substream(1)),
          rb2(s, "rb2", c.width, 2 * c.width, 2, c.num_levels, r.substream(2)),
          rb3(s, "rb3", 2 * c.width, 2 * c.width, 2, c.num_levels, r.substream(3)),
          rb4(s, "rb4", 2 * c.width, 2 * c.width, 1, c.num_levels, r.substream(4)),
          rb5(s, "rb5", 2 * c.width, c.width, 1, c.num_levels, r.substream(5)),
          rb6(s, "rb6", c.width, c.width, 1, c.num_levels, r.substream(6)),
          up14(c.image_size / 2, c.image_size / 2),
          up28(c.image_size, c.image_size),
          norm_out(s, "norm_out", c.width, c.num_levels, r.substream(7)),
          conv_out(s, "conv_out", {.in = c.width, .out = c.channels, .kernel = 3}, r.substream(8)) {}
  };

  static Config check(Config c) {
    using Lim = detail::NetLimits;
    detail::check_net_size("SmallUNet", "channels", c.channels, 1, Lim::max_channels);
    // Instance norm++ needs two channels (the first stage has `width`).
    detail::check_net_size("SmallUNet", "width", c.width, 2, Lim::max_width);
    detail::check_net_size("SmallUNet", "num_levels", c.num_levels, 1, Lim::max_levels);
    detail::check_net_size("SmallUNet", "image_size", c.image_size, 4, Lim::max_image_size);
    if (c.image_size % 4 != 0)
      throw ValueError("SmallUNet: image_size must be a positive multiple of 4, got " + std::to_string(c.image_size));
    return c;
  }

  void build(std::uint64_t seed) {
    l_.reset();
    store_ = std::make_unique<ParameterStore<T, B>>();
    l_ = std::make_unique<Layers>(*store_, cfg_, CounterRng(seed, 0x5EED));
    store_->finalize();
  }

  void check_input(const Tensor& x, std::span<const int> levels) const {
    detail::check_score_net_input("SmallUNet", x, levels, cfg_.channels, cfg_.image_size, cfg_.num_levels);
  }


  Config cfg_;
  std::unique_ptr<ParameterStore<T, B>> store_;
  std::unique_ptr<Layers> l_;
  Context ctx_;                                                         // training calls
  Tensor h0_, h28_, h14_, h7a_, h7b_, u14_, h14b_, u28_, h28b_, n_, out_;  // training activations
  Tensor g_[7];                                                         // gradient scratch
  WorkspaceCache<Workspace> spare_;                                             // for infer(x, levels, out)
};

}  // namespace scoreood::nn
