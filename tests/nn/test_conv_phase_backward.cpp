// Conv2d<float> backward of strided and 1x1 convolutions (the phase-plane path of
// cpu/tiered/phase_backward.hpp on the AVX-512 tier, im2col otherwise) and of wide
// stride-1 ones against direct double loops: odd sizes, batch 1 and batches larger than
// the thread count, with and without bias, paddings from none to larger than the kernel,
// dilation, strides 1, 2 and 3.
#include <catch2/catch.hpp>
#include <scoreood/cpu/kernels.hpp>
#include <scoreood/nn/layers/conv2d.hpp>

#include "conv_reference.hpp"
#include "gradcheck.hpp"

#include <cmath>
#include <limits>
#include <omp.h>
#include <string>
#include <vector>

using namespace scoreood;
using scoreood::testing::fill_normal;

namespace {

using Spec = nn::Conv2d<float>::Spec;

/// max |a - b| relative to max(1, max |b|): indexing errors give O(1), rounding ~1e-6.
template <class A>
double rel_err(const A* a, const double* b, std::size_t size) {
  double d = 0, scale = 1;
  for (std::size_t i = 0; i < size; ++i) {
    const double v = double(a[i]);
    if (!std::isfinite(v)) return std::numeric_limits<double>::infinity();
    d = std::max(d, std::abs(v - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return d / scale;
}

struct Case {
  Shape4 in;
  Spec spec;
};

std::string describe(const Case& c) {
  const auto& s = c.spec;
  return "x " + to_string(c.in) + " out " + std::to_string(s.out) + " k" + std::to_string(s.kernel) + " s" +
         std::to_string(s.stride) + " p" + std::to_string(s.padding) + " d" + std::to_string(s.dilation) +
         (s.bias ? " bias" : " nobias");
}

/// Runs backward (and backward_params) on one case and compares with the reference.
void check_case(const Case& c, std::uint64_t seed) {
  INFO(describe(c));
  nn::ParameterStore<float> store;
  nn::Conv2d<float> conv(store, "c", c.spec, CounterRng(31, seed));
  // The direct paths these cases are about: Winograd (3x3 "same", dilated too) has its own test.
  conv.set_algorithm(nn::Conv2d<float>::Algorithm::direct);
  Tensor4<float> x = xt::empty<float>(c.in), y;
  fill_normal(x, CounterRng(32, seed));
  conv.forward(x, y);
  Tensor4<float> dy = xt::empty<float>(shape_of(y));
  fill_normal(dy, CounterRng(33, seed));
  // dx must be overwritten everywhere; parameter gradients accumulated into.
  Tensor4<float> dx = xt::empty<float>(c.in);
  std::fill(dx.begin(), dx.end(), std::numeric_limits<float>::quiet_NaN());
  for (auto& g : store.grads()) g = 0.5f;
  conv.backward(dy, dx);
  Tensor4<double> rdx;
  std::vector<double> rdw, rdb;
  testing::naive_backward(x, dy, conv, rdx, rdw, rdb);
  REQUIRE(shape_of(dx) == c.in);
  CHECK(rel_err(dx.data(), rdx.data(), rdx.size()) < 1e-5);
  for (auto& v : rdw) v += 0.5;
  for (auto& v : rdb) v += 0.5;
  CHECK(rel_err(conv.weight().grad(), rdw.data(), rdw.size()) < 1e-5);
  if (c.spec.bias) CHECK(rel_err(conv.bias().grad(), rdb.data(), rdb.size()) < 1e-5);
  // Without dx: the same parameter gradients.
  store.zero_grad();
  conv.backward_params(dy);
  for (auto& v : rdw) v -= 0.5;
  CHECK(rel_err(conv.weight().grad(), rdw.data(), rdw.size()) < 1e-5);
}

}  // namespace

TEST_CASE("Strided and 1x1 Conv2d<float> backward matches direct loops on SmallUNet-like shapes",
          "[conv][phase]") {
  // The shapes SmallUNet trains with (fewer channels), on odd sizes too; batches 1 and 5 (> threads).
  const std::vector<Case> cases = {
      {{5, 8, 28, 28}, {8, 16, 3, 2, -1, 1, true}},   {{1, 8, 28, 28}, {8, 16, 3, 2, -1, 1, false}},
      {{5, 16, 14, 14}, {16, 16, 3, 2, -1, 1, true}}, {{1, 16, 14, 14}, {16, 16, 3, 2, -1, 1, true}},
      {{5, 8, 28, 28}, {8, 16, 1, 2, -1, 1, true}},   {{5, 16, 14, 14}, {16, 16, 1, 2, -1, 1, false}},
      {{5, 16, 14, 14}, {16, 8, 1, 1, -1, 1, true}},  {{1, 9, 7, 7}, {9, 10, 1, 1, -1, 1, false}},
      {{5, 6, 7, 7}, {6, 9, 3, 2, -1, 1, true}},      {{3, 5, 9, 11}, {5, 11, 3, 2, -1, 1, true}},
      {{3, 5, 9, 11}, {5, 11, 1, 2, -1, 1, true}},    {{4, 3, 11, 9}, {3, 12, 3, 2, 0, 1, false}},
      {{6, 7, 37, 35}, {7, 9, 3, 2, -1, 1, true}},    {{2, 7, 35, 36}, {7, 9, 1, 2, 0, 1, true}},
  };
  std::uint64_t seed = 0;
  for (const auto& c : cases) check_case(c, seed++);
}

TEST_CASE("Strided and 1x1 Conv2d<float> backward matches direct loops over kernels, paddings, dilations",
          "[conv][phase]") {
  std::uint64_t seed = 100;
  int checked = 0;
  for (std::size_t k : {1, 2, 3, 5})
    for (std::size_t s : {1, 2, 3})
      for (std::size_t d : {1, 2, 3})
        for (std::ptrdiff_t p : {-1, 0, 1, 3, 5}) {
          if (k == 1 && d > 1) continue;
          const std::size_t pad = p < 0 ? d * (k - 1) / 2 : std::size_t(p);
          // Stride-1 convolutions with k > 1 take the in-place stride-1 path unless padded past the kernel.
          if (s == 1 && k > 1 && (k - 1) * d >= pad) continue;
          const std::size_t span = d * (k - 1) + 1;
          const std::size_t minimal = span > 2 * pad ? span - 2 * pad : 1;
          for (const auto& hw : {std::pair<std::size_t, std::size_t>{7, 7}, {9, 11}, {minimal, minimal + 1}}) {
            if (hw.first < minimal || hw.second < minimal) continue;
            const std::size_t n = 1 + std::size_t(seed % 3) * 2;  // 1, 3 or 5
            const Case c{{n, 2 + seed % 4, hw.first, hw.second},
                         {2 + seed % 4, 3 + seed % 7, k, s, p, d, seed % 2 == 0}};
            check_case(c, seed++);
            ++checked;
          }
        }
  CHECK(checked > 150);
}

TEST_CASE("Strided Conv2d<float> backward matches direct loops for every output-channel blocking", "[conv][phase]") {
  // The filter kernel holds 16, 32, 48 or 64 output channels per register tile and splits wider
  // layers into blocks of 64; ragged counts leave padded lanes that must not leak into dW.
  std::uint64_t seed = 500;
  for (const std::size_t out : {std::size_t(1), std::size_t(17), std::size_t(24), std::size_t(40), std::size_t(64),
                                std::size_t(80), std::size_t(130)})
    for (const std::size_t k : {std::size_t(1), std::size_t(3)}) {
      check_case({{3, 5, 9, 7}, {5, out, k, 2, -1, 1, true}}, seed++);
      check_case({{2, 70, 6, 6}, {70, out, k, 2, -1, 1, false}}, seed++);
    }
}

TEST_CASE("Stride-1 Conv2d<float> backward with many outputs matches direct loops", "[conv][phase]") {
  // Wide stride-1 layers (SmallUNet / NcsnRefineNet-like, fewer pixels): dilations 1, 2, 4,
  // same and valid padding, odd sizes, batch 1 and batches larger than the thread count.
  const std::vector<Case> cases = {
      {{5, 8, 14, 14}, {8, 16, 3, 1, -1, 1, true}},   {{1, 16, 7, 7}, {16, 24, 3, 1, -1, 1, false}},
      {{3, 12, 9, 11}, {12, 64, 3, 1, -1, 2, true}},  {{2, 20, 14, 14}, {20, 70, 3, 1, -1, 4, false}},
      {{4, 6, 11, 9}, {6, 32, 3, 1, 0, 1, true}},     {{3, 5, 12, 13}, {5, 17, 5, 1, -1, 1, true}},
      {{5, 32, 7, 7}, {32, 32, 3, 1, -1, 1, true}},
  };
  std::uint64_t seed = 700;
  for (const auto& c : cases) check_case(c, seed++);
}

TEST_CASE("Strided Conv2d<float> backward is the same on one thread and on all threads", "[conv][phase]") {
  for (const std::size_t k : {std::size_t(1), std::size_t(3)}) {
    nn::ParameterStore<float> store;
    nn::Conv2d<float> conv(store, "c", {8, 16, k, 2}, CounterRng(5));
    Tensor4<float> x = xt::empty<float>({7, 8, 15, 13}), y, dx1, dx2;
    fill_normal(x, CounterRng(6));
    conv.forward(x, y);
    Tensor4<float> dy = xt::empty<float>(shape_of(y));
    fill_normal(dy, CounterRng(7));
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    conv.backward(dy, dx1);
    std::vector<float> g1(store.grads().begin(), store.grads().end());
    store.zero_grad();
    omp_set_num_threads(std::max(2, saved));
    conv.backward(dy, dx2);
    omp_set_num_threads(saved);
    double ddx = 0, dg = 0;
    for (std::size_t i = 0; i < dx1.size(); ++i) ddx = std::max(ddx, double(std::abs(dx1.data()[i] - dx2.data()[i])));
    for (std::size_t i = 0; i < g1.size(); ++i) dg = std::max(dg, double(std::abs(g1[i] - store.grad_data()[i])));
    CHECK(ddx == 0.0);  // each image's dx is computed the same way on any thread
    CHECK(dg < 1e-4);   // the reduction order differs
  }
}
