/** @file backend.cuh
 *  @brief The CUDA backend of the seam (core/backend.hpp): traits<backend::cuda>
 *  and ops<backend::cuda>, compiled by nvcc only.
 *
 *    tensor<T>  = gpu::DeviceTensor4<T>  (NCHW in device memory, grow-only resize)
 *    storage<T> = gpu::DeviceBuffer<T>   (flat parameters, gradients, optimiser moments)
 *    context    = gpu::Context           (stream, cuDNN handle + plan cache, scratch, pinned staging)
 *
 *  Every op has the semantics of its CPU twin (cpu/backend.hpp, and the layer
 *  files under nn/ it was taken from) to float rounding: the convolutions are
 *  cuDNN's with FMA-only (no TF32) algorithms, everything else hand-written
 *  kernels (cuda/kernels/) whose reductions accumulate in double where the CPU
 *  code does. Ops run asynchronously on the context's stream; those returning a
 *  value to the host (dsm_loss, sum_squares, to_host, the feature reductions)
 *  wait for it. Host spans (noise levels, sigmas) cross through the context's
 *  pinned staging, so the caller may reuse them as soon as a call returns.
 *
 *  Shape conventions (as the CPU ops): forward ops resize their output; the
 *  resampling ops whose output size is not implied by their input (nearest and
 *  bilinear forward) take it from the output tensor as given; backward ops of
 *  pooling and resampling take the input shape from dx as given (pooling infers
 *  it when dx is empty). Outputs must be tensors distinct from their inputs
 *  except where an op says it may run in place (elu, affine, norm_forward).
 *
 *  Besides concepts::BackendOps: the two batch builders that move pixels under
 *  an augmentation group (dsm_inputs behind score::make_dsm_batch, noisy_copies
 *  behind score::detail::network_passes) for the groups that gpu::device_group
 *  knows (Identity, Rot4, Dihedral8; any other fails to compile with a
 *  static_assert naming it), and storage upload/download. */
#pragma once
#include <scoreood/augment/dihedral8.hpp>
#include <scoreood/augment/identity.hpp>
#include <scoreood/augment/rot4.hpp>
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cuda/context.cuh>
#include <scoreood/cuda/conv.cuh>
#include <scoreood/cuda/kernels/dsm.cuh>
#include <scoreood/cuda/kernels/elementwise.cuh>
#include <scoreood/cuda/kernels/elu.cuh>
#include <scoreood/cuda/kernels/group.cuh>
#include <scoreood/cuda/kernels/norm_pp.cuh>
#include <scoreood/cuda/kernels/norms.cuh>
#include <scoreood/cuda/kernels/optim.cuh>
#include <scoreood/cuda/kernels/pool.cuh>
#include <scoreood/cuda/kernels/upsample.cuh>
#include <scoreood/cuda/tensor.cuh>

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace scoreood::gpu {

/// How an augmentation group acts on the device: element k of the group is D4 element
/// code(k) of kernels/group.cuh (augment/geometry.hpp's numbering). Specialise it, with
/// `supported = true`, for another group whose elements are symmetries of the square.
template <class G>
struct device_group {
  static constexpr bool supported = false;
};
template <>
struct device_group<augment::Identity> {
  static constexpr bool supported = true;
  static int code(std::size_t) { return 0; }
};
template <>
struct device_group<augment::Rot4> {
  static constexpr bool supported = true;
  static int code(std::size_t k) { return int(k); }
};
template <>
struct device_group<augment::Dihedral8> {
  static constexpr bool supported = true;
  static int code(std::size_t k) { return int(k); }
};
template <class G>
inline constexpr bool has_device_action = device_group<G>::supported;

}  // namespace scoreood::gpu

namespace scoreood::backend {

template <>
struct traits<cuda> {
  template <class T>
  using tensor = gpu::DeviceTensor4<T>;
  template <class T>
  using storage = gpu::DeviceBuffer<T>;
  using context = gpu::Context;
};

template <>
struct ops<cuda> {
  using Context = gpu::Context;
  using Tensor = gpu::DeviceTensor4<float>;

  /// What norm_forward keeps for norm_backward: the per-plane statistics and the input they
  /// belong to (a reference to the caller's tensor, or a copy of it when not by reference).
  template <class T>
  struct norm_cache {
    gpu::DeviceBuffer<double> mu, rstd;          ///< per plane (n, c)
    gpu::DeviceTensor4<T> copy;                  ///< the input, when not kept by reference
    const gpu::DeviceTensor4<T>* ref = nullptr;  ///< the input, when kept by reference
    const T* ref_data = nullptr;
    Shape4 x_shape{};
    bool filled = false;

    bool valid() const { return filled; }
    /// The forward input's shape.
    const Shape4& shape() const { return x_shape; }
    /// Error when a referenced input was resized or freed since the forward (`name`: the layer).
    void check_input(const std::string& name) const {
      if (ref && (ref->data() != ref_data || ref->shape() != x_shape))
        throw Error(name + ": the forward input was resized or freed before backward()");
    }
    /// The forward's input on the device (checked).
    const T* input(const std::string& name) const {
      if (!filled) throw Error(name + ": backward called before a training forward");
      check_input(name);
      return ref ? ref_data : copy.data();
    }
  };

  // ------------------------------------------------------------------ tensors

  static void resize(Tensor& t, Shape4 s) { t.resize(s); }

  static void zeros(Context& ctx, Tensor& y, Shape4 s) {
    y.resize(s);
    if (y.size()) SCOREOOD_CUDA_CHECK(cudaMemsetAsync(y.data(), 0, y.bytes(), ctx.stream()));
  }

  /// y = x (y resized).
  static void copy(Context& ctx, const Tensor& x, Tensor& y) {
    if (&x == &y) return;
    y.resize(x.shape());
    if (x.size())
      SCOREOOD_CUDA_CHECK(cudaMemcpyAsync(y.data(), x.data(), x.bytes(), cudaMemcpyDeviceToDevice, ctx.stream()));
  }

  /// y += x (same shapes).
  static void add_inplace(Context& ctx, Tensor& y, const Tensor& x) {
    same_shape("add_inplace", y.shape(), x.shape());
    gpu::add(y.data(), x.data(), y.data(), y.size(), ctx.stream());
  }

  /// y = a x + b (y resized; may be x).
  static void affine(Context& ctx, const Tensor& x, Tensor& y, float a, float b) {
    if (&x != &y) y.resize(x.shape());
    gpu::affine(x.data(), y.data(), x.size(), a, b, ctx.stream());
  }

  /// An uploaded copy of host images in y (returned). Waits for the copy: the tensor may then be
  /// read from any context (a workspace's as well as the network's), and the host images change.
  static const Tensor& to_backend(Context& ctx, const Images& host, Tensor& y) {
    y.resize(shape_of(host));
    if (y.size())
      SCOREOOD_CUDA_CHECK(
          cudaMemcpyAsync(y.data(), host.data(), y.bytes(), cudaMemcpyHostToDevice, ctx.stream()));
    ctx.synchronize();
    return y;
  }

  /// x downloaded into host (resized), after everything queued before; returns host.
  static const Images& to_host(Context& ctx, const Tensor& x, Images& host) {
    if (shape_of(host) != x.shape()) host.resize(x.shape());
    if (x.size())
      SCOREOOD_CUDA_CHECK(cudaMemcpyAsync(host.data(), x.data(), x.bytes(), cudaMemcpyDeviceToHost, ctx.stream()));
    ctx.synchronize();
    return host;
  }

  // ------------------------------------------------------------------ storage (not in BackendOps)

  /// dst = host (dst resized to host.size()); the host array may change once this returns.
  template <class T>
  static void upload(Context& ctx, std::span<const T> host, gpu::DeviceBuffer<T>& dst) {
    dst.resize_discard(host.size());
    if (!host.empty())
      SCOREOOD_CUDA_CHECK(
          cudaMemcpyAsync(dst.data(), host.data(), host.size_bytes(), cudaMemcpyHostToDevice, ctx.stream()));
    ctx.synchronize();  // pageable source: keep the caller free to change it at once
  }
  /// host = src (sizes must match), after everything queued before.
  template <class T>
  static void download(Context& ctx, const gpu::DeviceBuffer<T>& src, std::span<T> host) {
    if (host.size() != src.size())
      throw ShapeError("ops<cuda>::download: " + std::to_string(src.size()) + " device values into a span of " +
                       std::to_string(host.size()));
    if (!host.empty())
      SCOREOOD_CUDA_CHECK(
          cudaMemcpyAsync(host.data(), src.data(), host.size_bytes(), cudaMemcpyDeviceToHost, ctx.stream()));
    ctx.synchronize();
  }
  static void synchronize(Context& ctx) { ctx.synchronize(); }

  // ------------------------------------------------------------------ layers

  /// y = conv(x, w) + bias (bias null when !cp.bias) + residual (nullable; y's shape, not y).
  static void conv2d_forward(Context& ctx, const ConvParams& cp, const float* w, const float* b, const Tensor& x,
                             Tensor& y, const Tensor* residual) {
    if (&x == &y) throw Error("ops<cuda>::conv2d_forward: input and output must be different tensors");
    const gpu::ConvShape s = conv_shape(cp, x.shape(), "conv2d_forward");
    const Shape4 ys{x.shape()[0], cp.out, std::size_t(s.out_height()), std::size_t(s.out_width())};
    if (residual && (residual == &y || residual->shape() != ys))
      throw ShapeError("ops<cuda>::conv2d_forward: the residual must be a separate tensor of the output's shape " +
                       to_string(ys) + (residual == &y ? "" : ", got " + to_string(residual->shape())));
    y.resize(ys);
    const float* bias = cp.bias ? b : nullptr;
    if (!residual) {
      ctx.convolution().forward(s, x.data(), w, bias, y.data());
      return;
    }
    ctx.convolution().forward(s, x.data(), w, nullptr, y.data());
    gpu::bias_residual(y.data(), bias, residual->data(), s.batch, s.out_channels,
                       std::size_t(s.out_height()) * s.out_width(), ctx.stream());
  }

  /// From the forward's input x: dx = dL/dx (resized, overwritten; skipped when dx is null),
  /// dw += dL/dw, db += dL/db (when cp.bias).
  static void conv2d_backward(Context& ctx, const ConvParams& cp, const float* w, const Tensor& x, const Tensor& dy,
                              Tensor* dx, float* dw, float* db) {
    const gpu::ConvShape s = conv_shape(cp, x.shape(), "conv2d_backward");
    const Shape4 ys{x.shape()[0], cp.out, std::size_t(s.out_height()), std::size_t(s.out_width())};
    if (dy.shape() != ys)
      throw ShapeError("ops<cuda>::conv2d_backward: output gradient " + to_string(dy.shape()) + ", expected " +
                       to_string(ys));
    if (dx == &x || dx == &dy) throw Error("ops<cuda>::conv2d_backward: dx must be a separate tensor");
    auto& conv = ctx.convolution();
    if (dx) {
      dx->resize(x.shape());
      conv.backward_data(s, w, dy.data(), dx->data());
    }
    conv.backward_filter(s, x.data(), dy.data(), dw, /*accumulate=*/true);
    if (cp.bias && db) conv.backward_bias(s, dy.data(), db, /*accumulate=*/true);
  }

  /// Instance norm++ (nn/layers/instance_norm.hpp): y = IN++(x) per sample with the rows of
  /// np, then elu(y) when elu_alpha is not null (alpha = *elu_alpha, a host value). y may be x.
  /// With a cache (training) the statistics are kept, and the input: by reference when
  /// keep_input_reference (x must then stay alive and unchanged until norm_backward), else a
  /// device copy of it. Without a cache nothing is kept.
  static void norm_forward(Context& ctx, const NormParams<float>& np, const Tensor& x, Tensor& y,
                           norm_cache<float>* cache, const float* elu_alpha, bool keep_input_reference) {
    const gpu::NormShape s = norm_shape(np, x.shape(), "norm_forward");
    if (cache && keep_input_reference && &x == &y)
      throw Error("ops<cuda>::norm_forward: an input kept by reference cannot be overwritten by the output");
    const gpu::NormRowsDevice<float> rows = norm_rows(ctx, np, s);
    double* mu;
    double* rstd;
    if (cache) {
      cache->mu.reserve_discard(s.planes());
      cache->rstd.reserve_discard(s.planes());
      mu = cache->mu.data();
      rstd = cache->rstd.data();
      if (keep_input_reference) {
        cache->copy.clear();
        cache->ref = &x;
        cache->ref_data = x.data();
      } else {
        copy(ctx, x, cache->copy);  // before y, which may be x, is written
        cache->ref = nullptr;
        cache->ref_data = nullptr;
      }
      cache->x_shape = x.shape();
      cache->filled = true;
    } else {
      mu = ctx.scratch<double>(gpu::Scratch::stats, 2 * s.planes());
      rstd = mu + s.planes();
    }
    if (&x != &y) y.resize(x.shape());
    float* coeff = ctx.scratch<float>(gpu::Scratch::coeffs, 4 * s.planes());
    gpu::norm_pp_forward(x.data(), y.data(), rows, s, mu, rstd, coeff, elu_alpha != nullptr,
                         elu_alpha ? *elu_alpha : 1.0f, ctx.stream());
  }

  /// Backward of norm_forward (with its cache): dx = dL/dx (resized; distinct from dy), and the
  /// parameter gradients ADDED into g (null members skipped). elu_y: the fused ELU's output
  /// (device; null when the forward had no ELU), dy then being the gradient of the ELU's
  /// output; residual (nullable): a gradient of x's shape added to dx.
  static void norm_backward(Context& ctx, const NormParams<float>& np, const norm_cache<float>& cache,
                            const Tensor& dy, Tensor& dx, const float* elu_y, float elu_alpha, const Tensor* residual,
                            const NormGrads<float>& g) {
    const float* xd = cache.input("ops<cuda>::norm_backward");
    const gpu::NormShape s = norm_shape(np, cache.shape(), "norm_backward");
    if (dy.shape() != cache.shape())
      throw ShapeError("ops<cuda>::norm_backward: gradient shape " + to_string(dy.shape()) +
                       " differs from the forward output " + to_string(cache.shape()));
    if (&dx == &dy) throw Error("ops<cuda>::norm_backward: dx must be distinct from dy");
    if (residual && (residual == &dx || residual->shape() != cache.shape()))
      throw ShapeError("ops<cuda>::norm_backward: the residual gradient must be a separate tensor of the input's "
                       "shape " + to_string(cache.shape()));
    const gpu::NormRowsDevice<float> rows = norm_rows(ctx, np, s);
    dx.resize(cache.shape());
    double* sums = ctx.scratch<double>(gpu::Scratch::sums, 2 * s.planes());
    double* z = ctx.scratch<double>(gpu::Scratch::stats, s.planes());
    float* coeff = ctx.scratch<float>(gpu::Scratch::coeffs, 3 * s.planes());
    gpu::norm_pp_backward(xd, dy.data(), elu_y, elu_alpha, residual ? residual->data() : nullptr, dx.data(), rows,
                          gpu::NormGradsDevice<float>{g.gamma, g.alpha, g.beta}, s, cache.mu.data(),
                          cache.rstd.data(), sums, z, coeff, ctx.stream());
  }

  /// y = elu(x) (y resized; may be x).
  static void elu_forward(Context& ctx, const Tensor& x, Tensor& y, float alpha) {
    if (&x != &y) y.resize(x.shape());
    gpu::elu_forward(x.data(), y.data(), x.size(), alpha, ctx.stream());
  }
  /// dx = dy * elu'(x) from the forward's output y (device, dy's shape); dx may be dy.
  static void elu_backward(Context& ctx, const float* y, const Tensor& dy, Tensor& dx, float alpha) {
    if (&dx != &dy) dx.resize(dy.shape());
    gpu::elu_backward_from_output(y, dy.data(), dx.data(), dy.size(), alpha, ctx.stream());
  }

  /// PyTorch's AvgPool2d (stride 0: the kernel); y resized.
  static void avg_pool_forward(Context& ctx, const PoolParams& pp, const Tensor& x, Tensor& y) {
    if (&x == &y) throw Error("ops<cuda>::avg_pool_forward: input and output must be different tensors");
    const gpu::PoolShape s = pool_shape(pp, x.shape(), "avg_pool_forward");
    y.resize({x.shape()[0], x.shape()[1], std::size_t(s.out_height()), std::size_t(s.out_width())});
    gpu::avg_pool_forward(x.data(), y.data(), s, ctx.stream());
  }
  /// dx = the adjoint of avg_pool applied to dy; dx's shape is the input's (inferred when dx is empty).
  static void avg_pool_backward(Context& ctx, const PoolParams& pp, const Tensor& dy, Tensor& dx) {
    if (&dx == &dy) throw Error("ops<cuda>::avg_pool_backward: dx and dy must be different tensors");
    const std::size_t st = pp.stride ? pp.stride : pp.kernel;
    if (dx.empty()) {
      const auto in = [&](std::size_t o) { return (o - 1) * st + pp.kernel - 2 * pp.pad; };
      if (dy.shape()[2] == 0 || dy.shape()[3] == 0 || (dy.shape()[2] - 1) * st + pp.kernel < 2 * pp.pad + 1)
        throw ShapeError("ops<cuda>::avg_pool_backward: cannot infer the input of " + to_string(dy.shape()));
      dx.resize({dy.shape()[0], dy.shape()[1], in(dy.shape()[2]), in(dy.shape()[3])});
    }
    const gpu::PoolShape s = pool_shape(pp, dx.shape(), "avg_pool_backward");
    const Shape4 ys{dx.shape()[0], dx.shape()[1], std::size_t(s.out_height()), std::size_t(s.out_width())};
    if (dy.shape() != ys)
      throw ShapeError("ops<cuda>::avg_pool_backward: output gradient " + to_string(dy.shape()) + " for input " +
                       to_string(dx.shape()) + ", expected " + to_string(ys));
    gpu::avg_pool_backward(dy.data(), dx.data(), s, false, ctx.stream());
  }

  /// NCSN's 2x2 mean pool (floor of odd sizes, as nn::MeanPool2x2).
  static void mean_pool2_forward(Context& ctx, const Tensor& x, Tensor& y) {
    avg_pool_forward(ctx, PoolParams{2, 2, 0, true}, x, y);
  }
  /// dx's shape is the input's (2x dy's when dx is empty).
  static void mean_pool2_backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    avg_pool_backward(ctx, PoolParams{2, 2, 0, true}, dy, dx);
  }

  /// y = nearest resize of x to y's own (height, width) (+ residual, y's shape, not y).
  static void nearest_forward(Context& ctx, const Tensor& x, Tensor& y, const Tensor* residual) {
    const gpu::ResizeShape s = resize_shape(x.shape(), y, &x == &y, "nearest_forward");
    if (residual) {
      if (residual == &y || residual->shape() != y.shape())
        throw ShapeError("ops<cuda>::nearest_forward: the residual must be a separate tensor of the output's shape " +
                         to_string(y.shape()));
      gpu::nearest_forward_add(x.data(), residual->data(), y.data(), s, ctx.stream());
    } else {
      gpu::nearest_forward(x.data(), y.data(), s, ctx.stream());
    }
  }
  /// dx (the input's shape, as given) = the adjoint of nearest applied to dy.
  static void nearest_backward(Context& ctx, const Tensor& dy, Tensor& dx) {
    const gpu::ResizeShape s = resize_shape(dx.shape(), dy, &dx == &dy, "nearest_backward");
    gpu::nearest_backward(dy.data(), dx.data(), s, false, ctx.stream());
  }
  /// y = bilinear resize of x to y's own (height, width).
  static void bilinear_forward(Context& ctx, const Tensor& x, Tensor& y, bool align_corners) {
    const gpu::ResizeShape s = resize_shape(x.shape(), y, &x == &y, "bilinear_forward");
    gpu::bilinear_forward(x.data(), y.data(), s, align_corners, ctx.stream());
  }
  /// dx (the input's shape, as given) = the adjoint of bilinear applied to dy.
  static void bilinear_backward(Context& ctx, const Tensor& dy, Tensor& dx, bool align_corners) {
    const gpu::ResizeShape s = resize_shape(dx.shape(), dy, &dx == &dy, "bilinear_backward");
    gpu::bilinear_backward(dy.data(), dx.data(), s, align_corners, false, ctx.stream());
  }

  // ------------------------------------------------------------------ training

  /// Mean over the batch of 0.5 || sigma_b s_b + z_b ||^2 (summed in double); grad (resized)
  /// = dLoss/ds. sigma: one per sample, host memory. Waits for the result.
  static double dsm_loss(Context& ctx, const Tensor& s, const Tensor& z, std::span<const float> sigma, Tensor& grad) {
    if (s.shape() != z.shape())
      throw ShapeError("dsm_loss: score " + to_string(s.shape()) + " vs noise " + to_string(z.shape()));
    const std::size_t B = s.shape()[0], P = B ? s.size() / B : 0;
    if (sigma.size() != B) throw ShapeError("dsm_loss: one sigma per sample needed");
    if (&grad == &s || &grad == &z) throw Error("dsm_loss: the gradient must be a separate tensor");
    grad.resize(s.shape());
    if (B == 0) return std::nan("");
    float* sig = ctx.scratch<float>(gpu::Scratch::sigmas, B);
    ctx.upload(sigma, sig);
    double* sq = ctx.scratch<double>(gpu::Scratch::partials, B);
    gpu::dsm_loss_noise(s.data(), z.data(), sig, int(B), P, sq, grad.data(), ctx.stream());
    std::vector<double> h(B);
    ctx.download(static_cast<const double*>(sq), std::span<double>(h));
    double total = 0;
    for (double v : h) total += 0.5 * v;
    return total / double(B);
  }

  /// sum x[i]^2 over n device values, in double (the gradient norm squared). Waits for it.
  static double sum_squares(Context& ctx, const float* x, std::size_t n) {
    double* partial = ctx.scratch<double>(gpu::Scratch::partials, gpu::kSumSquaresBlocks + 1);
    gpu::sum_squares(x, n, partial, partial + gpu::kSumSquaresBlocks, ctx.stream());
    double out = 0;
    ctx.download(static_cast<const double*>(partial + gpu::kSumSquaresBlocks), std::span<double>(&out, 1));
    return out;
  }

  static void scale(Context& ctx, float* x, std::size_t n, float a) { gpu::scale(x, n, a, ctx.stream()); }
  static void fill(Context& ctx, float* x, std::size_t n, float a) { gpu::fill(x, n, a, ctx.stream()); }
  static void copy_n(Context& ctx, const float* src, float* dst, std::size_t n) {
    if (n && src != dst)
      SCOREOOD_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, ctx.stream()));
  }

  /// One Adam step over n parameters (nn::Adam's arithmetic; bias corrections in `a`).
  static void adam_step(Context& ctx, float* p, const float* g, float* m, float* v, std::size_t n,
                        const AdamStep& a) {
    gpu::AdamCoefficients c;
    c.beta1 = a.beta1;
    c.beta2 = a.beta2;
    c.eps = a.eps;
    c.weight_decay = a.weight_decay;
    c.step_size = a.lr / a.bias1;
    c.inv_sqrt_bc2 = 1.0 / std::sqrt(a.bias2);
    gpu::adam_update(p, g, m, v, n, c, ctx.stream());
  }

  /// shadow = rate * shadow + (1 - rate) * p (nn::Ema::update).
  static void ema_update(Context& ctx, float* shadow, const float* p, std::size_t n, double rate) {
    gpu::ema_blend(shadow, p, n, rate, ctx.stream());
  }

  // ------------------------------------------------------------------ features

  /// out[b] = || sigma s_b || for the B images of s (Eq. 2), in double. Waits for it.
  static void scaled_norms(Context& ctx, const Tensor& s, float sigma, std::span<double> out) {
    const std::size_t B = s.shape()[0];
    check_out("scaled_norms", out.size(), B);
    if (B == 0) return;
    double* d = ctx.scratch<double>(gpu::Scratch::features, B);
    gpu::scaled_norms(s.data(), int(B), s.size() / B, sigma, d, ctx.stream());
    ctx.download(static_cast<const double*>(d), out);
  }

  /// out[g B + b] = || s_{g B + b} + z_b / sigma || (Eq. 3, 5) for `groups` copies of the B
  /// noise images z, group-major, in double (1 / sigma rounded to float first, as the CPU).
  static void residual_norms(Context& ctx, const Tensor& s, const Tensor& z, float sigma, std::size_t groups,
                             std::span<double> out) {
    const std::size_t B = grouped("residual_norms", s, z, groups);
    check_out("residual_norms", out.size(), B * groups);
    if (B == 0 || groups == 0) return;
    double* d = ctx.scratch<double>(gpu::Scratch::features, B * groups);
    gpu::residual_norms_grouped(s.data(), z.data(), int(B), int(groups), z.size() / B, 1.0f / sigma, d,
                                ctx.stream());
    ctx.download(static_cast<const double*>(d), out);
  }

  /// out[b H W + p] += sum_c (sigma s_b[c, p])^2: the msma term of an anomaly map (host out, B*H*W).
  static void clean_map_add(Context& ctx, const Tensor& s, float sigma, std::span<double> out) {
    const auto& sh = s.shape();
    const std::size_t B = sh[0], HW = sh[2] * sh[3];
    check_out("clean_map_add", out.size(), B * HW);
    if (B * HW == 0) return;
    double* d = ctx.scratch<double>(gpu::Scratch::features, B * HW);
    gpu::clean_map(s.data(), int(B), int(sh[1]), HW, double(sigma), d, ctx.stream());
    add_to_host(ctx, d, out);
  }

  /// out[b H W + p] += w sum_g sum_c (s_{g B + b}[c, p] + z_b[c, p] / sigma)^2: the residual terms
  /// of an anomaly map for `groups` copies (host out, B*H*W).
  static void residual_map_add(Context& ctx, const Tensor& s, const Tensor& z, float sigma, std::size_t groups,
                               double w, std::span<double> out) {
    const std::size_t B = grouped("residual_map_add", s, z, groups);
    const auto& sh = z.shape();
    const std::size_t HW = sh[2] * sh[3];
    check_out("residual_map_add", out.size(), B * HW);
    if (B * HW == 0 || groups == 0) return;
    double* d = ctx.scratch<double>(gpu::Scratch::features, B * HW);
    gpu::residual_map(s.data(), z.data(), int(B), int(sh[1]), HW, int(groups), 1.0 / double(sigma), w, d,
                      ctx.stream());
    add_to_host(ctx, d, out);
  }

  // ------------------------------------------------------------------ group batches (templates)

  /// The network inputs of a DSM batch (score::make_dsm_batch draws the rest on the host):
  /// input[b] = aug_{elements[b]}(data[image[b]] + sigma[b] z_b), z_b = noise.normal(b P + p) at
  /// each UN-transformed pixel p, from a training set already on the device. The same counters
  /// and the same group action as cpu/dsm.hpp: the batch equals the host's to float rounding.
  /// input and z are resized to [batch, C, H, W].
  template <class Aug>
  static void dsm_inputs(Context& ctx, const Tensor& data, std::span<const std::uint32_t> image,
                         std::span<const float> sigma, std::span<const int> elements, const Aug& aug,
                         const CounterRng& noise, Tensor& input, Tensor& z) {
    static_assert(gpu::has_device_action<Aug>,
                  "ops<cuda>::dsm_inputs: this augmentation group has no device action (the CUDA backend "
                  "applies Identity, Rot4 and Dihedral8; specialise gpu::device_group for another group of "
                  "square symmetries)");
    const auto& sh = data.shape();
    const std::size_t N = sh[0], C = sh[1], H = sh[2], W = sh[3], batch = image.size();
    if (sigma.size() != batch || elements.size() != batch)
      throw ShapeError("ops<cuda>::dsm_inputs: " + std::to_string(batch) + " images, " +
                       std::to_string(sigma.size()) + " sigmas and " + std::to_string(elements.size()) +
                       " group elements");
    if (&input == &data || &z == &data || &input == &z)
      throw Error("ops<cuda>::dsm_inputs: data, input and z must be distinct tensors");
    check_int("dsm_inputs", std::max(batch, N) * C * H * W);
    std::vector<int> idx(2 * batch);  // image index, then D4 code, per sample
    for (std::size_t b = 0; b < batch; ++b) {
      if (image[b] >= N || elements[b] < 0 || std::size_t(elements[b]) >= aug.size())
        throw ValueError("ops<cuda>::dsm_inputs: sample " + std::to_string(b) + " takes image " +
                         std::to_string(image[b]) + " of " + std::to_string(N) + " and element " +
                         std::to_string(elements[b]) + " of a group of " + std::to_string(aug.size()));
      aug.check_shape(C, H, W, std::size_t(elements[b]));
      idx[b] = int(image[b]);
      idx[batch + b] = gpu::device_group<Aug>::code(std::size_t(elements[b]));
    }
    input.resize({batch, C, H, W});
    z.resize({batch, C, H, W});
    if (batch == 0 || C * H * W == 0) return;
    int* di = ctx.scratch<int>(gpu::Scratch::indices, 2 * batch);
    float* ds = ctx.scratch<float>(gpu::Scratch::sigmas, batch);
    ctx.upload(std::span<const int>(idx), di);
    ctx.upload(sigma, ds);
    gpu::dsm_batch(data.data(), di, di + batch, ds, input.data(), z.data(),
                   gpu::ImageShape{int(batch), int(C), int(H), int(W)}, noise, ctx.stream());
  }

  /// The noisy group copies of B clean images behind the normality features
  /// (score::detail::network_passes): z_b[q] = rng.normal((first_image + b) P + q),
  /// in[(g B + b)] = element g of (x_b + sigma z_b) for g < groups (group-major);
  /// in resized to B * groups images, z to B.
  template <class Aug>
  static void noisy_copies(Context& ctx, const Tensor& clean, std::size_t first_image, float sigma,
                           const CounterRng& rng, std::size_t groups, const Aug& aug, Tensor& in, Tensor& z) {
    static_assert(gpu::has_device_action<Aug>,
                  "ops<cuda>::noisy_copies: this augmentation group has no device action (the CUDA backend "
                  "applies Identity, Rot4 and Dihedral8; specialise gpu::device_group for another group of "
                  "square symmetries)");
    const auto& sh = clean.shape();
    const std::size_t B = sh[0], C = sh[1], H = sh[2], W = sh[3];
    if (groups == 0 || groups > aug.size())
      throw ValueError("noisy_copies: " + std::to_string(groups) + " group elements of a group of " +
                       std::to_string(aug.size()));
    if (&in == &clean || &z == &clean || &in == &z) throw Error("noisy_copies: in, z and clean must be distinct");
    for (std::size_t k = 0; k < groups; ++k) aug.check_shape(C, H, W, k);
    check_int("noisy_copies", B * groups * C * H * W);
    in.resize({B * groups, C, H, W});
    z.resize({B, C, H, W});
    if (B == 0) return;
    std::vector<int> codes(groups);
    for (std::size_t g = 0; g < groups; ++g) codes[g] = gpu::device_group<Aug>::code(g);
    int* dc = ctx.scratch<int>(gpu::Scratch::indices, groups);
    ctx.upload(std::span<const int>(codes), dc);
    gpu::group_copies(clean.data(), dc, int(groups), sigma, in.data(), z.data(),
                      gpu::ImageShape{int(B), int(C), int(H), int(W)}, rng, std::uint64_t(first_image), ctx.stream());
  }

 private:
  static void same_shape(const char* who, const Shape4& a, const Shape4& b) {
    if (a != b) throw ShapeError(std::string("ops<cuda>::") + who + ": shapes " + to_string(a) + " and " + to_string(b));
  }
  static void check_int(const char* who, std::size_t n) {
    if (n > std::size_t(INT_MAX))
      throw ShapeError(std::string("ops<cuda>::") + who + ": " + std::to_string(n) + " values exceed the kernels' range");
  }
  static void check_out(const char* who, std::size_t got, std::size_t want) {
    if (got != want)
      throw ShapeError(std::string("ops<cuda>::") + who + ": output span of " + std::to_string(got) + ", expected " +
                       std::to_string(want));
  }
  /// B of s = groups copies of the B images of z (same image shape).
  static std::size_t grouped(const char* who, const Tensor& s, const Tensor& z, std::size_t groups) {
    const auto &ss = s.shape(), &zs = z.shape();
    if (ss[1] != zs[1] || ss[2] != zs[2] || ss[3] != zs[3] || ss[0] != zs[0] * groups)
      throw ShapeError(std::string("ops<cuda>::") + who + ": scores " + to_string(ss) + " are not " +
                       std::to_string(groups) + " copies of the noise " + to_string(zs));
    return zs[0];
  }
  static void add_to_host(Context& ctx, const double* d, std::span<double> out) {
    std::vector<double> h(out.size());
    ctx.download(d, std::span<double>(h));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] += h[i];
  }

  static gpu::ConvShape conv_shape(const ConvParams& cp, const Shape4& xs, const char* who) {
    if (xs[1] != cp.in)
      throw ShapeError(std::string("ops<cuda>::") + who + ": input " + to_string(xs) + " has " +
                       std::to_string(xs[1]) + " channels, expected " + std::to_string(cp.in));
    check_int(who, xs[0] * xs[1] * xs[2] * xs[3]);
    gpu::ConvShape s;
    s.batch = int(xs[0]);
    s.in_channels = int(xs[1]);
    s.height = int(xs[2]);
    s.width = int(xs[3]);
    s.out_channels = int(cp.out);
    s.kernel_h = s.kernel_w = int(cp.kernel);
    s.pad_h = s.pad_w = int(cp.pad);
    s.stride_h = s.stride_w = int(cp.stride);
    s.dilation_h = s.dilation_w = int(cp.dilation);
    if (cp.out == 0 || cp.kernel == 0 || cp.stride == 0 || cp.dilation == 0 ||
        xs[2] + 2 * cp.pad < cp.dilation * (cp.kernel - 1) + 1 || xs[3] + 2 * cp.pad < cp.dilation * (cp.kernel - 1) + 1)
      throw ShapeError(std::string("ops<cuda>::") + who + ": input " + to_string(xs) +
                       " does not fit the convolution (" + s.str() + ")");
    return s;
  }

  static gpu::NormShape norm_shape(const NormParams<float>& np, const Shape4& xs, const char* who) {
    if (xs[1] != np.channels)
      throw ShapeError(std::string("ops<cuda>::") + who + ": input has " + std::to_string(xs[1]) +
                       " channels, the norm " + std::to_string(np.channels) + " (input shape " + to_string(xs) + ")");
    if (np.channels < 2) throw ValueError(std::string("ops<cuda>::") + who + ": instance norm++ needs 2 channels");
    if (xs[0] == 0 || xs[2] == 0 || xs[3] == 0)
      throw ShapeError(std::string("ops<cuda>::") + who + ": empty input " + to_string(xs));
    if (!np.levels.empty() && np.levels.size() != xs[0])
      throw ShapeError(std::string("ops<cuda>::") + who + ": " + std::to_string(np.levels.size()) +
                       " noise-level indices for a batch of " + std::to_string(xs[0]));
    if (np.levels.empty() && np.stride != 0)
      throw ShapeError(std::string("ops<cuda>::") + who + ": a conditional norm needs one level per sample");
    for (int l : np.levels)
      if (l < 0) throw ValueError(std::string("ops<cuda>::") + who + ": negative noise-level index " + std::to_string(l));
    check_int(who, xs[0] * xs[1] * xs[2] * xs[3]);
    return gpu::NormShape{int(xs[0]), int(xs[1]), xs[2] * xs[3]};
  }
  static gpu::NormRowsDevice<float> norm_rows(Context& ctx, const NormParams<float>& np, const gpu::NormShape&) {
    gpu::NormRowsDevice<float> r;
    r.gamma = np.gamma;
    r.alpha = np.alpha;
    r.beta = np.beta;
    r.stride = np.stride;
    r.levels = np.stride ? ctx.levels(np.levels) : nullptr;  // a plain norm reads row 0 for every sample
    return r;
  }

  static gpu::PoolShape pool_shape(const PoolParams& pp, const Shape4& xs, const char* who) {
    const std::size_t k = pp.kernel, st = pp.stride ? pp.stride : pp.kernel, p = pp.pad;
    if (k == 0 || 2 * p > k)
      throw ValueError(std::string("ops<cuda>::") + who + ": kernel " + std::to_string(k) + " with padding " +
                       std::to_string(p) + " (padding at most half the kernel)");
    if (xs[2] + 2 * p < k || xs[3] + 2 * p < k)
      throw ShapeError(std::string("ops<cuda>::") + who + ": input " + to_string(xs) + " is smaller than the " +
                       std::to_string(k) + "x" + std::to_string(k) + " window");
    check_int(who, xs[0] * xs[1] * xs[2] * xs[3]);
    return gpu::PoolShape{int(xs[0] * xs[1]), int(xs[2]), int(xs[3]), int(k), int(st), int(p), pp.count_include_pad};
  }

  /// The resize from `in` to the (height, width) of `out`, which must hold in's batch and channels.
  static gpu::ResizeShape resize_shape(const Shape4& in, const Tensor& out, bool alias, const char* who) {
    const Shape4& os = out.shape();
    if (alias) throw Error(std::string("ops<cuda>::") + who + ": input and output must be different tensors");
    if (os[0] != in[0] || os[1] != in[1] || os[2] == 0 || os[3] == 0 || in[2] == 0 || in[3] == 0)
      throw ShapeError(std::string("ops<cuda>::") + who + ": " + to_string(in) + " -> " + to_string(os) +
                       " (the larger side sized by the caller, same batch and channels)");
    check_int(who, std::max(in[0] * in[1] * in[2] * in[3], os[0] * os[1] * os[2] * os[3]));
    return gpu::ResizeShape{int(in[0] * in[1]), int(in[2]), int(in[3]), int(os[2]), int(os[3])};
  }
};

}  // namespace scoreood::backend
