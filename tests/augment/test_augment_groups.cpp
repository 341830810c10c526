// Augmentation groups: numpy's rot90 convention, group laws (inverses,
// closure, four quarter turns), patch permutations, and the batch helpers.
#include <catch2/catch.hpp>
#include <scoreood/augment.hpp>

#include <omp.h>

#include <algorithm>
#include <set>
#include <vector>

using namespace scoreood;
using namespace scoreood::augment;

static_assert(AugmentationGroup<Identity>);
static_assert(AugmentationGroup<Rot4>);
static_assert(AugmentationGroup<Dihedral8>);
static_assert(AugmentationGroup<PatchPermutations>);
static_assert(!AugmentationGroup<int>);

namespace {
template <class T>
Tensor4<T> random_images(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::uint64_t seed) {
  Tensor4<T> x = Tensor4<T>::from_shape({n, c, h, w});
  const CounterRng rng(seed);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<T>(rng.uniform(i));
  return x;
}
template <class A, class B>
bool same(const A& a, const B& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}
/// One C×H×W image through element k (or its inverse) of g.
template <class G, class T>
std::vector<T> one(const G& g, const std::vector<T>& img, std::size_t C, std::size_t H, std::size_t W, std::size_t k,
                   bool inv = false) {
  std::vector<T> out(img.size());
  if (inv) g.inverse_image(img.data(), out.data(), C, H, W, k);
  else g.apply_image(img.data(), out.data(), C, H, W, k);
  return out;
}
const std::vector<int> k3x3 = {1, 2, 3, 4, 5, 6, 7, 8, 9};
}  // namespace

TEST_CASE("Rot4 matches numpy's rot90 on a hand-checked 3x3 image", "[augment][rot4]") {
  // np.rot90(np.arange(1, 10).reshape(3, 3), k) for k = 0..3.
  const std::vector<std::vector<int>> expected = {
      {1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 6, 9, 2, 5, 8, 1, 4, 7}, {9, 8, 7, 6, 5, 4, 3, 2, 1}, {7, 4, 1, 8, 5, 2, 9, 6, 3}};
  Rot4 g;
  for (std::size_t k = 0; k < 4; ++k) CHECK(one(g, k3x3, 1, 3, 3, k) == expected[k]);
}

TEST_CASE("Dihedral8 matches numpy: rot90(fliplr(img), k - 4) for k >= 4", "[augment][dihedral8]") {
  const std::vector<std::vector<int>> expected = {
      {1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 6, 9, 2, 5, 8, 1, 4, 7}, {9, 8, 7, 6, 5, 4, 3, 2, 1}, {7, 4, 1, 8, 5, 2, 9, 6, 3},
      {3, 2, 1, 6, 5, 4, 9, 8, 7}, {1, 4, 7, 2, 5, 8, 3, 6, 9}, {7, 8, 9, 4, 5, 6, 1, 2, 3}, {9, 6, 3, 8, 5, 2, 7, 4, 1}};
  Dihedral8 g;
  for (std::size_t k = 0; k < 8; ++k) CHECK(one(g, k3x3, 1, 3, 3, k) == expected[k]);
}

TEMPLATE_TEST_CASE("Rotations follow the numpy index convention on multi-channel images", "[augment][rot4]", float,
                   double) {
  const std::size_t C = 3, N = 6;
  const auto x = random_images<TestType>(2, C, N, N, 11);
  Rot4 g;
  Tensor4<TestType> y1, y2, y3;
  g.apply(x, 1, y1);
  g.apply(x, 2, y2);
  g.apply(x, 3, y3);
  bool ok = true;
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t i = 0; i < N; ++i)
        for (std::size_t j = 0; j < N; ++j) {
          ok = ok && y1(n, c, i, j) == x(n, c, j, N - 1 - i);
          ok = ok && y2(n, c, i, j) == x(n, c, N - 1 - i, N - 1 - j);
          ok = ok && y3(n, c, i, j) == x(n, c, N - 1 - j, i);
        }
  CHECK(ok);
  // 180 degrees works on non-square images too: np.rot90(arange(6).reshape(2, 3), 2).
  const std::vector<int> r = one(g, std::vector<int>{0, 1, 2, 3, 4, 5}, 1, 2, 3, 2);
  CHECK(r == std::vector<int>{5, 4, 3, 2, 1, 0});
}

TEMPLATE_TEST_CASE("Four quarter turns are the identity; turns compose additively", "[augment][rot4]", float, double) {
  const auto x = random_images<TestType>(3, 2, 5, 5, 3);
  Rot4 g;
  Tensor4<TestType> y = x;
  for (int t = 0; t < 4; ++t) {
    CHECK((t == 0) == same(y, x));
    g.apply(y, 1, y);  // in place is allowed
  }
  CHECK(same(y, x));
  for (std::size_t a = 0; a < 4; ++a)
    for (std::size_t b = 0; b < 4; ++b) {
      Tensor4<TestType> ab, direct;
      g.apply(x, a, ab);
      g.apply(ab, b, ab);
      g.apply(x, (a + b) % 4, direct);
      CHECK(same(ab, direct));
    }
}

TEMPLATE_TEST_CASE("Every element of every group is undone by inverse_image and by inverse(k)", "[augment][group]",
                   float, double) {
  const std::size_t C = 2, H = 8, W = 8;
  const auto x = random_images<TestType>(1, C, H, W, 5);
  const std::vector<TestType> img(x.begin(), x.end());
  auto check_group = [&](const auto& g, bool index_inverse) {
    INFO("group " << g.name);
    for (std::size_t k = 0; k < g.size(); ++k) {
      INFO("element " << k);
      const auto y = one(g, img, C, H, W, k);
      CHECK(one(g, y, C, H, W, k, /*inv=*/true) == img);
      if (index_inverse) CHECK(one(g, y, C, H, W, g.inverse(k)) == img);
      if (k == 0) CHECK(y == img);  // element 0 is the identity
      else CHECK(y != img);
    }
  };
  check_group(Identity{}, true);
  check_group(Rot4{}, true);
  check_group(Dihedral8{}, true);
  check_group(PatchPermutations(4, 2, 7, 99), false);
  CHECK(PatchPermutations(4, 2, 7, 99).inverse(0) == 0);
  CHECK_THROWS_AS(PatchPermutations(4, 2, 7, 99).inverse(3), ValueError);
}

TEST_CASE("Dihedral8 is closed: its eight elements are distinct and compose within the set", "[augment][dihedral8]") {
  const auto x = random_images<float>(1, 1, 4, 4, 8);
  const std::vector<float> img(x.begin(), x.end());
  Dihedral8 g;
  std::vector<std::vector<float>> images;
  for (std::size_t k = 0; k < 8; ++k) images.push_back(one(g, img, 1, 4, 4, k));
  CHECK(std::set<std::vector<float>>(images.begin(), images.end()).size() == 8);
  for (std::size_t a = 0; a < 8; ++a)
    for (std::size_t b = 0; b < 8; ++b) {
      const auto ab = one(g, one(g, img, 1, 4, 4, a), 1, 4, 4, b);
      CHECK(std::find(images.begin(), images.end(), ab) != images.end());
    }
  // Flip-then-rotate elements are involutions, rotations invert to the opposite turn.
  CHECK(g.inverse(1) == 3);
  CHECK(g.inverse(2) == 2);
  for (std::size_t k = 4; k < 8; ++k) CHECK(g.inverse(k) == k);
}

TEST_CASE("PatchPermutations: intact patches, distinct fixed permutations, reproducible", "[augment][patch]") {
  const std::size_t C = 2, H = 8, W = 12, ph = 4, pw = 3;  // 2 x 4 = 8 patches
  const auto x = random_images<float>(1, C, H, W, 21);
  const std::vector<float> img(x.begin(), x.end());
  PatchPermutations g(ph, pw, 10, 1234);
  auto patch = [&](const std::vector<float>& v, std::size_t p) {
    std::vector<float> out;
    const std::size_t py = p / (W / pw), px = p % (W / pw);
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t y = 0; y < ph; ++y)
        for (std::size_t xx = 0; xx < pw; ++xx) out.push_back(v[(c * H + py * ph + y) * W + px * pw + xx]);
    return out;
  };
  std::set<std::vector<float>> seen_images;
  for (std::size_t k = 0; k < g.size(); ++k) {
    const auto y = one(g, img, C, H, W, k);
    seen_images.insert(y);
    // Output patch i is input patch perm[i], and perm is a permutation.
    const auto& perm = g.permutation(k, 8);
    CHECK(std::set<std::uint32_t>(perm.begin(), perm.end()).size() == 8);
    for (std::size_t i = 0; i < 8; ++i) CHECK(patch(y, i) == patch(img, perm[i]));
  }
  CHECK(seen_images.size() == g.size());  // all ten elements differ
  // The same seed in another instance gives the same permutations; another seed differs.
  PatchPermutations same_seed(ph, pw, 10, 1234), other(ph, pw, 10, 4321);
  std::size_t differ = 0;
  for (std::size_t k = 0; k < 10; ++k) {
    CHECK(same_seed.permutation(k, 8) == g.permutation(k, 8));
    differ += other.permutation(k, 8) != g.permutation(k, 8);
  }
  CHECK(differ >= 8);
  // Copies share the cache and agree.
  const PatchPermutations copy = g;
  CHECK(copy.permutation(3, 8) == g.permutation(3, 8));
  // A grid of two patches has only one non-identity permutation: element 1 is it.
  PatchPermutations tiny(4, 6, 2, 0);
  CHECK(tiny.permutation(1, 2) == std::vector<std::uint32_t>{1, 0});
}

TEST_CASE("Shape and index errors", "[augment][errors]") {
  const auto rect = random_images<float>(2, 1, 4, 6, 1);
  Tensor4<float> y;
  CHECK_THROWS_AS(Rot4{}.apply(rect, 1, y), ShapeError);
  CHECK_THROWS_AS(Rot4{}.apply(rect, 3, y), ShapeError);
  CHECK_NOTHROW(Rot4{}.apply(rect, 2, y));
  CHECK_THROWS_AS(Dihedral8{}.apply(rect, 5, y), ShapeError);
  CHECK_NOTHROW(Dihedral8{}.apply(rect, 4, y));
  CHECK_THROWS_AS(Rot4{}.apply(rect, 4, y), ValueError);
  CHECK_THROWS_AS(Dihedral8{}.apply(rect, 8, y), ValueError);
  const std::vector<int> bad = {0, -1};
  CHECK_THROWS_AS(Rot4{}.apply_each(rect, bad, y), ValueError);
  const std::vector<int> three = {0, 2, 2};
  CHECK_THROWS_AS(Rot4{}.apply_each(rect, three, y), ShapeError);
  CHECK_THROWS_AS(PatchPermutations(3, 3, 4, 0).apply(rect, 1, y), ShapeError);  // 4x6 not divisible by 3x3
  CHECK_THROWS_AS(PatchPermutations(0, 3, 4, 0), ValueError);
  CHECK_THROWS_AS(PatchPermutations(2, 3, 0, 0), ValueError);
  CHECK_THROWS_WITH(Rot4{}.apply(rect, 1, y), Catch::Contains("square"));
}

TEMPLATE_TEST_CASE("apply_each agrees with per-sample apply; inverse_each undoes it", "[augment][batch]", float, double) {
  const std::size_t N = 37;
  const auto x = random_images<TestType>(N, 3, 8, 8, 77);
  auto check = [&](const auto& g) {
    INFO("group " << g.name);
    const std::vector<int> ks = random_elements(g, CounterRng(5, 1), N);
    for (int k : ks) REQUIRE((k >= 0 && std::size_t(k) < g.size()));
    Tensor4<TestType> y, back;
    g.apply_each(x, ks, y);
    bool ok = true;
    for (std::size_t i = 0; i < N; ++i) {
      Tensor4<TestType> xi = Tensor4<TestType>::from_shape({1, 3, 8, 8}), yi;
      std::copy_n(x.data() + i * 192, 192, xi.data());
      g.apply(xi, std::size_t(ks[i]), yi);
      ok = ok && std::equal(yi.begin(), yi.end(), y.data() + i * 192);
    }
    CHECK(ok);
    g.inverse_each(y, ks, back);
    CHECK(same(back, x));
    // In place gives the same answer.
    Tensor4<TestType> z = x;
    g.apply_each(z, ks, z);
    CHECK(same(z, y));
    // Same element for all: apply == apply_each with a constant list; apply_inverse undoes apply.
    const std::vector<int> all(N, int(g.size() - 1));
    Tensor4<TestType> a, b, c;
    g.apply(x, g.size() - 1, a);
    g.apply_each(x, all, b);
    CHECK(same(a, b));
    g.apply_inverse(a, g.size() - 1, c);
    CHECK(same(c, x));
  };
  check(Identity{});
  check(Rot4{});
  check(Dihedral8{});
  check(PatchPermutations(4, 2, 6, 3));
}

TEST_CASE("random_elements is reproducible and covers the group uniformly", "[augment][batch]") {
  const auto a = random_elements(Dihedral8{}, CounterRng(9, 2), 8000);
  CHECK(a == random_elements(Dihedral8{}, CounterRng(9, 2), 8000));
  CHECK(a != random_elements(Dihedral8{}, CounterRng(10, 2), 8000));
  std::vector<int> count(8, 0);
  for (int k : a) ++count[std::size_t(k)];
  for (int c : count) CHECK(std::abs(c - 1000) < 150);  // ~4.7 standard deviations
}

TEST_CASE("Batch results do not depend on the number of threads", "[augment][batch]") {
  // Large enough (786k values) for the batch helpers to go parallel.
  const auto x = random_images<float>(256, 3, 32, 32, 4);
  PatchPermutations g(8, 8, 5, 17);
  const auto ks = random_elements(g, CounterRng(1), 256);
  Tensor4<float> y1, y2;
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  g.apply_each(x, ks, y1);
  omp_set_num_threads(std::max(2, before));
  PatchPermutations fresh(8, 8, 5, 17);  // new cache, built concurrently
  fresh.apply_each(x, ks, y2);
  omp_set_num_threads(before);
  CHECK(same(y1, y2));
}
