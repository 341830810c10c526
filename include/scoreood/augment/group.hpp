/** @file group.hpp
 *  @brief The AugmentationGroup contract and the batch helpers every group shares.
 *
 *  A group is a small type whose elements 0..size()-1 act on one C×H×W image
 *  (element 0 is always the identity). Training (Eq. 4) feeds the network
 *  g_k(x~) for a random k per sample; the OOD transforms reuse the same code.
 *  The batch helpers (`apply`, `apply_each`, `inverse_each`) are written once
 *  here, over any group, with OpenMP over samples; they validate every element
 *  index and shape before the parallel loop, so nothing throws inside it. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::augment {

/** An augmentation group policy must provide what training (Eq. 4) and the
 *  features (Eq. 5) call:
 *  - `static constexpr std::string_view name`;
 *  - `size()`: the number of elements (element 0 is the identity);
 *  - `check_shape(C, H, W, k)`: throws ShapeError/ValueError if element k cannot act on C×H×W images;
 *  - `apply_image(src, dst, C, H, W, k)` for float images: element k on one contiguous image,
 *    dst != src, same shape.
 *  InvertibleGroup adds what undoing an element needs (apply_inverse, inverse_each):
 *  - `inverse_image(src, dst, C, H, W, k)`: undoes element k;
 *  - `inverse(k)`: the index of k's inverse element (a set that is not closed
 *    under inversion may throw ValueError; inverse_image always works). */
template <class G>
concept AugmentationGroup = requires(const G& g, const float* fs, float* fd, std::size_t n) {
  { G::name } -> std::convertible_to<std::string_view>;
  { g.size() } -> std::convertible_to<std::size_t>;
  g.check_shape(n, n, n, n);
  g.apply_image(fs, fd, n, n, n, n);
};
template <class G>
concept InvertibleGroup = AugmentationGroup<G> && requires(const G& g, const float* fs, float* fd, std::size_t n) {
  g.inverse_image(fs, fd, n, n, n, n);
  { g.inverse(n) } -> std::convertible_to<std::size_t>;
};

namespace detail {

template <class G>
void check_element(const G& g, std::size_t C, std::size_t H, std::size_t W, long long k, std::string_view who) {
  if (k < 0 || static_cast<std::size_t>(k) >= g.size())
    throw ValueError(std::string(who) + ": element " + std::to_string(k) + " is outside 0.." +
                     std::to_string(g.size() - 1) + " of group '" + std::string(G::name) + "'");
  g.check_shape(C, H, W, static_cast<std::size_t>(k));
}

/// y[i] = g_{k(i)}(x[i]) (or the inverse), after validating every k(i).
template <bool Inverse, class G, class T, class KOf>
void run_batch(const G& g, const Tensor4<T>& x, std::size_t count_k, KOf k_of, Tensor4<T>& y, std::string_view who) {
  const auto s = shape_of(x);
  const std::size_t N = s[0], C = s[1], H = s[2], W = s[3];
  std::vector<char> seen(g.size(), 0);
  for (std::size_t i = 0; i < count_k; ++i) {
    const long long k = k_of(i);
    if (k >= 0 && static_cast<std::size_t>(k) < g.size() && seen[static_cast<std::size_t>(k)]) continue;
    check_element(g, C, H, W, k, who);
    seen[static_cast<std::size_t>(k)] = 1;
  }
  if (&x == &y) {  // in place: work on a copy of the input
    const Tensor4<T> tmp = x;
    run_batch<Inverse>(g, tmp, count_k, k_of, y, who);
    return;
  }
  if (shape_of(y) != s) y.resize({N, C, H, W});
  const std::size_t img = C * H * W;
  const T* src = x.data();
  T* dst = y.data();
  const auto sn = static_cast<std::ptrdiff_t>(N);
  // Moving pixels is memory-bound: threads only pay off beyond ~1 MB of data.
#pragma omp parallel for schedule(static) if (N * img > (1u << 18))
  for (std::ptrdiff_t i = 0; i < sn; ++i) {
    const auto k = static_cast<std::size_t>(k_of(static_cast<std::size_t>(i)));
    const T* a = src + static_cast<std::size_t>(i) * img;
    T* b = dst + static_cast<std::size_t>(i) * img;
    if constexpr (Inverse) g.inverse_image(a, b, C, H, W, k);
    else g.apply_image(a, b, C, H, W, k);
  }
}

}  // namespace detail

/// y = g_k(x) for every sample (same element k for all). y is resized as needed; &y == &x is allowed.
template <AugmentationGroup G, class T>
void apply(const G& g, const Tensor4<T>& x, std::size_t k, Tensor4<T>& y) {
  detail::run_batch<false>(g, x, 1, [k](std::size_t) { return static_cast<long long>(k); }, y, "augment::apply");
}

/// y = g_k^{-1}(x) for every sample.
template <InvertibleGroup G, class T>
void apply_inverse(const G& g, const Tensor4<T>& x, std::size_t k, Tensor4<T>& y) {
  detail::run_batch<true>(g, x, 1, [k](std::size_t) { return static_cast<long long>(k); }, y, "augment::apply_inverse");
}

/// y[i] = g_{ks[i]}(x[i]): one element per sample (ks.size() == N).
template <AugmentationGroup G, class T>
void apply_each(const G& g, const Tensor4<T>& x, std::span<const int> ks, Tensor4<T>& y) {
  if (ks.size() != x.shape()[0])
    throw ShapeError("augment::apply_each: " + std::to_string(ks.size()) + " element indices for " +
                     std::to_string(x.shape()[0]) + " images");
  detail::run_batch<false>(g, x, ks.size(), [ks](std::size_t i) { return static_cast<long long>(ks[i]); }, y,
                           "augment::apply_each");
}

/// y[i] = g_{ks[i]}^{-1}(x[i]): undoes apply_each with the same ks.
template <InvertibleGroup G, class T>
void inverse_each(const G& g, const Tensor4<T>& x, std::span<const int> ks, Tensor4<T>& y) {
  if (ks.size() != x.shape()[0])
    throw ShapeError("augment::inverse_each: " + std::to_string(ks.size()) + " element indices for " +
                     std::to_string(x.shape()[0]) + " images");
  detail::run_batch<true>(g, x, ks.size(), [ks](std::size_t i) { return static_cast<long long>(ks[i]); }, y,
                          "augment::inverse_each");
}

/// n element indices drawn uniformly from the group, ks[i] from counter i of
/// `rng` (reproducible at any thread count). This is Eq. 4's random r per sample.
template <AugmentationGroup G>
std::vector<int> random_elements(const G& g, const CounterRng& rng, std::size_t n) {
  std::vector<int> ks(n);
  for (std::size_t i = 0; i < n; ++i) ks[i] = static_cast<int>(rng.uniform_int(i, static_cast<std::uint32_t>(g.size())));
  return ks;
}

/// Member forms of the batch helpers, so that `g.apply(x, k, y)` reads naturally.
/// Groups derive from GroupBase<Self> (CRTP).
template <class Derived>
struct GroupBase {
  template <class T>
  void apply(const Tensor4<T>& x, std::size_t k, Tensor4<T>& y) const { augment::apply(self(), x, k, y); }
  template <class T>
  void apply_inverse(const Tensor4<T>& x, std::size_t k, Tensor4<T>& y) const { augment::apply_inverse(self(), x, k, y); }
  template <class T>
  void apply_each(const Tensor4<T>& x, std::span<const int> ks, Tensor4<T>& y) const {
    augment::apply_each(self(), x, ks, y);
  }
  template <class T>
  void inverse_each(const Tensor4<T>& x, std::span<const int> ks, Tensor4<T>& y) const {
    augment::inverse_each(self(), x, ks, y);
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

}  // namespace scoreood::augment
