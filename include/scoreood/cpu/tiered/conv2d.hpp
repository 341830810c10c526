/** @file conv2d.hpp
 *  @brief The CPU's 2-D convolutions (backend::ops<cpu>::conv2d_*): one plan
 *  per shape, one function per plan. nn::Conv2d holds the maths and the checks.
 *
 *  The batch is split across OpenMP threads, each running single-threaded
 *  GEMMs per image with the weight packed once per call. The plans:
 *    winograd        3x3, stride 1, padding 1 (float, AVX2 and AVX-512 tiers, >= 8
 *                    channels each way): F(4x4, 3x3) for all three passes
 *                    (cpu/tiered/winograd.hpp: 4x fewer multiplies; within ~1e-5
 *                    relative of the direct path). On the AVX2 tier also the forward of
 *                    dilated 3x3 convolutions with padding = dilation d whose phase planes
 *                    are wider than one tile: the d x d phase planes of an image are d*d
 *                    plain 3x3 padding-1 convolutions.
 *    padded_offsets  (float, AVX2 and AVX-512 tiers) the input read in place from a
 *                    zero-padded copy: on the padded width Wp every tap (ky, kx) is
 *                    one constant offset, so GEMM row (c, ky, kx) is the padded plane
 *                    c shifted (a table of row offsets, no unfolding); a strided
 *                    forward reads S x S phase planes the same way. Results on the
 *                    padded width are compacted.
 *                      forward          Y_n  = W * shifted(pad(x_n)) (+ bias)
 *                      backward-data    dx_n = flip(W)^T * shifted(pad(dY_n))
 *                      backward-filter  dW  += dY_n * shifted(pad(x_n))^T (NT kernel over groups of images)
 *    phase_planes    (AVX2 and AVX-512 tiers) the backward of strided (and padded 1x1;
 *                    on AVX2 not of strided 1x1) convolutions, and of stride-1 ones
 *                    Winograd does not run with >= 16 outputs and >= 8 inputs
 *                    (cpu/tiered/phase_backward.hpp: per-phase stride-1 products for dx,
 *                    an outer-product kernel for dW).
 *    im2col          everything else (double, the baseline tier, 1x1 stride 1, the
 *                    AVX2 tier's strided 1x1 backward): unfold one image (skipped for
 *                    1x1 stride 1), the packed kernel or Eigen (the NT kernel for the
 *                    AVX2 tier's filter gradient), col2im for dx.
 *  Batches smaller than the thread count run image by image. Scratch buffers are
 *  per-thread and shared by all layers, so steady-state calls do not allocate. */
#ifndef SCOREOOD_CPU_TIER
#error "a tier body: include <scoreood/cpu/kernels.hpp>, which compiles it once per ISA tier"
#endif

#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace scoreood::cpu::SCOREOOD_CPU_TIER::conv {

using backend::ConvParams;
using scoreood::cpu::conv::geometry;

/// How a pass is computed (see the file comment).
enum class Path { winograd, padded_offsets, phase_planes, im2col };
/// The paths of one convolution on one input shape: the forward and the two gradients.
struct Plan {
  Path forward = Path::im2col, backward = Path::im2col;
};

/// Winograd F(4x4, 3x3) for all three passes: 3x3, stride 1, padding 1, float with the native
/// kernel, >= 8 channels each way (fewer would leave most of the packed kernel's 8-row tiles empty).
template <class T>
bool winograd_applies(const ConvParams& p, const ConvGeometry& g) {
  return std::is_same_v<T, float> && winograd::available() && p.winograd && g.kernel == 3 && g.stride == 1 &&
         g.dilation == 1 && g.pad == 1 && p.in >= 8 && p.out >= 8;
}
/// The forward of a dilated 3x3 "same" convolution (padding = dilation d > 1) by Winograd on
/// its d x d phase planes (detail::PhaseSplit), on the AVX2 tier, where the planes are wider
/// than one 4x4 tile. Measured there (one core, NcsnRefineNet's 128-channel layers at 14x14,
/// batch 128, against padded offsets): dilation 2 (7x7 planes, 2 tiles per row) 2.3-2.6x
/// faster; dilation 4 (4x4 planes, one tile) within 5 %, so it is left out. The backward stays
/// on phase planes: with 2 tiles or fewer per row its row transforms idle most vector lanes and
/// it measured no faster. The AVX-512 tier's transforms hold 16 tiles per vector (twice as many
/// idle lanes); it keeps padded offsets until measured.
template <class T>
bool winograd_phases_applies(const ConvParams& p, const ConvGeometry& g) {
  return SCOREOOD_TIER_AVX2 && std::is_same_v<T, float> && winograd::available() && p.winograd && g.kernel == 3 &&
         g.stride == 1 && g.dilation > 1 && g.pad == g.dilation && (g.width + g.dilation - 1) / g.dilation > winograd::kM &&
         p.in >= 8 && p.out >= 8;
}
/// Stride-1 convolutions (not 1x1) run on zero-padded copies read in place
/// (native kernel only): the padded width Wp = W + 2p serves as the row
/// length of the output grid too, so tap (ky, kx) is one constant offset.
template <class T>
bool padded_applies(const ConvGeometry& g) {
  return packed_gemm_is_native<T>() && g.stride == 1 && !g.is_pointwise() && (g.kernel - 1) * g.dilation >= g.pad;
}

template <class T>
Plan plan(const ConvParams& p, const ConvGeometry& g) {
  Plan pl;
  const bool wino = winograd_applies<T>(p, g);
  // The forward reads any non-1x1 (or strided) convolution in place with the native kernel
  // and at least 8 outputs (the packed kernel's tile height).
  pl.forward = wino || winograd_phases_applies<T>(p, g) ? Path::winograd
               : packed_gemm_is_native<T>() && p.out >= 8 && !g.is_pointwise() ? Path::padded_offsets
                                                                                 : Path::im2col;
  // Strided (and padded 1x1) convolutions: phase planes, no im2col / col2im. Stride-1
  // convolutions that Winograd does not run (dilated, 5x5, ...) with 16 or more outputs too:
  // there the broadcast filter kernel beats the NT dot-product one (measured 1.24x / 1.46x
  // backward on NcsnRefineNet's dilation-2 / -4 128-channel layers). With fewer outputs
  // (conv_out, 1 channel) most of its vector lanes would idle; with 1 input channel
  // (SmallUNet's conv_in) it measured 1.19x slower.
  // 1x1 stride 1 needs no unfolding: the im2col path is already GEMMs on x and dY.
  const bool phase_stride1 = !wino && p.out >= 16 && p.in >= 8;
  // On AVX2 a strided 1x1 kernel stays unfolded (a subsampling copy and the NT kernel): its
  // phase-plane GEMM measured 1.1-1.3x slower there (SmallUNet's 1x1 stride-2 shortcuts).
  const bool phase_1x1 = !SCOREOOD_TIER_AVX2 || g.kernel > 1;
  if (phase_backward_available<T>() && (!padded_applies<T>(g) || phase_stride1) && !g.is_pointwise() && phase_1x1)
    pl.backward = Path::phase_planes;
  else
    pl.backward = wino ? Path::winograd : padded_applies<T>(g) ? Path::padded_offsets : Path::im2col;
  return pl;
}

namespace detail {

/// row[j] = src[2j + sh] where that is inside [0, W), else 0, for j < n: one
/// phase row of a stride-2 convolution's input, deinterleaved with vector
/// permutes (a scalar strided copy costs as much as the convolution's GEMM share).
inline void stride2_phase_row(const float* src, std::size_t W, std::ptrdiff_t sh, float* row, std::size_t n) {
  const std::ptrdiff_t Wi = std::ptrdiff_t(W);
  const std::size_t j0 = sh >= 0 ? 0 : std::min(n, std::size_t((-sh + 1) / 2));
  const std::ptrdiff_t last = Wi - 1 - sh;  // 2j <= last
  const std::size_t j1 = last < 0 ? j0 : std::clamp<std::size_t>(std::size_t(last / 2) + 1, j0, n);
  std::fill(row, row + j0, 0.f);
  std::fill(row + j1, row + n, 0.f);
#if SCOREOOD_TIER_AVX512
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  for (std::size_t j = j0; j < j1; j += 16) {
    const std::size_t cnt = std::min<std::size_t>(16, j1 - j);
    const std::size_t need = 2 * cnt - 1;  // inputs 2j + sh .. 2(j + cnt - 1) + sh
    const float* p = src + (std::ptrdiff_t(2 * j) + sh);
    const __m512 lo = _mm512_maskz_loadu_ps(tier::detail::lane_range(0, std::ptrdiff_t(std::min<std::size_t>(16, need))), p);
    const __m512 hi = need > 16 ? _mm512_maskz_loadu_ps(tier::detail::lane_range(0, std::ptrdiff_t(need - 16)), p + 16)
                                : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(row + j, tier::detail::lane_range(0, std::ptrdiff_t(cnt)),
                          _mm512_permutex2var_ps(lo, even, hi));
  }
#else
  for (std::size_t j = j0; j < j1; ++j) row[j] = src[std::ptrdiff_t(2 * j) + sh];
#endif
}

/// The weights transformed and packed for winograd::conv3x3 in the calling thread's
/// scratch: the forward's, or (data) the backward-data's W^T with the taps flipped.
inline const float* winograd_weights(const ConvParams& p, const float* w, bool data) {
  const std::size_t Co = p.out, Ci = p.in, rows = data ? Ci : Co, cols = data ? Co : Ci;
  float* U = scratch<float>(Scratch::wino_u, winograd::weights_size(rows, cols));
  float* tmp = scratch<float>(Scratch::wino_small, winograd::kPositions * rows * cols);
  if (data)
    winograd::transform_weights(
        [&](std::size_t i, std::size_t o, std::size_t ky, std::size_t kx) {
          return w[((o * Ci + i) * 3 + (2 - ky)) * 3 + (2 - kx)];
        },
        rows, cols, U, tmp);
  else
    winograd::transform_weights(
        [&](std::size_t o, std::size_t i, std::size_t ky, std::size_t kx) { return w[((o * Ci + i) * 3 + ky) * 3 + kx]; },
        rows, cols, U, tmp);
  return U;
}

struct Padded {
  std::size_t Hp, Wp, plane, slack, padded_size;
};
/// Forward / backward-filter layout: the input padded by p on every side.
inline Padded input_layout(const ConvGeometry& g) {
  Padded d;
  d.Hp = g.height + 2 * g.pad;
  d.Wp = g.width + 2 * g.pad;
  d.plane = d.Hp * d.Wp;
  d.slack = (g.kernel - 1) * g.dilation + 16;  // the last rows' junk columns read past the last plane
  d.padded_size = g.channels * d.plane + d.slack;
  return d;
}
/// Backward-data layout: dY padded by q = d(k-1) - p, read by the flipped kernel.
inline Padded gradient_layout(const ConvGeometry& g, std::size_t out_channels) {
  const std::size_t q = (g.kernel - 1) * g.dilation - g.pad;
  Padded d;
  d.Hp = g.out_h + 2 * q;
  d.Wp = g.out_w + 2 * q;
  d.plane = d.Hp * d.Wp;
  d.slack = (g.kernel - 1) * g.dilation + 16;
  d.padded_size = out_channels * d.plane + d.slack;
  return d;
}
/// off[(c * k + ky) * k + kx] = c * plane + ky*d*ld + kx*d, in the calling thread's scratch
/// (a separate slot per use so forward-style and data tables can coexist).
inline std::ptrdiff_t* tap_offsets(const ConvGeometry& g, std::size_t channels, std::size_t plane, std::size_t ld,
                                   int slot) {
  thread_local std::vector<std::ptrdiff_t> tables[2];
  auto& v = tables[slot];
  const std::size_t k = g.kernel, dl = g.dilation;
  v.resize(channels * k * k);
  for (std::size_t c = 0; c < channels; ++c)
    for (std::size_t ky = 0; ky < k; ++ky)
      for (std::size_t kx = 0; kx < k; ++kx)
        v[(c * k + ky) * k + kx] = std::ptrdiff_t(c * plane + ky * dl * ld + kx * dl);
  return v.data();
}
/// W^T with the taps flipped, packed: rows in, cols (out, ky, kx); the
/// backward-data GEMM of a stride-1 convolution.
template <class T>
const T* pack_weight_flipped(const ConvParams& p, const T* w) {
  const std::size_t Ci = p.in, Co = p.out, k = p.kernel, kk = k * k, cols = Co * kk;
  T* tmp = scratch<T>(Scratch::accum, Ci * cols);
  for (std::size_t c = 0; c < Ci; ++c)
    for (std::size_t m = 0; m < Co; ++m)
      for (std::size_t t = 0; t < kk; ++t) tmp[c * cols + m * kk + t] = w[(m * Ci + c) * kk + (kk - 1 - t)];
  T* buf = scratch<T>(Scratch::packed, packed_lhs_size<T>(Ci, cols));
  pack_lhs(tmp, Ci, cols, cols, 1, buf);
  return buf;
}
/// The weight (or its transpose, rows x cols of the GEMM) packed for the
/// native kernel in the calling thread's scratch; nullptr when Eigen's GEMM
/// is used instead (baseline tier / double, or fewer rows than one panel of
/// the kernel, whose tiles would mostly compute padding).
template <class T>
const T* pack_weight(const T* w, bool transpose, std::size_t rows, std::size_t cols) {
  if (!packed_gemm_is_native<T>() || rows < tier::detail::kPackMR) return nullptr;
  T* buf = scratch<T>(Scratch::packed, packed_lhs_size<T>(rows, cols));
  if (transpose) pack_lhs(w, rows, cols, 1, rows, buf);  // (k, m) = w[m * K + k]
  else pack_lhs(w, rows, cols, cols, 1, buf);
  return buf;
}

inline constexpr int kMaxThreads = 256;

/// A 3x3 convolution with dilation d and padding d on the d x d phase planes of its images:
/// output (py + d i, px + d j) reads inputs (py + d (i + ky - 1), px + d (j + kx - 1)) only,
/// so phase (py, px) is a plain 3x3 padding-1 convolution of the plane x[:, py::d, px::d].
/// Every plane is ceil(H/d) x ceil(W/d), zero past the image: the zeros a shorter phase
/// reads there are its padding, and the outputs there are dropped. Planes of an image are
/// d*d images (phase-major, then channels) for winograd::conv3x3.
struct PhaseSplit {
  std::size_t d, H, W, Hq, Wq;
  PhaseSplit(const ConvGeometry& g)
      : d(g.dilation), H(g.height), W(g.width), Hq((H + d - 1) / d), Wq((W + d - 1) / d) {}
  std::size_t planes_size(std::size_t channels) const { return d * d * channels * Hq * Wq; }
  winograd::Shape shape(std::size_t in, std::size_t out) const { return {in, out, Hq, Wq}; }

  /// x (C x H x W) -> out (d*d x C x Hq x Wq).
  void split(const float* x, std::size_t C, float* out) const {
    for (std::size_t py = 0; py < d; ++py)
      for (std::size_t px = 0; px < d; ++px)
        for (std::size_t c = 0; c < C; ++c) {
          const float* xc = x + c * H * W;
          for (std::size_t i = 0; i < Hq; ++i, out += Wq) {
            const std::size_t y = py + d * i;
            std::size_t j = 0;
            if (y < H)
              for (const float* row = xc + y * W; j < Wq && px + d * j < W; ++j) out[j] = row[px + d * j];
            std::fill(out + j, out + Wq, 0.f);
          }
        }
  }
  /// planes (d*d x C x Hq x Wq) -> y (C x H x W), + residual (y's shape) when not null.
  void merge(const float* planes, std::size_t C, const float* residual, float* y) const {
    for (std::size_t py = 0; py < d; ++py)
      for (std::size_t px = 0; px < d; ++px)
        for (std::size_t c = 0; c < C; ++c)
          for (std::size_t i = 0; i < Hq; ++i, planes += Wq) {
            const std::size_t yy = py + d * i;
            if (yy >= H) continue;
            const std::size_t o = (c * H + yy) * W + px;
            for (std::size_t j = 0; j < Wq && px + d * j < W; ++j)
              y[o + d * j] = planes[j] + (residual ? residual[o + d * j] : 0.f);
          }
  }
  /// Images per split: enough planes for one GEMM group of conv3x3 (its transforms and
  /// products run per group), at least one image.
  std::size_t chunk(const winograd::Shape& s) const {
    return std::max<std::size_t>(1, (winograd::group_size(s) + d * d - 1) / (d * d));
  }
};

}  // namespace detail

// ------------------------------------------------------------ forward, one function per path

/// Winograd F(4x4, 3x3) over the batch.
inline void forward_winograd(const ConvParams& p, const ConvGeometry& g, std::size_t N, const float* w,
                             const float* b, const float* xd, const float* rd, float* yd) {
  const std::size_t M = p.out, P = g.cols();
  const int nt = threads_for(N, double(M) * double(g.rows()) * double(P));
  const float* U = detail::winograd_weights(p, w, false);  // shared read-only by all threads
  if (g.dilation == 1) {
    const winograd::Shape ws{p.in, M, g.height, g.width};
    parallel_region(nt, [&](int t, int T_) {
      const auto [n0, n1] = split_range(N, t, T_);
      if (n1 > n0)
        winograd::conv3x3(U, ws, xd + n0 * g.image_size(), n1 - n0, b, rd ? rd + n0 * M * P : nullptr,
                          yd + n0 * M * P);
    });
    return;
  }
  // Dilated: each chunk of images split into phase planes, convolved, merged back.
  const detail::PhaseSplit ph(g);
  const winograd::Shape ws = ph.shape(p.in, M);
  const std::size_t cb = ph.chunk(ws), dd = ph.d * ph.d;
  parallel_region(nt, [&](int t, int T_) {
    const auto [n0, n1] = split_range(N, t, T_);
    if (n1 <= n0) return;
    float* xs = scratch<float>(Scratch::col, cb * ph.planes_size(p.in));
    float* ys = scratch<float>(Scratch::dcol, cb * ph.planes_size(M));
    for (std::size_t nb = n0; nb < n1; nb += cb) {
      const std::size_t c = std::min(cb, n1 - nb);
      for (std::size_t j = 0; j < c; ++j)
        ph.split(xd + (nb + j) * g.image_size(), p.in, xs + j * ph.planes_size(p.in));
      winograd::conv3x3(U, ws, xs, c * dd, b, nullptr, ys);
      for (std::size_t j = 0; j < c; ++j)
        ph.merge(ys + j * ph.planes_size(M), M, rd ? rd + (nb + j) * M * P : nullptr, yd + (nb + j) * M * P);
    }
  });
}

/// B read in place from a zero-padded copy of the image (no unfolding): for stride s the
/// padded image is split into s x s phase planes, and tap (ky, kx) is then one constant
/// offset into the phase it falls on. The output is computed on the phase width Ws and compacted.
template <class T>
void forward_padded_offsets(const ConvParams& p, const ConvGeometry& g, std::size_t N, const T* w, const T* b,
                            const T* xd, const T* rd, T* yd) {
  const std::size_t M = p.out, K = g.rows(), P = g.cols();
  const int nt = threads_for(N, double(M) * double(K) * double(P));
  const T* pa = detail::pack_weight(w, false, M, K);  // shared read-only by all threads
  const std::size_t S = g.stride, k = p.kernel, dl = p.dilation;
  const std::size_t Hp = g.height + 2 * p.pad, Wp = g.width + 2 * p.pad;
  const std::size_t Hs = (Hp + S - 1) / S, Ws = (Wp + S - 1) / S, phase = Hs * Ws, plane = S * S * phase;
  const std::size_t qmax = (k - 1) * dl / S;
  const std::size_t slack = (qmax + 1) * Ws + qmax + 16;  // the last rows' junk columns read past the end
  const std::size_t padded_size = g.channels * plane + slack;
  std::ptrdiff_t* off = detail::tap_offsets(g, g.channels, plane, Ws, 0);
  if (S > 1)
    for (std::size_t c = 0; c < g.channels; ++c)
      for (std::size_t ky = 0; ky < k; ++ky)
        for (std::size_t kx = 0; kx < k; ++kx) {
          const std::size_t ty = ky * dl, tx = kx * dl;
          off[(c * k + ky) * k + kx] =
              std::ptrdiff_t(c * plane + ((ty % S) * S + tx % S) * phase + (ty / S) * Ws + tx / S);
        }
  const std::size_t Nw = g.out_h * Ws;
  const std::size_t H = g.height, W = g.width, C = g.channels, pd = p.pad;
  parallel_region(nt, [&](int t, int T_) {
    const auto [n0, n1] = split_range(N, t, T_);
    T* xp = scratch<T>(Scratch::col, padded_size);
    T* yw = scratch<T>(Scratch::dcol, M * Nw);
    for (std::size_t n = n0; n < n1; ++n) {
      const T* xn = xd + n * g.image_size();
      if (S == 1) {
        pad_planes(xn, C, H, W, pd, pd, pd, pd, slack, xp);
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
                    detail::stride2_phase_row(src, W, std::ptrdiff_t(bb) - std::ptrdiff_t(pd), row, Ws);
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
      gemm_packed_offsets<T>(pa, M, K, xp, off, Nw, yw, Nw, b != nullptr);
      // The residual is added while the rows are in cache.
      compact_rows(yw, M, g.out_h, g.out_w, Ws, yd + n * M * P, rd ? rd + n * M * P : nullptr);
    }
  });
}

/// One image at a time unfolded (im2col; none for 1x1 stride 1), then the packed kernel or Eigen.
template <class T>
void forward_im2col(const ConvParams& p, const ConvGeometry& g, std::size_t N, const T* w, const T* b, const T* xd,
                    const T* rd, T* yd) {
  const std::size_t M = p.out, K = g.rows(), P = g.cols();
  const int nt = threads_for(N, double(M) * double(K) * double(P));
  const T* pa = detail::pack_weight(w, false, M, K);  // shared read-only by all threads
  parallel_region(nt, [&](int t, int T_) {
    const auto [n0, n1] = split_range(N, t, T_);
    T* col = g.is_pointwise() ? nullptr : scratch<T>(Scratch::col, K * P);
    for (std::size_t n = n0; n < n1; ++n) {
      const T* xn = xd + n * g.image_size();
      T* yn = yd + n * M * P;
      const T* src = xn;
      if (col) {
        im2col(g, xn, col);
        src = col;
      }
      // The bias initialises the output and the GEMM accumulates onto it (one pass less).
      if (b)
        for (std::size_t m = 0; m < M; ++m) std::fill(yn + m * P, yn + (m + 1) * P, b[m]);
      if (pa) gemm_packed<T>(pa, M, K, src, P, P, yn, P, b != nullptr);
      else gemm<T>(false, false, M, P, K, T(1), w, K, src, P, b ? T(1) : T(0), yn, P);
      if (rd) kernels::add_to(yn, rd + n * M * P, M * P);
    }
  });
}

/// y = conv(x) (+ bias) (+ residual), y already of the output's shape.
template <class T>
void forward(const ConvParams& p, const T* w, const T* b, const Tensor4<T>& x, Tensor4<T>& y,
             const Tensor4<T>* residual) {
  const Shape4 xs = shape_of(x);
  const ConvGeometry g = geometry(p, xs);
  const T* rd = residual ? residual->data() : nullptr;
  const T* bias = p.bias ? b : nullptr;
  switch (plan<T>(p, g).forward) {
    case Path::winograd:
      if constexpr (std::is_same_v<T, float>) forward_winograd(p, g, xs[0], w, bias, x.data(), rd, y.data());
      return;
    case Path::padded_offsets:
      forward_padded_offsets(p, g, xs[0], w, bias, x.data(), rd, y.data());
      return;
    default:
      forward_im2col(p, g, xs[0], w, bias, x.data(), rd, y.data());
  }
}

// ------------------------------------------------------------ backward

/// What every backward path works on: the forward's input, dY, and where gradients go.
template <class T>
struct BackwardArgs {
  const ConvParams& p;
  const ConvGeometry& g;
  const T* w;
  const T* x;
  const T* dy;
  T* dx;  ///< null: no input gradient
};

/// Winograd: dx as a 3x3 same convolution of dY with W^T flipped, dW in the Winograd domain.
inline void backward_winograd_images(const BackwardArgs<float>& a, const float* Ud, std::size_t n0, std::size_t n1,
                                     float* acc_w, float* acc_b) {
  if (n1 <= n0) return;
  namespace wg = winograd;
  const ConvGeometry& g = a.g;
  const std::size_t M = a.p.out, C = g.channels, K = g.rows(), P = g.cols();
  if (a.dx)
    wg::conv3x3(Ud, wg::Shape{M, C, g.height, g.width}, a.dy + n0 * M * P, n1 - n0, nullptr, nullptr,
                a.dx + n0 * g.image_size());
  // dW in the Winograd domain over this thread's images, then mapped back once.
  const std::size_t du_size = wg::kPositions * M * C;
  float* dU = scratch<float>(Scratch::wino_grad, du_size);
  std::fill(dU, dU + du_size, 0.f);
  wg::conv3x3_grad_u(wg::Shape{C, M, g.height, g.width}, a.x + n0 * g.image_size(), a.dy + n0 * M * P, n1 - n0, dU);
  wg::weight_grad(dU, M, C, [&](std::size_t o, std::size_t i, std::size_t ky, std::size_t kx, double v) {
    acc_w[o * K + (i * 3 + ky) * 3 + kx] += float(v);
  });
  if (acc_b)
    for (std::size_t n = n0; n < n1; ++n)
      for (std::size_t m = 0; m < M; ++m) acc_b[m] += kernels::sum(a.dy + n * M * P + m * P, P);
}

/// The padded-offsets backward's tables, shared by the threads.
template <class T>
struct PaddedBackward {
  const T* pa;                  ///< W^T with flipped taps, packed (backward-data)
  detail::Padded fd, dd;        ///< input and gradient layouts
  const std::ptrdiff_t* off;    ///< forward-style taps
  const std::ptrdiff_t* offd;   ///< backward-data taps
  std::size_t L, G;             ///< the padded-width output grid; images per backward-filter call
};

template <class T>
void backward_padded_images(const BackwardArgs<T>& a, const PaddedBackward<T>& t, std::size_t n0, std::size_t n1,
                            T* acc_w, T* acc_b) {
  const ConvGeometry& g = a.g;
  const std::size_t M = a.p.out, K = g.rows(), P = g.cols(), pd = a.p.pad, G = t.G, L = t.L;
  const detail::Padded& fd = t.fd;
  const detail::Padded& dd = t.dd;
  T* xps = scratch<T>(Scratch::col, G * fd.padded_size);
  // With "same" padding (q == p) the backward-data copy of dY, padded by q on the
  // forward's padded width, is also the backward-filter's A: its rows read from
  // (q, q) on are dY with zero junk columns. One copy of dY per image then, kept per group.
  const bool shared = a.dx && dd.Wp == fd.Wp && dd.Hp == g.out_h + 2 * pd;
  const std::size_t a_stride = shared ? dd.padded_size : M * L;
  T* dys = scratch<T>(Scratch::dcol, G * a_stride);
  T* dyq = a.dx && !shared ? scratch<T>(Scratch::temp, dd.padded_size) : nullptr;
  T* dxw = a.dx ? scratch<T>(Scratch::wide, g.channels * g.height * dd.Wp) : nullptr;
  const T* as[kNtMaxGroup];
  const T* bs[kNtMaxGroup];
  for (std::size_t nb = n0; nb < n1; nb += G) {
    const std::size_t gs = std::min(G, n1 - nb);
    for (std::size_t j = 0; j < gs; ++j) {
      const std::size_t n = nb + j;
      const T* dyn = a.dy + n * M * P;
      T* xp = xps + j * fd.padded_size;
      T* dyw = dys + j * a_stride;
      pad_planes(a.x + n * g.image_size(), g.channels, g.height, g.width, pd, fd.Hp - g.height - pd, pd,
                 fd.Wp - g.width - pd, fd.slack, xp);
      if (shared) {
        as[j] = dyw + pd * dd.Wp + pd;
      } else {
        pad_planes(dyn, M, g.out_h, g.out_w, 0, 0, 0, fd.Wp - g.out_w, 0, dyw);  // zero junk columns
        as[j] = dyw;
      }
      bs[j] = xp;
      if (acc_b)
        for (std::size_t m = 0; m < M; ++m) acc_b[m] += kernels::sum(dyn + m * P, P);
      if (a.dx) {
        // backward-data: dx = conv(dY padded by q, flipped W^T), on the padded width, compacted.
        const std::size_t q = (g.kernel - 1) * g.dilation - pd;
        T* dq = shared ? dyw : dyq;
        pad_planes(dyn, M, g.out_h, g.out_w, q, q, q, q, dd.slack, dq);
        const std::size_t Nw = g.height * dd.Wp;
        gemm_packed_offsets<T>(t.pa, g.channels, K / g.channels * M, dq, t.offd, Nw, dxw, Nw, false);
        compact_rows(dxw, g.channels, g.height, g.width, dd.Wp, a.dx + n * g.image_size());
      }
    }
    // backward-filter: dW[M, (c, ky, kx)] += dY_n * shifted padded x_n, over the group.
    gemm_nt_offsets<T>(M, K, L, gs, as, shared ? dd.plane : L, bs, t.off, acc_w, K);
  }
}

/// Unfolded: dW += dY col^T, dcol = W^T dY folded back by col2im.
template <class T>
void backward_im2col_images(const BackwardArgs<T>& a, const T* pa, std::size_t n0, std::size_t n1, T* acc_w,
                            T* acc_b) {
  const ConvGeometry& g = a.g;
  const std::size_t M = a.p.out, K = g.rows(), P = g.cols();
  const bool pw = g.is_pointwise();
  T* col = pw ? nullptr : scratch<T>(Scratch::col, K * P);
  for (std::size_t n = n0; n < n1; ++n) {
    const T* xn = a.x + n * g.image_size();
    const T* dyn = a.dy + n * M * P;
    const T* src = xn;
    if (col) {
      im2col(g, xn, col);
      src = col;
    }
    // backward-filter: dW[M,K] += dY_n[M,P] * col^T[P,K]
    // On the AVX2 tier the tier's NT kernel: Eigen's GEMM is compiled for the build's flags
    // (SSE only without -march). The AVX-512 tier runs strided convolutions on phase planes.
    if (SCOREOOD_TIER_AVX2 && packed_gemm_is_native<T>()) gemm_nt_strided<T>(M, K, P, dyn, P, src, P, acc_w, K);
    else gemm<T>(false, true, M, K, P, T(1), dyn, P, src, P, T(1), acc_w, K);
    if (acc_b)
      for (std::size_t m = 0; m < M; ++m) acc_b[m] += kernels::sum(dyn + m * P, P);
    if (a.dx) {
      T* dxn = a.dx + n * g.image_size();
      // backward-data: dcol[K,P] = W^T[K,M] * dY_n[M,P], folded back onto the image.
      T* dcol = pw ? dxn : scratch<T>(Scratch::dcol, K * P);
      if (pa) gemm_packed<T>(pa, K, M, dyn, P, P, dcol, P, false);
      else gemm<T>(true, false, K, P, M, T(1), a.w, K, dyn, P, T(0), dcol, P);
      if (!pw) {
        std::fill(dxn, dxn + g.image_size(), T(0));
        col2im_add(g, dcol, dxn);
      }
    }
  }
}

/// dx = dL/dx (already of x's shape; null: not wanted); gw += dL/dW, gb += dL/db (gb null without bias).
template <class T>
void backward(const ConvParams& p, const T* w, const Tensor4<T>& x, const Tensor4<T>& dy, Tensor4<T>* dx, T* gw,
              T* gb) {
  const Shape4 xs = shape_of(x);
  const ConvGeometry g = geometry(p, xs);
  const Plan pl = plan<T>(p, g);
  if (!p.bias) gb = nullptr;
  T* dxd = dx ? dx->data() : nullptr;
  if constexpr (phase_backward_available<T>()) {
    if (pl.backward == Path::phase_planes) {
      conv_backward_phases(g, xs[0], p.out, w, x.data(), dy.data(), dxd, gw, gb);
      return;
    }
  }
  const std::size_t N = xs[0], M = p.out, K = g.rows(), P = g.cols();
  const std::size_t acc_size = M * K + (gb ? M : 0);
  const BackwardArgs<T> a{p, g, w, x.data(), dy.data(), dxd};
  const int nt = std::min(detail::kMaxThreads, threads_for(N, double(M) * double(K) * double(P) * (dx ? 2 : 1)));
  T* accs[detail::kMaxThreads] = {};
  const Path path = pl.backward;
  const float* Ud = nullptr;  // backward-data: a 3x3 same convolution of dY with W^T flipped
  if constexpr (std::is_same_v<T, float>)
    if (path == Path::winograd && dx) Ud = detail::winograd_weights(p, w, true);
  PaddedBackward<T> pb{};
  const T* pa = nullptr;  // W^T for backward-data of the unfolded path
  if (path == Path::padded_offsets) {
    // W^T with flipped taps (a convolution of dY).
    pb.pa = dx ? detail::pack_weight_flipped(p, w) : nullptr;
    pb.fd = detail::input_layout(g);
    pb.dd = dx ? detail::gradient_layout(g, M) : detail::Padded{};
    pb.off = detail::tap_offsets(g, g.channels, pb.fd.plane, pb.fd.Wp, 0);
    pb.offd = dx ? detail::tap_offsets(g, M, pb.dd.plane, pb.dd.Wp, 1) : nullptr;
    pb.L = g.out_h * pb.fd.Wp;  // the padded-width output grid of the forward
    // Images per backward-filter call: their padded inputs and gradients stay in L2.
    // Also few enough that one 4-row tile of dY over the group (4 * G * L values, 16 KB at most)
    // stays in L1 while the kernel sweeps the K columns; else it streams from L2 once per
    // column tile (measured: conv backward 9 % faster at 28x28x32 and 14x14x64, batch 128).
    pb.G = std::clamp<std::size_t>(std::min((std::size_t(1) << 18) / (pb.fd.padded_size + M * pb.L),
                                            std::size_t(1024) / std::max<std::size_t>(pb.L, 1)),
                                   1, kNtMaxGroup);
  } else if (path == Path::im2col && dx) {
    pa = detail::pack_weight(w, true, K, M);
  }
  parallel_region(nt, [&](int t, int T_) {
    const auto [n0, n1] = split_range(N, t, T_);
    // One thread accumulates straight into the store; the others into scratch.
    T* acc_w = gw;
    T* acc_b = gb;
    if (t > 0) {
      T* acc = scratch<T>(Scratch::accum, acc_size);
      std::fill(acc, acc + acc_size, T(0));
      accs[t] = acc;
      acc_w = acc;
      acc_b = gb ? acc + M * K : nullptr;
    }
    if (path == Path::winograd) {
      if constexpr (std::is_same_v<T, float>) backward_winograd_images(a, Ud, n0, n1, acc_w, acc_b);
    } else if (path == Path::padded_offsets) {
      backward_padded_images(a, pb, n0, n1, acc_w, acc_b);
    } else {
      backward_im2col_images(a, pa, n0, n1, acc_w, acc_b);
    }
    if (T_ > 1) {
      // Parallel reduction of the per-thread accumulators, each thread a slice.
      barrier(T_);
      const auto [j0, j1] = split_range(acc_size, t, T_);
      for (int u = 1; u < T_; ++u) {
        const T* acc = accs[u];
        const std::size_t mk = M * K, jm = std::min(j1, mk), jb = std::max(j0, mk);
        if (jm > j0) kernels::add_to(gw + j0, acc + j0, jm - j0);
        if (j1 > jb) kernels::add_to(gb + (jb - mk), acc + jb, j1 - jb);
      }
    }
  });
}

}  // namespace scoreood::cpu::SCOREOOD_CPU_TIER::conv
