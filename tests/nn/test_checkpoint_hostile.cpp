// Network, parameter and optimiser blocks that are well framed (a valid
// checksum would pass) but hold absurd sizes or values: each must be refused
// with a FormatError naming the source and the field, before anything large
// is allocated.
#include <catch2/catch.hpp>

#include "../format_error.hpp"
#include <scoreood/core/serialization.hpp>
#include <scoreood/nn/checkpoint.hpp>
#include <scoreood/nn/nets/ncsn_refinenet.hpp>
#include <scoreood/nn/nets/net_file.hpp>
#include <scoreood/nn/nets/small_unet.hpp>
#include <scoreood/nn/optim.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using namespace scoreood;
using Unet = nn::SmallUNet<backend::cpu, float>;
using Ncsn = nn::NcsnRefineNet<backend::cpu, float>;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

using test::format_error;

/// A network block: the header with these sizes, then `tail` (e.g. nothing, or a few bytes).
std::vector<char> net_block(std::string_view name, nn::detail::NetSizes s, std::size_t tail = 0) {
  io::ByteWriter w;
  nn::detail::write_net_header(w, name, s);
  w.bytes().resize(w.bytes().size() + tail, 0);
  return w.bytes();
}

template <class Net>
std::string load_error(const std::vector<char>& bytes, const std::string& source = "hostile.sood") {
  return format_error([&] {
    Net net({.channels = 1, .image_size = 8, .width = 2, .num_levels = 2});
    io::ByteReader r(bytes, source);
    net.load(r);
  });
}
std::string ncsn_load_error(const std::vector<char>& bytes, const std::string& source = "hostile.sood") {
  return format_error([&] {
    Ncsn net({.channels = 1, .image_size = 8, .ngf = 2, .num_levels = 2});
    io::ByteReader r(bytes, source);
    net.load(r);
  });
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("ByteReader reads empty arrays and names the field of a runaway length", "[checkpoint][io]") {
  io::ByteWriter w;
  w.put_vector(std::vector<float>{});
  w.put_vector(std::vector<double>{});
  io::ByteReader r(w.bytes(), "empty.sood");
  // An empty std::vector's data() is null: memcpy(nullptr, p, 0) is undefined
  // behaviour (UBSan reports it), so the copy must be skipped.
  CHECK(r.get_vector<float>().empty());
  std::vector<double> none;
  io::ByteWriter w2;
  w2.put_vector(none);
  io::ByteReader r2(w2.bytes(), "empty.sood");
  r2.get_into(std::span<double>(none), "nothing");
  CHECK(r2.at_end());

  io::ByteWriter big;
  big.put<std::uint64_t>(std::uint64_t(1) << 40);  // 2^40 floats claimed, none there
  io::ByteReader r3(big.bytes(), "big.sood");
  const auto msg = format_error([&] { r3.get_vector<float>("sigmas"); });
  CHECK_THAT(msg, Catch::Contains("big.sood") && Catch::Contains("sigmas") && Catch::Contains("runs past the end"));
}

TEST_CASE("SmallUNet files: sizes are bounded and checked against the file before the network is built",
          "[checkpoint][small_unet]") {
  SECTION("width 2^40 (was std::bad_alloc)") {
    const auto msg = load_error<Unet>(net_block("small-unet", {1, 28, std::uint64_t(1) << 40, 10}));
    CHECK_THAT(msg, Catch::Contains("hostile.sood") && Catch::Contains("width"));
  }
  SECTION("width 1 (was a ValueError from the first norm)") {
    CHECK_THAT(load_error<Unet>(net_block("small-unet", {1, 28, 1, 10}, 64)), Catch::Contains("width"));
  }
  SECTION("channels, image size and levels far out of range") {
    CHECK_THAT(load_error<Unet>(net_block("small-unet", {1u << 20, 8, 2, 2})),
               Catch::Contains("hostile.sood") && Catch::Contains("channels"));
    CHECK_THAT(load_error<Unet>(net_block("small-unet", {1, std::uint64_t(1) << 32, 2, 2})),
               Catch::Contains("image_size"));
    CHECK_THAT(load_error<Unet>(net_block("small-unet", {1, 8, 2, std::uint64_t(1) << 32})),
               Catch::Contains("num_levels"));
    CHECK_THAT(load_error<Unet>(net_block("small-unet", {0, 8, 2, 2})), Catch::Contains("channels"));
  }
  SECTION("an image size no real data has, with a network small enough to fit the file") {
    // 2^20-pixel sides: the parameters do not depend on the image size, so
    // this file would load and only fail (or allocate terabytes) when scoring.
    Unet small({.channels = 1, .image_size = 8, .width = 2, .num_levels = 2});
    io::ByteWriter w;
    nn::detail::write_net_header(w, "small-unet", {1, 1u << 20, 2, 2});
    nn::save_parameters(w, small.parameters());
    CHECK_THAT(load_error<Unet>(w.bytes()), Catch::Contains("image_size"));
  }
  SECTION("width 1000 in a 189-byte file: refused at once, naming the parameter count") {
    // The user's case: 2.4 GB were allocated and filled for seconds before "truncated".
    const auto t0 = std::chrono::steady_clock::now();
    const auto msg = load_error<Unet>(net_block("small-unet", {1, 28, 1000, 10}, 120));
    CHECK(seconds_since(t0) < 0.5);
    CHECK_THAT(msg, Catch::Contains("hostile.sood") && Catch::Contains("width 1000") &&
                        Catch::Contains("parameters") && Catch::Contains("truncated"));
  }
}

TEST_CASE("SmallUNet: the parameter count of a config is known without building it", "[checkpoint][small_unet]") {
  for (std::size_t ch : {1, 3})
    for (std::size_t width : {2, 3, 8, 32})
      for (std::size_t levels : {1, 2, 10}) {
        const nn::SmallUNetConfig c{.channels = ch, .image_size = 8, .width = width, .num_levels = levels};
        Unet net(c);
        INFO("channels " << ch << " width " << width << " levels " << levels);
        CHECK(Unet::count_parameters(c) == net.parameter_count());
      }
  CHECK(Unet::count_parameters({.channels = 1, .image_size = 28, .width = 32, .num_levels = 10}) == 295041);
}

TEST_CASE("NcsnRefineNet files: sizes are bounded and checked against the file before the network is built",
          "[checkpoint][ncsn]") {
  CHECK_THAT(ncsn_load_error(net_block("ncsn", {1, 28, std::uint64_t(1) << 40, 10})),
             Catch::Contains("hostile.sood") && Catch::Contains("ngf"));
  CHECK_THAT(ncsn_load_error(net_block("ncsn", {std::uint64_t(1) << 33, 28, 2, 10})), Catch::Contains("channels"));
  CHECK_THAT(ncsn_load_error(net_block("ncsn", {1, std::uint64_t(1) << 33, 2, 10})), Catch::Contains("image_size"));
  CHECK_THAT(ncsn_load_error(net_block("ncsn", {1, 28, 2, std::uint64_t(1) << 33})), Catch::Contains("num_levels"));
  // ngf 200 is 75 M parameters (300 MB): a short file says so at once.
  const auto t0 = std::chrono::steady_clock::now();
  const auto msg = ncsn_load_error(net_block("ncsn", {1, 28, 200, 10}, 100));
  CHECK(seconds_since(t0) < 0.5);
  CHECK_THAT(msg, Catch::Contains("hostile.sood") && Catch::Contains("ngf 200") && Catch::Contains("truncated"));
}

TEST_CASE("NcsnRefineNet: the parameter count of a config is known without building it", "[checkpoint][ncsn]") {
  for (std::size_t ch : {1, 3})
    for (std::size_t ngf : {2, 3, 5})
      for (std::size_t levels : {1, 4}) {
        const nn::NcsnRefineNetConfig c{.channels = ch, .image_size = 8, .ngf = ngf, .num_levels = levels};
        Ncsn net(c);
        INFO("channels " << ch << " ngf " << ngf << " levels " << levels);
        CHECK(Ncsn::count_parameters(c) == net.parameter_count());
      }
  // NCSN's CondRefineNetDilated at ngf 64, L 10 (tests/data/ncsn_param_count.txt).
  CHECK(Ncsn::count_parameters({.channels = 1, .image_size = 28, .ngf = 64, .num_levels = 10}) == 7638657);
}

TEST_CASE("parameter values must be finite", "[checkpoint]") {
  Unet net({.channels = 1, .image_size = 8, .width = 2, .num_levels = 2}, 3);
  const auto& e = net.parameters().entries()[2];  // the third tensor, named in the error
  net.parameters().values()[e.offset + 1] = kNaN;
  io::ByteWriter w;
  net.save(w);
  const auto msg = load_error<Unet>(w.bytes(), "nan.sood");
  CHECK_THAT(msg, Catch::Contains("nan.sood") && Catch::Contains(e.name) && Catch::Contains("not a finite"));

  // The same through load_parameters directly, with a double file into a float
  // store: 1e300 is finite as a double but infinite once rounded.
  nn::ParameterStore<double> d;
  d.add("w", {3});
  d.values()[2] = 1e300;
  io::ByteWriter w2;
  nn::save_parameters(w2, d);
  nn::ParameterStore<float> f;
  f.add("w", {3});
  io::ByteReader r(w2.bytes(), "big.sood");
  CHECK_THAT(format_error([&] { nn::load_parameters(r, f); }),
             Catch::Contains("big.sood") && Catch::Contains("w[2]"));
  CHECK(f.values()[2] == 0.0f);  // untouched
}

TEST_CASE("optimiser state: moments and EMA weights must be finite", "[checkpoint][optim]") {
  nn::ParameterStore<float> s;
  s.add("w", {4});
  auto adam_block = [](std::vector<float> m, std::vector<float> v) {
    io::ByteWriter w;
    w.put_string("adam");
    w.put<std::uint32_t>(4);
    for (double x : {1e-3, 0.9, 0.999, 1e-8, 0.0, 0.0}) w.put(x);
    w.put<std::uint64_t>(5);
    w.put_vector(m);
    w.put_vector(v);
    return w.bytes();
  };
  auto adam_error = [&](const std::vector<char>& bytes) {
    return format_error([&] {
      nn::Adam<float> a(s);
      io::ByteReader r(bytes, "state.sood");
      a.load(r);
    });
  };
  {  // the well-formed block loads
    nn::Adam<float> a(s);
    const auto ok = adam_block({0.1f, -0.2f, 0, 0}, {0.01f, 0.04f, 0, 0});
    io::ByteReader r(ok, "state.sood");
    a.load(r);
    CHECK(a.steps() == 5);
  }
  CHECK_THAT(adam_error(adam_block({0, kNaN, 0, 0}, {0, 0, 0, 0})),
             Catch::Contains("state.sood") && Catch::Contains("first moment[1]"));
  CHECK_THAT(adam_error(adam_block({0, 0, 0, 0}, {0, 0, std::numeric_limits<float>::infinity(), 0})),
             Catch::Contains("second moment[2]"));
  CHECK_THAT(adam_error(adam_block({0, 0, 0, 0}, {0, 0, 0, -1.0f})),
             Catch::Contains("state.sood") && Catch::Contains("second moment[3]") && Catch::Contains("negative"));

  io::ByteWriter e;
  e.put_string("ema");
  e.put<std::uint32_t>(4);
  e.put<double>(0.999);
  e.put<std::uint64_t>(3);
  e.put_vector(std::vector<float>{1, 2, kNaN, 4});
  nn::Ema<float> ema(s, 0.999);
  io::ByteReader r(e.bytes(), "state.sood");
  CHECK_THAT(format_error([&] { ema.load(r); }), Catch::Contains("state.sood") && Catch::Contains("EMA shadow[2]"));
}
