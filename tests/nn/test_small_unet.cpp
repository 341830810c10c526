#include <catch2/catch.hpp>
#include <scoreood/nn/nets/small_unet.hpp>

#include "gradcheck.hpp"

#include <xtensor/xview.hpp>

#include <cstring>
#include <vector>

using namespace scoreood;
using nn::SmallUNet;

TEST_CASE("SmallUNet at width 32 has the specified size", "[small_unet]") {
  SmallUNet<backend::cpu, float> net({.channels = 1, .image_size = 28, .width = 32, .num_levels = 10});
  CHECK(net.parameter_count() == 295041);
  // ~54 MMAC per image (counted from the layer shapes).
  CHECK(net.macs_per_image() > 53'000'000);
  CHECK(net.macs_per_image() < 55'000'000);
  SmallUNet<backend::cpu, float> rgb({.channels = 3, .image_size = 32, .width = 32, .num_levels = 10});
  CHECK(rgb.parameter_count() == 295041 + 2 * 288 + 2 * 9 * 32 + 2);  // 3-channel conv_in and conv_out
}

TEST_CASE("SmallUNet backward matches finite differences", "[small_unet][gradcheck]") {
  SmallUNet<backend::cpu, double> net({.channels = 1, .image_size = 8, .width = 3, .num_levels = 3}, 7);
  Tensor4<double> x = xt::empty<double>({std::size_t(2), std::size_t(1), std::size_t(8), std::size_t(8)});
  testing::fill_uniform(x, CounterRng(1, 2), 0.0, 1.0);
  const std::vector<int> levels{2, 0};
  auto& store = net.parameters();
  std::vector<testing::GradVar> vars;
  for (const auto& e : store.entries()) {
    vars.push_back({e.name, std::span<double>(store.value_data() + e.offset, e.size),
                    [&store, e] { return std::span<const double>(store.grad_data() + e.offset, e.size); }});
  }
  testing::GradCheckOptions opt;
  opt.max_entries = 12;
  auto rep = testing::gradcheck_vars([&](Tensor4<double>& y) { y = net.forward(x, levels); },
                                     [&](const Tensor4<double>& dy) { net.backward(dy); }, vars, &store, opt);
  INFO(rep.str());
  CHECK(rep.max_rel < 1e-6);
}

TEST_CASE("SmallUNet infer equals the training forward and is per-sample", "[small_unet]") {
  SmallUNet<backend::cpu, float> net({.channels = 1, .image_size = 12, .width = 4, .num_levels = 4}, 3);
  Tensor4<float> x = xt::empty<float>({std::size_t(3), std::size_t(1), std::size_t(12), std::size_t(12)});
  testing::fill_uniform(x, CounterRng(5, 0), 0.0, 1.0);
  const std::vector<int> levels{0, 3, 1};
  Tensor4<float> a = net.forward(x, levels), b;
  net.infer(x, levels, b);
  REQUIRE(a.shape() == b.shape());
  CHECK(xt::allclose(a, b, 1e-5, 1e-6));
  // The second image alone gives the same score: instance norms are per sample.
  Tensor4<float> x1 = xt::view(x, xt::range(1, 2), xt::all(), xt::all(), xt::all()), c;
  const std::vector<int> l1{3};
  net.infer(x1, l1, c);
  CHECK(xt::allclose(xt::view(b, xt::range(1, 2), xt::all(), xt::all(), xt::all()), c, 1e-5, 1e-6));
}

TEST_CASE("SmallUNet save/load round trip is bit-identical; bad input is refused", "[small_unet][checkpoint]") {
  SmallUNet<backend::cpu, float> net({.channels = 1, .image_size = 8, .width = 4, .num_levels = 2}, 11);
  io::ByteWriter w;
  net.save(w);
  SmallUNet<backend::cpu, float> other({.channels = 1, .image_size = 8, .width = 4, .num_levels = 2}, 99);
  io::ByteReader r(w.bytes(), "mem");
  other.load(r);
  Tensor4<float> x = xt::empty<float>({std::size_t(2), std::size_t(1), std::size_t(8), std::size_t(8)});
  testing::fill_uniform(x, CounterRng(2, 0), 0.0, 1.0);
  const std::vector<int> levels{1, 0};
  Tensor4<float> a, b;
  net.infer(x, levels, a);
  other.infer(x, levels, b);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);

  SECTION("a different architecture in the file is adopted") {
    SmallUNet<backend::cpu, float> wide({.channels = 1, .image_size = 8, .width = 6, .num_levels = 2});
    io::ByteReader r2(w.bytes(), "mem");
    wide.load(r2);
    CHECK(wide.config().width == 4);
    CHECK(wide.parameter_count() == net.parameter_count());
  }
  SECTION("truncated") {
    auto bytes = w.bytes();
    bytes.resize(bytes.size() / 2);
    io::ByteReader r3(bytes, "half.sood");
    CHECK_THROWS_AS(other.load(r3), FormatError);
  }
  SECTION("wrong input shape, level count or level value") {
    Tensor4<float> bad = xt::zeros<float>({std::size_t(2), std::size_t(1), std::size_t(9), std::size_t(9)});
    CHECK_THROWS_AS(net.infer(bad, levels, a), ShapeError);
    const std::vector<int> one{0};
    CHECK_THROWS_AS(net.infer(x, one, a), ShapeError);
    const std::vector<int> big{0, 2};
    CHECK_THROWS_AS(net.infer(x, big, a), ValueError);
  }
}
