/** @file concepts.hpp
 *  @brief The five policy contracts of ScoreOOD, in one place.
 *
 *  `ScoreNetwork`, `NoiseSchedule` and `BackendOps` are defined here, `Backend` in
 *  core/backend.hpp (the layers need it without the rest);
 *  `AugmentationGroup` and `DensityModel` are defined beside their policies
 *  (augment/group.hpp, density/density_model.hpp, where their batch helpers and
 *  docs live) and re-exported here, so `scoreood::concepts` names all five. */
#pragma once
#include <scoreood/augment/group.hpp>
#include <scoreood/core/backend.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/density/density_model.hpp>
#include <scoreood/nn/parameter.hpp>

#include <concepts>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace scoreood::concepts {

// concepts::Backend (a closed trait: backend::cpu, backend::cuda) is defined in core/backend.hpp.

namespace detail {
/// ops<B>::norm_cache<T> as an alias: GCC 12 rejects the type requirement
/// `typename X::template Y<T>;` written out in a requires-expression.
template <class B, class T>
using norm_cache_t = typename backend::ops<B>::template norm_cache<T>;
}  // namespace detail

/// What the layers, networks, trainer and features call on a backend (core/backend.hpp), for
/// float; `ctx` is the backend's context, tensors are tensor_t<B, float>, parameters raw
/// pointers into its memory. Every operation is specialised by cpu/backend.hpp (always) and
/// cuda/backend.cuh (nvcc): a missing one fails here with its name.
template <class B, class Tn = backend::tensor_t<B, float>>
concept BackendOps = Backend<B> && requires(backend::context_t<B>& ctx, Tn& y, const Tn& x, const Tn* r, Shape4 s,
                                             const backend::ConvParams& cp, const backend::NormParams<float>& np,
                                             const backend::NormGrads<float>& ng, const backend::PoolParams& pp,
                                             const backend::AdamStep& as, const float* cw, float* w, std::size_t n,
                                             float a, double d, bool flag, const Images& host, Images& host_out,
                                             std::span<double> out, std::span<const float> sig) {
  typename detail::norm_cache_t<B, float>;
  // tensors
  backend::ops<B>::resize(y, s);
  backend::ops<B>::zeros(ctx, y, s);
  backend::ops<B>::copy(ctx, x, y);
  backend::ops<B>::add_inplace(ctx, y, x);
  backend::ops<B>::affine(ctx, x, y, a, a);
  { backend::ops<B>::to_backend(ctx, host, y) } -> std::convertible_to<const Tn&>;
  { backend::ops<B>::to_host(ctx, x, host_out) } -> std::convertible_to<const Images&>;
  // layers
  backend::ops<B>::conv2d_forward(ctx, cp, cw, cw, x, y, r);
  backend::ops<B>::conv2d_backward(ctx, cp, cw, x, x, &y, w, w);
  backend::ops<B>::norm_forward(ctx, np, x, y, (typename backend::ops<B>::template norm_cache<float>*)nullptr, cw,
                                flag);
  backend::ops<B>::norm_backward(ctx, np, std::declval<const typename backend::ops<B>::template norm_cache<float>&>(),
                                 x, y, cw, a, r, ng);
  backend::ops<B>::elu_forward(ctx, x, y, a);
  backend::ops<B>::elu_backward(ctx, cw, x, y, a);
  backend::ops<B>::avg_pool_forward(ctx, pp, x, y);
  backend::ops<B>::avg_pool_backward(ctx, pp, x, y);
  backend::ops<B>::mean_pool2_forward(ctx, x, y);
  backend::ops<B>::mean_pool2_backward(ctx, x, y);
  backend::ops<B>::nearest_forward(ctx, x, y, r);
  backend::ops<B>::nearest_backward(ctx, x, y);
  backend::ops<B>::bilinear_forward(ctx, x, y, flag);
  backend::ops<B>::bilinear_backward(ctx, x, y, flag);
  // training
  { backend::ops<B>::dsm_loss(ctx, x, x, sig, y) } -> std::convertible_to<double>;
  { backend::ops<B>::sum_squares(ctx, cw, n) } -> std::convertible_to<double>;
  backend::ops<B>::scale(ctx, w, n, a);
  backend::ops<B>::fill(ctx, w, n, a);
  backend::ops<B>::copy_n(ctx, cw, w, n);
  backend::ops<B>::adam_step(ctx, w, cw, w, w, n, as);
  backend::ops<B>::ema_update(ctx, w, cw, n, d);
  // features
  backend::ops<B>::scaled_norms(ctx, x, a, out);
  backend::ops<B>::residual_norms(ctx, x, x, a, n, out);
  backend::ops<B>::clean_map_add(ctx, x, a, out);
  backend::ops<B>::residual_map_add(ctx, x, x, a, n, d, out);
};

/// A noise schedule: sigma_1 > ... > sigma_L as floats.
template <class S>
concept NoiseSchedule = requires(const S& s) {
  { S::name } -> std::convertible_to<std::string_view>;
  { s.sigmas() } -> std::same_as<std::vector<float>>;
};

/// A noise-conditional score network s(x, i), on its backend (`backend_type`):
///  - `Config` with `channels`, `image_size`, `num_levels`; constructor `(Config, seed)`;
///  - `value_type` (float for the pipeline, whose images and noise are float; double networks
///    serve the gradient tests), `Tensor` = backend::tensor_t<backend_type, value_type>;
///  - `forward(x, levels)` (training, keeps activations) in `context()`, and `backward(d_score)`
///    accumulating into `parameters()` (a flat ParameterStore in the backend's memory);
///  - `infer(ws, x, levels, out) const` with a caller-owned `Workspace` (holding its own context;
///    safe from several threads, each with its own), and `infer(x, levels, out) const`
///    (nn/workspace.hpp);
///  - `save(ByteWriter&)` / `load(ByteReader&)` including the architecture.
template <class N>
concept ScoreNetwork =
    Backend<typename N::backend_type> &&
    std::same_as<typename N::Tensor, backend::tensor_t<typename N::backend_type, typename N::value_type>> &&
    std::constructible_from<N, typename N::Config, std::uint64_t> &&
    requires(N n, const N cn, const typename N::Tensor& x, typename N::Tensor& y, std::span<const int> levels,
             io::ByteWriter& w, io::ByteReader& r, typename N::Workspace& ws) {
      { N::name } -> std::convertible_to<std::string_view>;
      { cn.config().channels } -> std::convertible_to<std::size_t>;
      { cn.config().image_size } -> std::convertible_to<std::size_t>;
      { cn.config().num_levels } -> std::convertible_to<std::size_t>;
      { n.forward(x, levels) } -> std::same_as<const typename N::Tensor&>;
      cn.infer(ws, x, levels, y);
      cn.infer(x, levels, y);
      n.backward(x);
      { n.context() } -> std::same_as<backend::context_t<typename N::backend_type>&>;
      { n.parameters() } -> std::same_as<nn::ParameterStore<typename N::value_type, typename N::backend_type>&>;
      { cn.parameter_count() } -> std::convertible_to<std::size_t>;
      { cn.macs_per_image() } -> std::convertible_to<std::size_t>;
      cn.save(w);
      n.load(r);
    };

/// A score network the pipeline (training, features, the detector) runs: float values.
template <class N>
concept FloatScoreNetwork = ScoreNetwork<N> && std::same_as<typename N::value_type, float>;

using augment::AugmentationGroup;
using augment::InvertibleGroup;
using density::DensityModel;

}  // namespace scoreood::concepts
