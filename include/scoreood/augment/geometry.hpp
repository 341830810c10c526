/** @file geometry.hpp
 *  @brief Pixel-moving kernels shared by the augmentation groups and the OOD
 *  transforms: the eight symmetries of the square (rotations and flips) and
 *  patch permutations, each on one contiguous C×H×W image.
 *
 *  Every symmetry is an affine map of the source offset,
 *  src = base + i·di + j·dj for output pixel (i, j), so one loop serves all
 *  eight. Rotations are counter-clockwise and match numpy's
 *  `np.rot90(img, k, axes=(H, W))`: for k = 1, out[i][j] = in[j][W-1-i]. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scoreood::augment::detail {

/// Element e of the dihedral group D4 on an H×W image: e < 4 rotates by e
/// quarter turns counter-clockwise; e >= 4 flips horizontally, then rotates by e-4.
struct D4Map {
  std::ptrdiff_t base, di, dj;
  std::size_t out_h, out_w;
};

inline D4Map d4_map(std::size_t e, std::size_t H, std::size_t W) {
  const auto h = static_cast<std::ptrdiff_t>(H), w = static_cast<std::ptrdiff_t>(W);
  const bool odd = (e & 1) != 0;
  const std::size_t oh = odd ? W : H, ow = odd ? H : W;
  switch (e) {
    case 0: return {0, w, 1, oh, ow};                     // identity
    case 1: return {w - 1, -1, w, oh, ow};                // out[i][j] = in[j][W-1-i]
    case 2: return {h * w - 1, -w, -1, oh, ow};           // out[i][j] = in[H-1-i][W-1-j]
    case 3: return {(h - 1) * w, 1, -w, oh, ow};          // out[i][j] = in[H-1-j][i]
    case 4: return {w - 1, w, -1, oh, ow};                // hflip: in[i][W-1-j]
    case 5: return {0, 1, w, oh, ow};                     // hflip, rot90 = transpose: in[j][i]
    case 6: return {(h - 1) * w, -w, 1, oh, ow};          // hflip, rot180 = vflip: in[H-1-i][j]
    case 7: return {h * w - 1, -1, -w, oh, ow};           // hflip, rot270 = anti-transpose
    default: throw ValueError("d4_map: element " + std::to_string(e) + " is not in 0..7");
  }
}

/// Inverse element in D4: rotations invert to the opposite turn, flip-rotations are involutions.
constexpr std::size_t d4_inverse(std::size_t e) { return e < 4 ? (4 - e) % 4 : e; }

/// Applies D4 element e to one C×H×W image (dst must not overlap src).
template <class T>
void d4_apply(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t e) {
  const D4Map m = d4_map(e, H, W);
  const std::size_t plane = H * W;
  for (std::size_t c = 0; c < C; ++c) {
    const T* s = src + c * plane;
    T* d = dst + c * plane;
    if (e == 0) {
      std::copy(s, s + plane, d);
      continue;
    }
    for (std::size_t i = 0; i < m.out_h; ++i) {
      const T* row = s + m.base + static_cast<std::ptrdiff_t>(i) * m.di;
      T* out = d + i * m.out_w;
      for (std::size_t j = 0; j < m.out_w; ++j) out[j] = row[static_cast<std::ptrdiff_t>(j) * m.dj];
    }
  }
}

/// Throws ShapeError when D4 element e would change the image shape (odd
/// elements transpose H and W, so they need square images).
inline void d4_check_shape(std::string_view who, std::size_t H, std::size_t W, std::size_t e) {
  if ((e & 1) && H != W)
    throw ShapeError(std::string(who) + ": element " + std::to_string(e) +
                     " turns the image by 90 or 270 degrees, which needs square images; got " + std::to_string(H) +
                     "x" + std::to_string(W));
}

/// Patch grid geometry; throws ShapeError when H, W are not multiples of the patch.
inline std::pair<std::size_t, std::size_t> patch_grid(std::string_view who, std::size_t H, std::size_t W,
                                                      std::size_t ph, std::size_t pw) {
  if (ph == 0 || pw == 0) throw ValueError(std::string(who) + ": patch size must be positive");
  if (H % ph != 0 || W % pw != 0)
    throw ShapeError(std::string(who) + ": image " + std::to_string(H) + "x" + std::to_string(W) +
                     " is not divisible into " + std::to_string(ph) + "x" + std::to_string(pw) + " patches");
  return {H / ph, W / pw};
}

/// Moves whole patches: output patch p (row-major over the grid) is input patch
/// perm[p]; with `inverse`, input patch p goes to output patch perm[p] instead.
template <class T>
void permute_patches(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t ph,
                     std::size_t pw, const std::uint32_t* perm, bool inverse = false) {
  const std::size_t gw = W / pw, n = (H / ph) * gw;
  for (std::size_t c = 0; c < C; ++c) {
    const T* s = src + c * H * W;
    T* d = dst + c * H * W;
    for (std::size_t p = 0; p < n; ++p) {
      const std::size_t to = inverse ? perm[p] : p, from = inverse ? p : perm[p];
      const T* sp = s + (from / gw) * ph * W + (from % gw) * pw;
      T* dp = d + (to / gw) * ph * W + (to % gw) * pw;
      for (std::size_t y = 0; y < ph; ++y) std::copy(sp + y * W, sp + y * W + pw, dp + y * W);
    }
  }
}

inline bool is_identity(const std::vector<std::uint32_t>& p) {
  for (std::size_t i = 0; i < p.size(); ++i)
    if (p[i] != i) return false;
  return true;
}

/// A uniformly random permutation of 0..n-1 (Fisher-Yates on counter-based
/// numbers, so it depends only on `rng`), redrawn while it is the identity when
/// n > 1: a "shuffled" image must differ from the original. `attempt` offsets
/// the counters so callers can ask for further independent draws.
inline std::vector<std::uint32_t> random_permutation(const CounterRng& rng, std::size_t n, std::uint64_t attempt = 0) {
  std::vector<std::uint32_t> p(n);
  for (std::uint64_t a = attempt;; ++a) {
    std::iota(p.begin(), p.end(), 0u);
    const std::uint64_t off = a * n;
    for (std::size_t i = n; i-- > 1;) {
      const std::size_t j = rng.uniform_int(off + i, static_cast<std::uint32_t>(i + 1));
      std::swap(p[i], p[j]);
    }
    if (n < 2 || !is_identity(p)) return p;
  }
}

}  // namespace scoreood::augment::detail
