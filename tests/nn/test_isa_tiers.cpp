// The ISA tiers of the CPU kernels (cpu/isa.hpp, cpu/kernels.hpp): names and
// errors, switching, and the tiers agreeing with each other on a whole
// SmallUNet (forward and parameter gradients) at training sizes, where
// every convolution path of each tier runs (Winograd, padded offsets, phase
// planes on AVX-512; padded offsets and im2col on AVX2; im2col on baseline).
#include <catch2/catch.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/cpu/isa.hpp>
#include <scoreood/nn/nets/small_unet.hpp>

#include "../isa_tiers.hpp"
#include "gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

using namespace scoreood;
namespace isa = cpu::isa;

TEST_CASE("ISA tiers: names round-trip, unknown names and missing tiers are refused", "[isa]") {
  for (auto t : {isa::Tier::baseline, isa::Tier::avx2, isa::Tier::avx512}) CHECK(isa::parse(isa::name(t)) == t);
  CHECK_THROWS_WITH(isa::parse("sse9"), Catch::Contains("'sse9' is not a tier (avx512, avx2 or baseline)"));
  CHECK(isa::supported(isa::Tier::baseline));
  CHECK(isa::supported(isa::detected()));
  if (!isa::supported(isa::Tier::avx512))
    CHECK_THROWS_WITH(isa::set_active(isa::Tier::avx512), Catch::Contains("this CPU cannot run tier avx512"));
  const isa::Tier before = isa::active();
  {
    const isa::ScopedTier s(isa::Tier::baseline);
    CHECK(isa::active() == isa::Tier::baseline);
  }
  CHECK(isa::active() == before);
}

namespace {
struct Pass {
  Tensor4<float> y;
  std::vector<float> grads;
};

/// One training forward and backward of a width-16 SmallUNet on 28x28 images, on the active tier.
Pass run_pass() {
  nn::SmallUNet<backend::cpu, float> net({.channels = 1, .image_size = 28, .width = 16, .num_levels = 4}, 5);
  Tensor4<float> x = xt::empty<float>({std::size_t(3), std::size_t(1), std::size_t(28), std::size_t(28)});
  testing::fill_uniform(x, CounterRng(9, 1), 0.0, 1.0);
  const std::vector<int> levels{0, 3, 1};
  Pass p;
  p.y = net.forward(x, levels);
  Tensor4<float> dy = xt::empty<float>(p.y.shape());
  testing::fill_uniform(dy, CounterRng(9, 2), -1.0, 1.0);
  net.parameters().zero_grad();
  net.backward(dy);
  const auto& store = net.parameters();
  p.grads.assign(store.grad_data(), store.grad_data() + store.count());
  return p;
}

/// max |a - b| / max |b|.
template <class A, class B>
double rel_diff(const A& a, const B& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < std::size_t(b.size()); ++i) {
    num = std::max(num, std::abs(double(a.data()[i]) - double(b.data()[i])));
    den = std::max(den, std::abs(double(b.data()[i])));
  }
  return den > 0 ? num / den : num;
}
}  // namespace

TEST_CASE("Every ISA tier of this CPU gives the baseline tier's SmallUNet forward and gradients", "[isa]") {
  Pass ref;
  {
    const isa::ScopedTier s(isa::Tier::baseline);
    ref = run_pass();
  }
  for (auto t : testing::cpu_tiers()) {
    const isa::ScopedTier s(t);
    INFO("tier " << isa::name(t));
    const Pass p = run_pass();
    REQUIRE(p.y.shape() == ref.y.shape());
    // Float sums in another order (and Winograd's transforms on AVX-512): a few 1e-6 relative.
    CHECK(rel_diff(p.y, ref.y) < 1e-4);
    CHECK(rel_diff(p.grads, ref.grads) < 1e-4);
    if (t == isa::Tier::baseline) CHECK(p.grads == ref.grads);  // the same tier twice: bit for bit
  }
}
