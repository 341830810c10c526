/** @file conv2d.hpp
 *  @brief 2-D convolution (square kernel, stride, zero padding, dilation) on the CPU.
 *
 *  PyTorch semantics and layout: weight [out, in, k, k], bias [out], output
 *  size (H + 2p - d(k-1) - 1) / s + 1, default init U(±1/sqrt(in*k*k)).
 *
 *  Implementation: the batch is split across OpenMP threads, each running
 *  single-threaded GEMMs per image with the weight packed once per call.
 *  Stride-1 convolutions (float, AVX-512) read the input in place from a
 *  zero-padded copy: on the padded width Wp every tap (ky, kx) is one constant
 *  offset, so GEMM row (c, ky, kx) is the padded plane c shifted (a table of
 *  row offsets, no unfolding); results computed on the padded width are
 *  compacted afterwards.
 *    forward          Y_n  = W * shifted(pad(x_n)) (+ bias)
 *    backward-data    dx_n = flip(W)^T * shifted(pad(dY_n))  (a convolution of dY)
 *    backward-filter  dW  += dY_n * shifted(pad(x_n))^T    (NT dot-product kernel over groups of images;
 *                                                           per-thread accumulators, reduced in parallel)
 *  3x3 convolutions with stride 1 and padding 1 (float, AVX-512, at least 8
 *  channels in and out) use Winograd's F(4x4, 3x3) instead for all three
 *  passes (cpu/winograd.hpp: 4x fewer multiplies; results within ~1e-5
 *  relative of the direct path); set_algorithm(direct) turns it off.
 *  Strided (and padded 1x1) convolutions (float, AVX-512) read the forward's
 *  input from S x S phase planes, and their backward runs on phase planes too
 *  (cpu/phase_backward.hpp: per-phase stride-1 products for dx, an
 *  outer-product kernel for dW). Everything else (double, no AVX-512, 1x1
 *  stride 1) unfolds one image (im2col, skipped for 1x1 stride-1) and uses the
 *  packed kernel or Eigen, with col2im for backward-data. Batches smaller than the thread count run
 *  image by image. Scratch buffers are per-thread and shared by all layers,
 *  so steady-state calls do not allocate.
 *
 *  Training contract: forward() keeps a pointer to its input (no copy). The
 *  input tensor must stay alive and unchanged until backward(); a resized or
 *  reallocated input is detected and reported. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/elementwise.hpp>
#include <scoreood/cpu/gemm.hpp>
#include <scoreood/cpu/im2col.hpp>
#include <scoreood/cpu/packed_gemm.hpp>
#include <scoreood/cpu/phase_backward.hpp>
#include <scoreood/cpu/threading.hpp>
#include <scoreood/cpu/winograd.hpp>
#include <scoreood/nn/parameter.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

namespace scoreood::nn {

/// @tparam T float for work, double for gradient tests.
template <class T>
class Conv2d {
 public:
  struct Spec {
    std::size_t in = 0, out = 0, kernel = 3;
    std::size_t stride = 1;
    std::ptrdiff_t padding = -1;  ///< -1: "same" padding dilation*(kernel-1)/2
    std::size_t dilation = 1;
    bool bias = true;
  };

  /// Registers name+".weight" [out,in,k,k] and (if spec.bias) name+".bias" [out],
  /// both drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in*k*k (PyTorch's default).
  Conv2d(ParameterStore<T>& store, const std::string& name, Spec spec, CounterRng init)
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
    T* w = weight_.value();
    for (std::size_t i = 0; i < weight_.size; ++i) w[i] = T(bound * (2.0 * wr.uniform(i) - 1.0));
    if (spec.bias) {
      T* b = bias_.value();
      for (std::size_t i = 0; i < bias_.size; ++i) b[i] = T(bound * (2.0 * br.uniform(i) - 1.0));
    }
  }

  /// How a convolution that Winograd can run is computed (other shapes ignore it).
  enum class Algorithm { automatic, direct };
  void set_algorithm(Algorithm a) { algorithm_ = a; }
  Algorithm algorithm() const { return algorithm_; }
  /// True when all three passes (forward, backward-data, weight gradient) of this input shape run F(4x4, 3x3).
  bool uses_winograd(Shape4 in) const { return winograd(geometry(in)); }

  const Spec& spec() const { return spec_; }
  const std::string& name() const { return name_; }
  std::size_t padding() const { return pad_; }  ///< the resolved padding
  const ParamRef<T>& weight() const { return weight_; }
  const ParamRef<T>& bias() const { return bias_; }  ///< size 0 without bias

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
  void forward(const Tensor4<T>& x, Tensor4<T>& y, const Tensor4<T>* residual = nullptr) {
    infer(x, y, residual);
    x_ = &x;
    x_data_ = x.data();
    x_shape_ = shape_of(x);
  }

  /// Inference forward: no state kept (safe to interleave with training calls).
  void infer(const Tensor4<T>& x, Tensor4<T>& y, const Tensor4<T>* residual = nullptr) const {
    if (&x == &y) throw Error("Conv2d '" + name_ + "': input and output must be different tensors");
    const Shape4 xs = shape_of(x);
    const cpu::ConvGeometry g = geometry(xs);
    const Shape4 ys{xs[0], spec_.out, g.out_h, g.out_w};
    if (residual && (residual == &y || shape_of(*residual) != ys))
      throw ShapeError("Conv2d '" + name_ + "': the residual must be a separate tensor of the output's shape " +
                       to_string(ys) + (residual == &y ? "" : ", got " + to_string(shape_of(*residual))));
    const T* rd = residual ? residual->data() : nullptr;
    resize(y, ys);
    const std::size_t N = xs[0], M = spec_.out, K = g.rows(), P = g.cols();
    const T* w = weight_.value();
    const T* b = spec_.bias ? bias_.value() : nullptr;
    const T* xd = x.data();
    T* yd = y.data();
    const int nt = cpu::threads_for(N, double(M) * double(K) * double(P));
    if constexpr (std::is_same_v<T, float>) {
      if (winograd(g)) {
        const float* U = winograd_weights(false);  // shared read-only by all threads
        const cpu::winograd::Shape ws{spec_.in, M, g.height, g.width};
        cpu::parallel_region(nt, [&](int t, int T_) {
          const auto [n0, n1] = cpu::split_range(N, t, T_);
          if (n1 > n0)
            cpu::winograd::conv3x3(U, ws, xd + n0 * g.image_size(), n1 - n0, b, rd ? rd + n0 * M * P : nullptr,
                                   yd + n0 * M * P);
        });
        return;
      }
    }
    const T* pa = pack_weight(false, M, K);  // shared read-only by all threads
    if (pa && direct_forward(g)) {
      // B is read in place from a zero-padded copy of the image (no unfolding):
      // for stride s the padded image is split into s x s phase planes, and tap
      // (ky, kx) is then one constant offset into the phase it falls on. The
      // output is computed on the phase width Ws and compacted.
      const std::size_t S = g.stride, k = spec_.kernel, dl = spec_.dilation;
      const std::size_t Hp = g.height + 2 * pad_, Wp = g.width + 2 * pad_;
      const std::size_t Hs = (Hp + S - 1) / S, Ws = (Wp + S - 1) / S, phase = Hs * Ws, plane = S * S * phase;
      const std::size_t qmax = (k - 1) * dl / S;
      const std::size_t slack = (qmax + 1) * Ws + qmax + 16;  // the last rows' junk columns read past the end
      const std::size_t padded_size = g.channels * plane + slack;
      std::ptrdiff_t* off = tap_offsets(g.channels, plane, Ws, 0);
      if (S > 1)
        for (std::size_t c = 0; c < g.channels; ++c)
          for (std::size_t ky = 0; ky < k; ++ky)
            for (std::size_t kx = 0; kx < k; ++kx) {
              const std::size_t ty = ky * dl, tx = kx * dl;
              off[(c * k + ky) * k + kx] =
                  std::ptrdiff_t(c * plane + ((ty % S) * S + tx % S) * phase + (ty / S) * Ws + tx / S);
            }
      const std::size_t Nw = g.out_h * Ws;
      const std::size_t H = g.height, W = g.width, C = g.channels, pd = pad_;
      cpu::parallel_region(nt, [&](int t, int T_) {
        const auto [n0, n1] = cpu::split_range(N, t, T_);
        T* xp = cpu::scratch<T>(cpu::Scratch::col, padded_size);
        T* yw = cpu::scratch<T>(cpu::Scratch::dcol, M * Nw);
        for (std::size_t n = n0; n < n1; ++n) {
          const T* xn = xd + n * g.image_size();
          if (S == 1) {
            cpu::pad_planes(xn, C, H, W, pd, pd, pd, pd, slack, xp);
          } else {
            for (std::size_t c = 0; c < C; ++c)
              for (std::size_t a = 0; a < S; ++a)
                for (std::size_t bb = 0; bb < S; ++bb) {
                  T* ph = xp + c * plane + (a * S + bb) * phase;
                  for (std::size_t i = 0; i < Hs; ++i) {
                    const std::ptrdiff_t yy = std::ptrdiff_t(S * i + a) - std::ptrdiff_t(pd);
                    T* row = ph + i * Ws;
                    if (yy < 0 || yy >= std::ptrdiff_t(H)) {
                      std::fill(row, row + Ws, T(0));
                      continue;
                    }
                    const T* src = xn + (c * H + std::size_t(yy)) * W;
                    if constexpr (std::is_same_v<T, float>) {
                      if (S == 2) {
                        stride2_phase_row(src, W, std::ptrdiff_t(bb) - std::ptrdiff_t(pd), row, Ws);
                        continue;
                      }
                    }
                    for (std::size_t j = 0; j < Ws; ++j) {
                      const std::ptrdiff_t xx = std::ptrdiff_t(S * j + bb) - std::ptrdiff_t(pd);
                      row[j] = xx >= 0 && xx < std::ptrdiff_t(W) ? src[xx] : T(0);
                    }
                  }
                }
            std::fill(xp + C * plane, xp + padded_size, T(0));
          }
          if (b)
            for (std::size_t m = 0; m < M; ++m) std::fill(yw + m * Nw, yw + (m + 1) * Nw, b[m]);
          cpu::gemm_packed_offsets<T>(pa, M, K, xp, off, Nw, yw, Nw, b != nullptr);
          // The residual is added while the rows are in cache.
          cpu::compact_rows(yw, M, g.out_h, g.out_w, Ws, yd + n * M * P, rd ? rd + n * M * P : nullptr);
        }
      });
      return;
    }
    cpu::parallel_region(nt, [&](int t, int T_) {
      const auto [n0, n1] = cpu::split_range(N, t, T_);
      T* col = g.is_pointwise() ? nullptr : cpu::scratch<T>(cpu::Scratch::col, K * P);
      for (std::size_t n = n0; n < n1; ++n) {
        const T* xn = xd + n * g.image_size();
        T* yn = yd + n * M * P;
        const T* src = xn;
        if (col) {
          cpu::im2col(g, xn, col);
          src = col;
        }
        // The bias initialises the output and the GEMM accumulates onto it (one pass less).
        if (b)
          for (std::size_t m = 0; m < M; ++m) std::fill(yn + m * P, yn + (m + 1) * P, b[m]);
        if (pa) cpu::gemm_packed<T>(pa, M, K, src, P, P, yn, P, b != nullptr);
        else cpu::gemm<T>(false, false, M, P, K, T(1), w, K, src, P, b ? T(1) : T(0), yn, P);
        if (rd) cpu::kernels::add_to(yn, rd + n * M * P, M * P);
      }
    });
  }

  /// dx = dL/dx (resized, overwritten); weight/bias grads += dL/dW, dL/db.
  void backward(const Tensor4<T>& dy, Tensor4<T>& dx) { backward_impl(dy, &dx); }

  /// Parameter gradients only (first layer of a net: dL/dx is not needed).
  void backward_params(const Tensor4<T>& dy) { backward_impl(dy, nullptr); }

 private:
  cpu::ConvGeometry geometry(const Shape4& in) const {
    if (in[1] != spec_.in)
      throw ShapeError("Conv2d '" + name_ + "': input " + to_string(in) + " has " + std::to_string(in[1]) +
                       " channels, expected " + std::to_string(spec_.in));
    cpu::ConvGeometry g;
    g.channels = in[1];
    g.height = in[2];
    g.width = in[3];
    g.kernel = spec_.kernel;
    g.stride = spec_.stride;
    g.pad = pad_;
    g.dilation = spec_.dilation;
    if (!g.compute_output())
      throw ShapeError("Conv2d '" + name_ + "': input " + to_string(in) + " is smaller than the dilated kernel (" +
                       std::to_string(spec_.dilation * (spec_.kernel - 1) + 1) + " with padding " +
                       std::to_string(pad_) + ")");
    return g;
  }

  /// row[j] = src[2j + sh] where that is inside [0, W), else 0, for j < n: one
  /// phase row of a stride-2 convolution's input, deinterleaved with vector
  /// permutes (a scalar strided copy costs as much as the convolution's GEMM share).
  static void stride2_phase_row(const float* src, std::size_t W, std::ptrdiff_t sh, float* row, std::size_t n) {
    const std::ptrdiff_t Wi = std::ptrdiff_t(W);
    const std::size_t j0 = sh >= 0 ? 0 : std::min(n, std::size_t((-sh + 1) / 2));
    const std::ptrdiff_t last = Wi - 1 - sh;  // 2j <= last
    const std::size_t j1 = last < 0 ? j0 : std::clamp<std::size_t>(std::size_t(last / 2) + 1, j0, n);
    std::fill(row, row + j0, 0.f);
    std::fill(row + j1, row + n, 0.f);
#if defined(__AVX512F__)
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (std::size_t j = j0; j < j1; j += 16) {
      const std::size_t cnt = std::min<std::size_t>(16, j1 - j);
      const std::size_t need = 2 * cnt - 1;  // inputs 2j + sh .. 2(j + cnt - 1) + sh
      const float* p = src + (std::ptrdiff_t(2 * j) + sh);
      const __m512 lo = _mm512_maskz_loadu_ps(cpu::detail::lane_range(0, std::ptrdiff_t(std::min<std::size_t>(16, need))), p);
      const __m512 hi = need > 16 ? _mm512_maskz_loadu_ps(cpu::detail::lane_range(0, std::ptrdiff_t(need - 16)), p + 16)
                                  : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(row + j, cpu::detail::lane_range(0, std::ptrdiff_t(cnt)),
                            _mm512_permutex2var_ps(lo, even, hi));
    }
#else
    for (std::size_t j = j0; j < j1; ++j) row[j] = src[std::ptrdiff_t(2 * j) + sh];
#endif
  }

  /// Stride-1 convolutions (not 1x1) run on zero-padded copies read in place
  /// (native kernel only): the padded width Wp = W + 2p serves as the row
  /// length of the output grid too, so tap (ky, kx) is one constant offset.
  static bool direct(const cpu::ConvGeometry& g) {
    return cpu::packed_gemm_is_native<T>() && g.stride == 1 && !g.is_pointwise() &&
           (g.kernel - 1) * g.dilation >= g.pad;
  }
  /// Winograd F(4x4, 3x3): 3x3, stride 1, padding 1, float with the native kernel, >= 8 channels
  /// each way (fewer would leave most of the packed kernel's 8-row tiles empty).
  bool winograd(const cpu::ConvGeometry& g) const {
    return std::is_same_v<T, float> && cpu::winograd::available() && algorithm_ == Algorithm::automatic &&
           g.kernel == 3 && g.stride == 1 && g.dilation == 1 && g.pad == 1 && spec_.in >= 8 && spec_.out >= 8;
  }
  /// The weights transformed and packed for winograd::conv3x3 in the calling thread's
  /// scratch: the forward's, or (data) the backward-data's W^T with the taps flipped.
  const float* winograd_weights(bool data) const {
    const std::size_t Co = spec_.out, Ci = spec_.in, rows = data ? Ci : Co, cols = data ? Co : Ci;
    float* U = cpu::scratch<float>(cpu::Scratch::wino_u, cpu::winograd::weights_size(rows, cols));
    float* tmp = cpu::scratch<float>(cpu::Scratch::wino_small, cpu::winograd::kPositions * rows * cols);
    const T* w = weight_.value();
    if (data)
      cpu::winograd::transform_weights(
          [&](std::size_t i, std::size_t o, std::size_t ky, std::size_t kx) {
            return w[((o * Ci + i) * 3 + (2 - ky)) * 3 + (2 - kx)];
          },
          rows, cols, U, tmp);
    else
      cpu::winograd::transform_weights(
          [&](std::size_t o, std::size_t i, std::size_t ky, std::size_t kx) { return w[((o * Ci + i) * 3 + ky) * 3 + kx]; },
          rows, cols, U, tmp);
    return U;
  }
  /// The forward reads any non-1x1 (or strided) convolution in place (native kernel only).
  static bool direct_forward(const cpu::ConvGeometry& g) { return cpu::packed_gemm_is_native<T>() && !g.is_pointwise(); }
  struct Direct {
    std::size_t Hp, Wp, plane, slack, padded_size;
  };
  /// Forward / backward-filter layout: the input padded by p on every side.
  Direct direct_layout(const cpu::ConvGeometry& g) const {
    Direct d;
    d.Hp = g.height + 2 * pad_;
    d.Wp = g.width + 2 * pad_;
    d.plane = d.Hp * d.Wp;
    d.slack = (g.kernel - 1) * g.dilation + 16;  // the last rows' junk columns read past the last plane
    d.padded_size = g.channels * d.plane + d.slack;
    return d;
  }
  /// Backward-data layout: dY padded by q = d(k-1) - p, read by the flipped kernel.
  Direct data_layout(const cpu::ConvGeometry& g) const {
    const std::size_t q = (g.kernel - 1) * g.dilation - pad_;
    Direct d;
    d.Hp = g.out_h + 2 * q;
    d.Wp = g.out_w + 2 * q;
    d.plane = d.Hp * d.Wp;
    d.slack = (g.kernel - 1) * g.dilation + 16;
    d.padded_size = spec_.out * d.plane + d.slack;
    return d;
  }
  /// off[(c * k + ky) * k + kx] = c * plane + ky*d*ld + kx*d, in the calling thread's scratch
  /// (a separate slot per use so forward-style and data tables can coexist).
  std::ptrdiff_t* tap_offsets(std::size_t channels, std::size_t plane, std::size_t ld, int slot) const {
    thread_local std::vector<std::ptrdiff_t> tables[2];
    auto& v = tables[slot];
    const std::size_t k = spec_.kernel, dl = spec_.dilation;
    v.resize(channels * k * k);
    for (std::size_t c = 0; c < channels; ++c)
      for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx)
          v[(c * k + ky) * k + kx] = std::ptrdiff_t(c * plane + ky * dl * ld + kx * dl);
    return v.data();
  }
  /// W^T with the taps flipped, packed: rows in, cols (out, ky, kx); the
  /// backward-data GEMM of a stride-1 convolution.
  const T* pack_weight_flipped() const {
    const std::size_t Ci = spec_.in, Co = spec_.out, k = spec_.kernel, kk = k * k, cols = Co * kk;
    T* tmp = cpu::scratch<T>(cpu::Scratch::accum, Ci * cols);
    const T* w = weight_.value();
    for (std::size_t c = 0; c < Ci; ++c)
      for (std::size_t m = 0; m < Co; ++m)
        for (std::size_t t = 0; t < kk; ++t) tmp[c * cols + m * kk + t] = w[(m * Ci + c) * kk + (kk - 1 - t)];
    T* buf = cpu::scratch<T>(cpu::Scratch::packed, cpu::packed_lhs_size<T>(Ci, cols));
    cpu::pack_lhs(tmp, Ci, cols, cols, 1, buf);
    return buf;
  }

  /// The weight (or its transpose, rows x cols of the GEMM) packed for the
  /// native kernel in the calling thread's scratch; nullptr when Eigen's GEMM
  /// is used instead (no AVX-512 / double, or fewer than 8 rows, where the
  /// 8-row tiles would mostly compute padding).
  const T* pack_weight(bool transpose, std::size_t rows, std::size_t cols) const {
    if (!cpu::packed_gemm_is_native<T>() || rows < 8) return nullptr;
    T* buf = cpu::scratch<T>(cpu::Scratch::packed, cpu::packed_lhs_size<T>(rows, cols));
    const T* w = weight_.value();
    if (transpose) cpu::pack_lhs(w, rows, cols, 1, rows, buf);  // (k, m) = w[m * K + k]
    else cpu::pack_lhs(w, rows, cols, cols, 1, buf);
    return buf;
  }

  static void resize(Tensor4<T>& t, const Shape4& s) {
    if (shape_of(t) != s) t.resize(s);
  }

  void backward_impl(const Tensor4<T>& dy, Tensor4<T>* dx) {
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
      resize(*dx, x_shape_);
    }
    if constexpr (cpu::packed_gemm_is_native<T>()) {
      // Strided (and padded 1x1) convolutions: phase planes, no im2col / col2im. Stride-1
      // convolutions that Winograd does not run (dilated, 5x5, ...) with 16 or more outputs too:
      // there the broadcast filter kernel beats the NT dot-product one (measured 1.24x / 1.46x
      // backward on NcsnRefineNet's dilation-2 / -4 128-channel layers). With fewer outputs
      // (conv_out, 1 channel) most of its vector lanes would idle; with 1 input channel
      // (SmallUNet's conv_in) it measured 1.19x slower.
      // 1x1 stride 1 needs no unfolding: the generic path below is already GEMMs on x and dY.
      const bool phase_stride1 = !winograd(g) && spec_.out >= 16 && spec_.in >= 8;
      if ((!direct(g) || phase_stride1) && !g.is_pointwise()) {
        cpu::conv_backward_phases(g, x_shape_[0], spec_.out, weight_.value(), x_data_, dy.data(),
                                  dx ? dx->data() : nullptr, weight_.grad(), spec_.bias ? bias_.grad() : nullptr);
        return;
      }
    }
    const std::size_t N = x_shape_[0], M = spec_.out, K = g.rows(), P = g.cols();
    const std::size_t acc_size = M * K + (spec_.bias ? M : 0);
    const T* w = weight_.value();
    T* gw = weight_.grad();
    T* gb = spec_.bias ? bias_.grad() : nullptr;
    const T* xd = x_data_;
    const T* dyd = dy.data();
    T* dxd = dx ? dx->data() : nullptr;
    const int nt = std::min(kMaxThreads, cpu::threads_for(N, double(M) * double(K) * double(P) * (dx ? 2 : 1)));
    T* accs[kMaxThreads] = {};
    // 3x3 same convolutions run both gradients by Winograd; the others directly or unfolded.
    const bool wino = winograd(g);
    const bool dir = !wino && direct(g);
    const float* Ud = nullptr;  // backward-data: a 3x3 same convolution of dY with W^T flipped
    if constexpr (std::is_same_v<T, float>)
      if (wino && dx) Ud = winograd_weights(true);
    // W^T for backward-data; with the direct path W^T with flipped taps (a convolution of dY).
    const T* pa = !dx || wino ? nullptr : dir ? pack_weight_flipped() : pack_weight(true, K, M);
    const Direct fd = dir ? direct_layout(g) : Direct{};
    const Direct dd = dir && dx ? data_layout(g) : Direct{};
    const std::ptrdiff_t* off = dir ? tap_offsets(g.channels, fd.plane, fd.Wp, 0) : nullptr;
    const std::ptrdiff_t* offd = dir && dx ? tap_offsets(M, dd.plane, dd.Wp, 1) : nullptr;
    const std::size_t L = g.out_h * fd.Wp;  // the padded-width output grid of the forward
    // Images per backward-filter call: their padded inputs and gradients stay in L2.
    // Also few enough that one 4-row tile of dY over the group (4 * G * L values, 16 KB at most)
    // stays in L1 while the kernel sweeps the K columns; else it streams from L2 once per
    // column tile (measured: conv backward 9 % faster at 28x28x32 and 14x14x64, batch 128).
    const std::size_t G =
        dir ? std::clamp<std::size_t>(std::min((std::size_t(1) << 18) / (fd.padded_size + M * L),
                                               std::size_t(1024) / std::max<std::size_t>(L, 1)),
                                      1, cpu::kNtMaxGroup)
            : 1;
    cpu::parallel_region(nt, [&](int t, int T_) {
      const auto [n0, n1] = cpu::split_range(N, t, T_);
      const bool pw = g.is_pointwise();
      // One thread accumulates straight into the store; the others into scratch.
      T* acc_w = gw;
      T* acc_b = gb;
      if (t > 0) {
        T* acc = cpu::scratch<T>(cpu::Scratch::accum, acc_size);
        std::fill(acc, acc + acc_size, T(0));
        accs[t] = acc;
        acc_w = acc;
        acc_b = gb ? acc + M * K : nullptr;
      }
      if (wino) {
        if constexpr (std::is_same_v<T, float>) {
          if (n1 > n0) {
            namespace wg = cpu::winograd;
            const std::size_t C = g.channels;
            if (dx)
              wg::conv3x3(Ud, wg::Shape{M, C, g.height, g.width}, dyd + n0 * M * P, n1 - n0, nullptr, nullptr,
                          dxd + n0 * g.image_size());
            // dW in the Winograd domain over this thread's images, then mapped back once.
            const std::size_t du_size = wg::kPositions * M * C;
            float* dU = cpu::scratch<float>(cpu::Scratch::wino_grad, du_size);
            std::fill(dU, dU + du_size, 0.f);
            wg::conv3x3_grad_u(wg::Shape{C, M, g.height, g.width}, xd + n0 * g.image_size(), dyd + n0 * M * P,
                               n1 - n0, dU);
            wg::weight_grad(dU, M, C, [&](std::size_t o, std::size_t i, std::size_t ky, std::size_t kx, double v) {
              acc_w[o * K + (i * 3 + ky) * 3 + kx] += float(v);
            });
            if (acc_b)
              for (std::size_t n = n0; n < n1; ++n)
                for (std::size_t m = 0; m < M; ++m) acc_b[m] += cpu::kernels::sum(dyd + n * M * P + m * P, P);
          }
        }
      } else if (dir) {
        T* xps = cpu::scratch<T>(cpu::Scratch::col, G * fd.padded_size);
        // With "same" padding (q == p) the backward-data copy of dY, padded by q on the
        // forward's padded width, is also the backward-filter's A: its rows read from
        // (q, q) on are dY with zero junk columns. One copy of dY per image then, kept per group.
        const bool shared = dx && dd.Wp == fd.Wp && dd.Hp == g.out_h + 2 * pad_;
        const std::size_t a_stride = shared ? dd.padded_size : M * L;
        T* dys = cpu::scratch<T>(cpu::Scratch::dcol, G * a_stride);
        T* dyq = dx && !shared ? cpu::scratch<T>(cpu::Scratch::temp, dd.padded_size) : nullptr;
        T* dxw = dx ? cpu::scratch<T>(cpu::Scratch::wide, g.channels * g.height * dd.Wp) : nullptr;
        const T* as[cpu::kNtMaxGroup];
        const T* bs[cpu::kNtMaxGroup];
        for (std::size_t nb = n0; nb < n1; nb += G) {
          const std::size_t gs = std::min(G, n1 - nb);
          for (std::size_t j = 0; j < gs; ++j) {
            const std::size_t n = nb + j;
            const T* dyn = dyd + n * M * P;
            T* xp = xps + j * fd.padded_size;
            T* dyw = dys + j * a_stride;
            cpu::pad_planes(xd + n * g.image_size(), g.channels, g.height, g.width, pad_, fd.Hp - g.height - pad_,
                            pad_, fd.Wp - g.width - pad_, fd.slack, xp);
            if (shared) {
              as[j] = dyw + pad_ * dd.Wp + pad_;
            } else {
              cpu::pad_planes(dyn, M, g.out_h, g.out_w, 0, 0, 0, fd.Wp - g.out_w, 0, dyw);  // zero junk columns
              as[j] = dyw;
            }
            bs[j] = xp;
            if (acc_b)
              for (std::size_t m = 0; m < M; ++m) acc_b[m] += cpu::kernels::sum(dyn + m * P, P);
            if (dx) {
              // backward-data: dx = conv(dY padded by q, flipped W^T), on the padded width, compacted.
              const std::size_t q = (g.kernel - 1) * g.dilation - pad_;
              T* dq = shared ? dyw : dyq;
              cpu::pad_planes(dyn, M, g.out_h, g.out_w, q, q, q, q, dd.slack, dq);
              const std::size_t Nw = g.height * dd.Wp;
              cpu::gemm_packed_offsets<T>(pa, g.channels, K / g.channels * M, dq, offd, Nw, dxw, Nw, false);
              cpu::compact_rows(dxw, g.channels, g.height, g.width, dd.Wp, dxd + n * g.image_size());
            }
          }
          // backward-filter: dW[M, (c, ky, kx)] += dY_n * shifted padded x_n, over the group.
          cpu::gemm_nt_offsets<T>(M, K, L, gs, as, shared ? dd.plane : L, bs, off, acc_w, K);
        }
      } else {
        T* col = pw ? nullptr : cpu::scratch<T>(cpu::Scratch::col, K * P);
        for (std::size_t n = n0; n < n1; ++n) {
          const T* xn = xd + n * g.image_size();
          const T* dyn = dyd + n * M * P;
          const T* src = xn;
          if (col) {
            cpu::im2col(g, xn, col);
            src = col;
          }
          // backward-filter: dW[M,K] += dY_n[M,P] * col^T[P,K]
          cpu::gemm<T>(false, true, M, K, P, T(1), dyn, P, src, P, T(1), acc_w, K);
          if (acc_b)
            for (std::size_t m = 0; m < M; ++m) acc_b[m] += cpu::kernels::sum(dyn + m * P, P);
          if (dxd) {
            T* dxn = dxd + n * g.image_size();
            // backward-data: dcol[K,P] = W^T[K,M] * dY_n[M,P], folded back onto the image.
            T* dcol = pw ? dxn : cpu::scratch<T>(cpu::Scratch::dcol, K * P);
            if (pa) cpu::gemm_packed<T>(pa, K, M, dyn, P, P, dcol, P, false);
            else cpu::gemm<T>(true, false, K, P, M, T(1), w, K, dyn, P, T(0), dcol, P);
            if (!pw) {
              std::fill(dxn, dxn + g.image_size(), T(0));
              cpu::col2im_add(g, dcol, dxn);
            }
          }
        }
      }
      if (T_ > 1) {
        // Parallel reduction of the per-thread accumulators, each thread a slice.
        cpu::barrier(T_);
        const auto [j0, j1] = cpu::split_range(acc_size, t, T_);
        for (int u = 1; u < T_; ++u) {
          const T* a = accs[u];
          const std::size_t mk = M * K, jm = std::min(j1, mk), jb = std::max(j0, mk);
          if (jm > j0) cpu::kernels::add_to(gw + j0, a + j0, jm - j0);
          if (j1 > jb) cpu::kernels::add_to(gb + (jb - mk), a + jb, j1 - jb);
        }
      }
    });
  }

  static constexpr int kMaxThreads = 256;

  std::string name_;
  Spec spec_;
  std::size_t pad_ = 0;
  Algorithm algorithm_ = Algorithm::automatic;
  ParamRef<T> weight_{}, bias_{};
  // Training cache: the input of the last forward().
  const Tensor4<T>* x_ = nullptr;
  const T* x_data_ = nullptr;
  Shape4 x_shape_{};
};

}  // namespace scoreood::nn
