// OOD transforms: rotations, hflip, patch shuffle (permutation of intact
// patches, per-image, reproducible), default patch sizes and name lookup.
#include <catch2/catch.hpp>
#include <scoreood/augment/ood_transforms.hpp>

#include <omp.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

using namespace scoreood;
using namespace scoreood::augment;

namespace {
Images random_images(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::uint64_t seed) {
  Images x = Images::from_shape({n, c, h, w});
  const CounterRng rng(seed);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform(i);
  return x;
}
bool same(const Images& a, const Images& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}
/// Patch p (row-major over the grid) of image n, all channels, as a vector.
std::vector<float> patch(const Images& x, std::size_t n, std::size_t p, std::size_t ph, std::size_t pw) {
  const auto s = shape_of(x);
  const std::size_t gw = s[3] / pw, py = p / gw, px = p % gw;
  std::vector<float> out;
  for (std::size_t c = 0; c < s[1]; ++c)
    for (std::size_t y = 0; y < ph; ++y)
      for (std::size_t xx = 0; xx < pw; ++xx) out.push_back(x(n, c, py * ph + y, px * pw + xx));
  return out;
}
}  // namespace

TEST_CASE("rotate: numpy convention, any integer of quarter turns", "[ood][rotate]") {
  const auto x = random_images(3, 2, 7, 7, 1);
  const Images r1 = rotate(x, 1);
  bool ok = true;
  for (std::size_t n = 0; n < 3; ++n)
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < 7; ++i)
        for (std::size_t j = 0; j < 7; ++j) ok = ok && r1(n, c, i, j) == x(n, c, j, 6 - i);
  CHECK(ok);
  CHECK(same(rotate(x, 0), x));
  CHECK(same(rotate(x, 4), x));
  CHECK(same(rotate(x, -1), rotate(x, 3)));
  CHECK(same(rotate(x, 5), r1));
  CHECK(same(rotate(rotate(rotate(r1, 1), 1), 1), x));
  CHECK(same(apply_transform(x, "rot90", 0), r1));
  CHECK(same(apply_transform(x, "rot180", 0), rotate(x, 2)));
  CHECK(same(apply_transform(x, "rot270", 0), rotate(x, 3)));
  CHECK_THROWS_AS(rotate(random_images(1, 1, 4, 5, 0), 1), ShapeError);
  CHECK(rotate(random_images(1, 1, 4, 5, 0), 2).shape()[3] == 5);
}

TEST_CASE("hflip mirrors left-right and is an involution", "[ood][hflip]") {
  const auto x = random_images(2, 3, 4, 5, 2);
  const Images f = apply_transform(x, "hflip", 0);
  bool ok = true;
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 5; ++j) ok = ok && f(n, c, i, j) == x(n, c, i, 4 - j);
  CHECK(ok);
  CHECK(same(hflip(f), x));
}

TEST_CASE("default_patch gives the paper's 14x7 and 16x8 patches", "[ood][patch]") {
  CHECK(default_patch(28, 28).h == 14);
  CHECK(default_patch(28, 28).w == 7);
  CHECK(default_patch(32, 32).h == 16);
  CHECK(default_patch(32, 32).w == 8);
}

TEST_CASE("patch_shuffle permutes intact patches, per image, reproducibly", "[ood][patch]") {
  const std::size_t N = 100, C = 3, H = 32, W = 32;  // 307k values: the parallel path runs
  const auto x = random_images(N, C, H, W, 3);
  const auto [ph, pw] = default_patch(H, W);
  const Images y = patch_shuffle(x, 42);
  REQUIRE(shape_of(y) == shape_of(x));
  std::set<std::vector<std::size_t>> perms;
  for (std::size_t n = 0; n < N; ++n) {
    // Every output patch equals exactly one input patch, each used once.
    std::map<std::vector<float>, std::size_t> in;
    for (std::size_t p = 0; p < 8; ++p) in[patch(x, n, p, ph, pw)] = p;
    REQUIRE(in.size() == 8);
    std::vector<std::size_t> perm;
    for (std::size_t p = 0; p < 8; ++p) {
      const auto it = in.find(patch(y, n, p, ph, pw));
      REQUIRE(it != in.end());
      perm.push_back(it->second);
    }
    CHECK(std::set<std::size_t>(perm.begin(), perm.end()).size() == 8);
    bool identity = true;
    for (std::size_t p = 0; p < 8; ++p) identity = identity && perm[p] == p;
    CHECK_FALSE(identity);
    perms.insert(perm);
  }
  CHECK(perms.size() >= 95);  // each image draws its own permutation (8! = 40320 choices)
  // Same seed, same result (at any thread count); another seed differs.
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const Images y1 = patch_shuffle(x, 42);
  omp_set_num_threads(before);
  CHECK(same(y1, y));
  const Images other = patch_shuffle(x, 43);
  CHECK_FALSE(same(other, y));
  CHECK(same(apply_transform(x, "patch_shuffle", 42), y));
  // The pixel values are only moved.
  std::vector<float> a(x.begin(), x.end()), b(y.begin(), y.end());
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  CHECK(a == b);
  // A prefix of the set is shuffled exactly as in the full set (per-image streams).
  Images head = Images::from_shape({5, C, H, W});
  std::copy_n(x.data(), head.size(), head.data());
  const Images yh = patch_shuffle(head, 42);
  CHECK(std::equal(yh.begin(), yh.end(), y.data()));
}

TEST_CASE("patch_shuffle on 28x28 gray uses 14x7 patches; bad sizes are refused", "[ood][patch]") {
  const auto x = random_images(4, 1, 28, 28, 9);
  const Images y = patch_shuffle(x, 1);
  for (std::size_t n = 0; n < 4; ++n) {
    std::set<std::vector<float>> in, out;
    for (std::size_t p = 0; p < 8; ++p) {
      in.insert(patch(x, n, p, 14, 7));
      out.insert(patch(y, n, p, 14, 7));
    }
    CHECK(in == out);
  }
  CHECK_THROWS_AS(patch_shuffle(x, 5, 7, 0), ShapeError);
  CHECK_THROWS_AS(patch_shuffle(random_images(1, 1, 27, 28, 0), 0), ShapeError);
  CHECK_THROWS_AS(patch_shuffle(x, 0, 7, 0), ValueError);
}

TEST_CASE("apply_transform rejects unknown names and lists the valid ones", "[ood]") {
  const auto x = random_images(1, 1, 4, 4, 0);
  CHECK_THROWS_AS(apply_transform(x, "rot45", 0), ValueError);
  CHECK_THROWS_WITH(apply_transform(x, "rot45", 0),
                    Catch::Contains("rot45") && Catch::Contains("rot90, rot180, rot270, patch_shuffle, hflip"));
}
