/** @file ood_transforms.hpp
 *  @brief Transformed copies of an in-distribution test set used as OOD sets
 *  (paper, Table 1): rotations, horizontal flip, patch shuffle.
 *
 *  Built on the group kernels. Patch shuffle gives every image its own random
 *  permutation of the patch grid, drawn from CounterRng(seed).substream(image
 *  index), so the result does not depend on the thread count. */
#pragma once
#include <scoreood/augment/dihedral8.hpp>
#include <scoreood/augment/geometry.hpp>
#include <scoreood/augment/group.hpp>
#include <scoreood/augment/rot4.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace scoreood::augment {

/// Every image rotated by `quarter_turns_ccw` × 90° counter-clockwise (any
/// integer; taken mod 4). Odd turns need square images (ShapeError otherwise).
inline Images rotate(const Images& x, int quarter_turns_ccw) {
  const int k = ((quarter_turns_ccw % 4) + 4) % 4;
  Images y;
  apply(Rot4{}, x, static_cast<std::size_t>(k), y);
  return y;
}

/// Every image mirrored left-right.
inline Images hflip(const Images& x) {
  Images y;
  apply(Dihedral8{}, x, 4, y);
  return y;
}

struct PatchSize {
  std::size_t h, w;
};

/// The paper's patch size: H/2 × W/4, i.e. 14×7 on 28×28 and 16×8 on 32×32 (8 patches).
constexpr PatchSize default_patch(std::size_t H, std::size_t W) { return {H / 2, W / 4}; }

/// Cuts every image into patch_h × patch_w patches and rearranges them by a
/// random permutation of its own (never the identity when there are >= 2 patches).
inline Images patch_shuffle(const Images& x, std::size_t patch_h, std::size_t patch_w, std::uint64_t seed) {
  const auto s = shape_of(x);
  const std::size_t N = s[0], C = s[1], H = s[2], W = s[3];
  const auto [gh, gw] = detail::patch_grid("patch_shuffle", H, W, patch_h, patch_w);
  const std::size_t n = gh * gw, img = C * H * W;
  Images y = Images::from_shape({N, C, H, W});
  const CounterRng rng(seed, 0x73687566ull);  // "shuf"
  const float* src = x.data();
  float* dst = y.data();
  const auto sn = static_cast<std::ptrdiff_t>(N);
#pragma omp parallel for schedule(static) if (N * img > (1u << 18))
  for (std::ptrdiff_t i = 0; i < sn; ++i) {
    const auto perm = detail::random_permutation(rng.substream(static_cast<std::uint64_t>(i)), n);
    detail::permute_patches(src + std::size_t(i) * img, dst + std::size_t(i) * img, C, H, W, patch_h, patch_w,
                            perm.data());
  }
  return y;
}

/// patch_shuffle with default_patch(H, W).
inline Images patch_shuffle(const Images& x, std::uint64_t seed) {
  const PatchSize p = default_patch(x.shape()[2], x.shape()[3]);
  return patch_shuffle(x, p.h, p.w, seed);
}

/// The names apply_transform() accepts.
inline constexpr std::array<std::string_view, 5> transform_names = {"rot90", "rot180", "rot270", "patch_shuffle", "hflip"};

/// A transformed copy by name: rot90, rot180, rot270 (counter-clockwise),
/// patch_shuffle (default patch size, `seed`), hflip. Unknown → ValueError.
inline Images apply_transform(const Images& x, std::string_view name, std::uint64_t seed = 0) {
  if (name == "rot90") return rotate(x, 1);
  if (name == "rot180") return rotate(x, 2);
  if (name == "rot270") return rotate(x, 3);
  if (name == "patch_shuffle") return patch_shuffle(x, seed);
  if (name == "hflip") return hflip(x);
  std::string valid;
  for (auto n : transform_names) valid += (valid.empty() ? "" : ", ") + std::string(n);
  throw ValueError("apply_transform: unknown transform '" + std::string(name) + "' (valid: " + valid + ")");
}

}  // namespace scoreood::augment
