/** @file concepts.hpp
 *  @brief The five policy contracts of ScoreOOD, in one place.
 *
 *  `ScoreNetwork`, `NoiseSchedule` and `Backend` are defined here;
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
#include <vector>

namespace scoreood::concepts {

/// A backend tag: `backend::cpu` or `backend::cuda`.
template <class B>
concept Backend = requires {
  { B::name } -> std::convertible_to<std::string_view>;
};

/// A noise schedule: sigma_1 > ... > sigma_L as floats.
template <class S>
concept NoiseSchedule = requires(const S& s) {
  { S::name } -> std::convertible_to<std::string_view>;
  { s.sigmas() } -> std::same_as<std::vector<float>>;
};

/// A noise-conditional score network s(x, i).
///  - `Config` with `channels`, `image_size`, `num_levels`; constructor `(Config, seed)`;
///  - `forward(x, levels)` (training, keeps activations);
///  - `infer(ws, x, levels, out) const` with a caller-owned `Workspace` (safe from several threads,
///    each with its own), and `infer(x, levels, out) const` (nn/workspace.hpp);
///  - `backward(d_score)` accumulating into `parameters()` (a flat ParameterStore);
///  - `save(ByteWriter&)` / `load(ByteReader&)` including the architecture.
template <class N>
concept ScoreNetwork = requires(N n, const N cn, const Tensor4<typename N::value_type>& x,
                                Tensor4<typename N::value_type>& y, std::span<const int> levels, io::ByteWriter& w,
                                io::ByteReader& r, typename N::Config cfg, typename N::Workspace& ws) {
  requires Backend<typename N::backend_type>;
  { N::name } -> std::convertible_to<std::string_view>;
  { cn.config().channels } -> std::convertible_to<std::size_t>;
  { cn.config().image_size } -> std::convertible_to<std::size_t>;
  { cn.config().num_levels } -> std::convertible_to<std::size_t>;
  { n.forward(x, levels) } -> std::same_as<const Tensor4<typename N::value_type>&>;
  cn.infer(ws, x, levels, y);
  cn.infer(x, levels, y);
  n.backward(x);
  { n.parameters() } -> std::same_as<nn::ParameterStore<typename N::value_type>&>;
  { cn.parameter_count() } -> std::convertible_to<std::size_t>;
  { cn.macs_per_image() } -> std::convertible_to<std::size_t>;
  cn.save(w);
  n.load(r);
};

using augment::AugmentationGroup;
using density::DensityModel;

}  // namespace scoreood::concepts
