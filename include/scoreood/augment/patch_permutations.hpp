/** @file patch_permutations.hpp
 *  @brief P fixed permutations of an image's patch grid (element 0 = identity).
 *
 *  A "jigsaw" augmentation set: the image is cut into patch_h × patch_w
 *  patches and element k rearranges them by a permutation drawn once from
 *  CounterRng(seed).substream(k). The permutations depend only on (seed, k,
 *  number of patches), are never the identity for k > 0 (when the grid has at
 *  least 2 patches) and are pairwise distinct whenever the grid allows it.
 *  They are built lazily per grid size and cached; copies share the cache.
 *  This is a set, not a group: the inverse of a permutation is usually not in
 *  it, so inverse(k) only answers for k = 0 and inverse_image() is the way back. */
#pragma once
#include <scoreood/augment/geometry.hpp>
#include <scoreood/augment/group.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::augment {

class PatchPermutations : public GroupBase<PatchPermutations> {
 public:
  static constexpr std::string_view name = "patch_permutations";
  using Table = std::vector<std::vector<std::uint32_t>>;

  /// @param patch_h, patch_w patch size (image sides must be multiples of it)
  /// @param elements number of elements P (>= 1), element 0 being the identity
  /// @param seed fixes the permutations
  PatchPermutations(std::size_t patch_h, std::size_t patch_w, std::size_t elements, std::uint64_t seed = 0)
      : ph_(patch_h), pw_(patch_w), p_(elements), seed_(seed), cache_(std::make_shared<Cache>()) {
    if (patch_h == 0 || patch_w == 0) throw ValueError("PatchPermutations: patch size must be positive");
    if (elements == 0) throw ValueError("PatchPermutations: needs at least one element");
  }

  std::size_t size() const { return p_; }
  std::size_t patch_h() const { return ph_; }
  std::size_t patch_w() const { return pw_; }
  std::uint64_t seed() const { return seed_; }

  void check_shape(std::size_t, std::size_t H, std::size_t W, std::size_t k) const {
    if (k >= p_)
      throw ValueError("PatchPermutations: element " + std::to_string(k) + " is outside 0.." + std::to_string(p_ - 1));
    detail::patch_grid("PatchPermutations", H, W, ph_, pw_);
  }

  /// Element k's permutation of a grid of n patches: output patch i is input patch perm[i].
  const std::vector<std::uint32_t>& permutation(std::size_t k, std::size_t n) const { return (*table(n))[k]; }

  template <class T>
  void apply_image(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t k) const {
    check_shape(C, H, W, k);
    const auto t = table((H / ph_) * (W / pw_));
    detail::permute_patches(src, dst, C, H, W, ph_, pw_, (*t)[k].data(), false);
  }
  template <class T>
  void inverse_image(const T* src, T* dst, std::size_t C, std::size_t H, std::size_t W, std::size_t k) const {
    check_shape(C, H, W, k);
    const auto t = table((H / ph_) * (W / pw_));
    detail::permute_patches(src, dst, C, H, W, ph_, pw_, (*t)[k].data(), true);
  }
  /// Only the identity's inverse is known to be in the set; use inverse_image() to undo others.
  std::size_t inverse(std::size_t k) const {
    if (k == 0) return 0;
    throw ValueError("PatchPermutations: the inverse of element " + std::to_string(k) +
                     " is not an element of the set; use inverse_image()/inverse_each()");
  }

 private:
  struct Cache {
    std::shared_mutex mutex;
    std::map<std::size_t, std::shared_ptr<const Table>> tables;
  };

  std::shared_ptr<const Table> table(std::size_t n) const {
    {
      std::shared_lock lock(cache_->mutex);
      if (auto it = cache_->tables.find(n); it != cache_->tables.end()) return it->second;
    }
    auto built = std::make_shared<const Table>(build(n));
    std::unique_lock lock(cache_->mutex);
    return cache_->tables.emplace(n, std::move(built)).first->second;
  }

  Table build(std::size_t n) const {
    Table t(p_);
    t[0].resize(n);
    for (std::size_t i = 0; i < n; ++i) t[0][i] = static_cast<std::uint32_t>(i);
    const CounterRng rng(seed_, 0x70617463ull);  // "patc": a stream of its own
    for (std::size_t k = 1; k < p_; ++k) {
      // Redraw while equal to an earlier element (bounded: tiny grids have few permutations).
      for (std::uint64_t attempt = 0;; ++attempt) {
        t[k] = detail::random_permutation(rng.substream(k), n, attempt);
        bool dup = false;
        for (std::size_t j = 0; j < k && !dup; ++j) dup = t[j] == t[k];
        if (!dup || attempt >= 64) break;
      }
    }
    return t;
  }

  std::size_t ph_, pw_, p_;
  std::uint64_t seed_;
  std::shared_ptr<Cache> cache_;
};

}  // namespace scoreood::augment
