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
#include <scoreood/cpu/elementwise.hpp>
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

/// @tparam Backend backend tag: `cpu` here; the CUDA specialisation lives in cuda/.
/// @tparam T value type: float for work, double for gradient checks.
template <class Backend = backend::cpu, class T = float>
class SmallUNet {
  static_assert(std::is_same_v<Backend, backend::cpu>,
                "SmallUNet: no specialisation for this backend (compile with nvcc and include <scoreood/cuda.cuh>)");
};

template <class T>
class SmallUNet<backend::cpu, T> {
 public:
  using backend_type = backend::cpu;
  using value_type = T;
  using Config = SmallUNetConfig;
  static constexpr std::string_view name = "small-unet";

  explicit SmallUNet(Config cfg = {}, std::uint64_t seed = 0) : cfg_(check(cfg)) { build(seed); }

  SmallUNet(const SmallUNet&) = delete;  // layers point into the parameter store
  SmallUNet& operator=(const SmallUNet&) = delete;

  const Config& config() const { return cfg_; }
  ParameterStore<T>& parameters() { return *store_; }
  const ParameterStore<T>& parameters() const { return *store_; }
  std::size_t parameter_count() const { return store_->count(); }

  /// Multiply-accumulates of one forward pass for one image.
  std::size_t macs_per_image() const {
    const std::size_t S = cfg_.image_size, C = cfg_.width;
    const Shape4 s28{1, C, S, S}, s14{1, 2 * C, S / 2, S / 2}, s7{1, 2 * C, S / 4, S / 4};
    return l_->conv_in.macs({1, cfg_.channels, S, S}) + l_->rb1.macs(s28) + l_->rb2.macs({1, C, S, S}) +
           l_->rb3.macs(s14) + l_->rb4.macs(s7) + l_->rb5.macs(s14) + l_->rb6.macs(s28) + l_->conv_out.macs(s28);
  }

  /// Training forward: s(x, level) per sample, intermediates kept for backward().
  /// `x` must stay alive and unchanged until backward().
  const Tensor4<T>& forward(const Tensor4<T>& x, std::span<const int> levels) {
    check_input(x, levels);
    auto& L = *l_;
    L.conv_in.forward(x, h0_);
    L.rb1.forward(h0_, levels, h28_);
    L.rb2.forward(h28_, levels, h14_);
    L.rb3.forward(h14_, levels, h7a_);
    L.rb4.forward(h7a_, levels, h7b_);
    L.up14.forward(h7b_, u14_, &h14_);  // + skip, in the same pass
    L.rb5.forward(u14_, levels, h14b_);
    L.up28.forward(h14b_, u28_, &h28_);
    L.rb6.forward(u28_, levels, h28b_);
    L.norm_out.forward_elu(h28b_, levels, n_, L.elu_out, true);  // h28b_ is kept until backward
    L.conv_out.forward(n_, out_);
    return out_;
  }

  /// Inference scratch (nn/workspace.hpp): every tensor keeps one shape across calls
  /// (a shape change reallocates), one block workspace per block.
  struct Workspace {
    Tensor4<T> t[8];
    typename CondResBlock<T>::Workspace rb[6];
  };

  /// Inference forward (no caching): the score for each image at its level. Writes only
  /// `ws` and `out`: safe from several threads, each with its own workspace.
  void infer(Workspace& ws, const Tensor4<T>& x, std::span<const int> levels, Tensor4<T>& out) const {
    check_input(x, levels);
    const auto& L = *l_;
    auto& b = ws.t;
    auto& w = ws.rb;
    L.conv_in.infer(x, b[0]);                // C@28
    L.rb1.infer(w[0], b[0], levels, b[1]);   // C@28: 28-px skip
    L.rb2.infer(w[1], b[1], levels, b[2]);   // 2C@14: 14-px skip
    L.rb3.infer(w[2], b[2], levels, b[3]);   // 2C@7
    L.rb4.infer(w[3], b[3], levels, b[4]);   // 2C@7
    L.up14.infer(b[4], b[5], &b[2]);         // 2C@14, + 14-px skip
    L.rb5.infer(w[4], b[5], levels, b[6]);   // C@14
    L.up28.infer(b[6], b[0], &b[1]);         // C@28, + 28-px skip
    L.rb6.infer(w[5], b[0], levels, b[7]);   // C@28
    L.norm_out.infer_elu(b[7], levels, b[1], L.elu_out);
    L.conv_out.infer(b[1], out);
  }
  /// The same with the network's spare workspace (a fresh one while another thread holds it).
  void infer(const Tensor4<T>& x, std::span<const int> levels, Tensor4<T>& out) const {
    spare_.use([&](Workspace& ws) { infer(ws, x, levels, out); });
  }

  /// Back-propagates dL/d(score); parameter gradients accumulate (zero them first).
  void backward(const Tensor4<T>& d_score) {
    auto& L = *l_;
    // Gradient buffers by shape (C@28: 0, 1; 2C@14: 2, 3; C@14: 4; 2C@7: 5, 6) so none is reallocated.
    L.conv_out.backward(d_score, g_[0]);
    L.norm_out.backward_elu(g_[0], g_[1], L.elu_out);  // elu_out's backward fused in
    L.rb6.backward(g_[1], g_[0]);        // g0: d u28 = d(up28 out) = d h28 (skip)
    L.up28.backward(g_[0], g_[4]);       // g4: d h14b
    L.rb5.backward(g_[4], g_[2]);        // g2: d u14
    L.up14.backward(g_[2], g_[5]);       // g5: d h7b
    L.rb4.backward(g_[5], g_[6]);        // g6: d h7a
    L.rb3.backward(g_[6], g_[3]);        // g3: d h14 (via rb3)
    cpu::add_inplace(g_[3], g_[2]);      //     + d h14 via the skip add
    L.rb2.backward(g_[3], g_[1]);        // g1: d h28 (via rb2)
    cpu::add_inplace(g_[1], g_[0]);      //     + d h28 via the skip add
    L.rb1.backward(g_[1], g_[0]);        // g0: d h0
    L.conv_in.backward_params(g_[0]);    // the input gradient is not needed
  }

  /// The sizes a file records of this architecture (nn/nets/net_file.hpp).
  detail::NetSizes sizes() const { return {cfg_.channels, cfg_.image_size, cfg_.width, cfg_.num_levels}; }

  /// Architecture + parameter values (no optimiser state).
  void save(io::ByteWriter& w) const {
    detail::write_net_header(w, name, sizes());
    save_parameters(w, *store_);
  }
  /// Reads what save() wrote; a different architecture is rebuilt to match the file.
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
    if (!(c == cfg_)) {
      cfg_ = c;
      build(0);
    }
    load_parameters(r, *store_);
  }

 private:
  struct Layers {
    Conv2d<T> conv_in;
    CondResBlock<T> rb1, rb2, rb3, rb4, rb5, rb6;
    UpsampleNearest<T> up14, up28;
    CondInstanceNormPlusPlus<T> norm_out;
    Elu<T> elu_out;
    Conv2d<T> conv_out;

    Layers(ParameterStore<T>& s, const Config& c, CounterRng r)
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
    if (c.channels == 0 || c.width == 0 || c.num_levels == 0)
      throw ValueError("SmallUNet: channels, width and num_levels must be positive");
    if (c.image_size < 4 || c.image_size % 4 != 0)
      throw ValueError("SmallUNet: image_size must be a positive multiple of 4, got " + std::to_string(c.image_size));
    return c;
  }

  void build(std::uint64_t seed) {
    l_.reset();
    store_ = std::make_unique<ParameterStore<T>>();
    l_ = std::make_unique<Layers>(*store_, cfg_, CounterRng(seed, 0x5EED));
  }

  void check_input(const Tensor4<T>& x, std::span<const int> levels) const {
    detail::check_score_net_input("SmallUNet", x, levels, cfg_.channels, cfg_.image_size, cfg_.num_levels);
  }


  Config cfg_;
  std::unique_ptr<ParameterStore<T>> store_;
  std::unique_ptr<Layers> l_;
  Tensor4<T> h0_, h28_, h14_, h7a_, h7b_, u14_, h14b_, u28_, h28b_, n_, out_;  // training activations
  Tensor4<T> g_[7];                                                             // gradient scratch
  WorkspaceCache<Workspace> spare_;                                             // for infer(x, levels, out)
};

}  // namespace scoreood::nn
