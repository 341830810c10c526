#include <catch2/catch.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/nn/checkpoint.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

using namespace scoreood;
namespace fs = std::filesystem;

namespace {

/// A tiny "network": conv1.weight [C,1,3,3], conv1.bias [C], norm.embed [10, 3C].
template <class T>
void build(nn::ParameterStore<T>& s, std::size_t C, std::uint64_t seed = 1) {
  s.add("conv1.weight", {C, 1, 3, 3});
  s.add("conv1.bias", {C});
  s.add("norm.embed", {10, 3 * C});
  CounterRng r(seed);
  for (std::size_t i = 0; i < s.count(); ++i) s.values()[i] = T(r.normal(i));
}

fs::path tmp_path(const std::string& name) {
  return fs::temp_directory_path() / ("scoreood_ckpt_" + std::to_string(::getpid()) + "_" + name);
}

}  // namespace

TEST_CASE("parameters round-trip through a ByteWriter body", "[checkpoint]") {
  nn::ParameterStore<float> a, b;
  build(a, 4, 1);
  build(b, 4, 2);
  REQUIRE(a.values()[0] != b.values()[0]);
  io::ByteWriter w;
  w.put_string("SmallUNet width=4");  // a net writes its architecture first
  nn::save_parameters(w, a);
  io::ByteReader r(w.bytes(), "mem");
  CHECK(r.get_string() == "SmallUNet width=4");
  nn::load_parameters(r, b);
  CHECK(r.at_end());
  for (std::size_t i = 0; i < a.count(); ++i) CHECK(a.values()[i] == b.values()[i]);
}

TEST_CASE("a float checkpoint loads into a double store and back", "[checkpoint]") {
  nn::ParameterStore<float> f;
  nn::ParameterStore<double> d;
  build(f, 3, 5);
  build(d, 3, 6);
  io::ByteWriter w;
  nn::save_parameters(w, f);
  io::ByteReader r(w.bytes(), "mem");
  nn::load_parameters(r, d);
  for (std::size_t i = 0; i < f.count(); ++i) CHECK(d.values()[i] == double(f.values()[i]));
  io::ByteWriter w2;
  nn::save_parameters(w2, d);
  nn::ParameterStore<float> f2;
  build(f2, 3, 7);
  io::ByteReader r2(w2.bytes(), "mem2");
  nn::load_parameters(r2, f2);
  for (std::size_t i = 0; i < f.count(); ++i) CHECK(f2.values()[i] == f.values()[i]);
}

TEST_CASE("a checkpoint of another architecture is refused, naming the first mismatch", "[checkpoint]") {
  nn::ParameterStore<float> big, small;
  build(big, 64);
  build(small, 32, 9);
  const std::vector<float> before(small.values().begin(), small.values().end());
  io::ByteWriter w;
  nn::save_parameters(w, big);
  io::ByteReader r(w.bytes(), "model.sood");
  CHECK_THROWS_WITH(nn::load_parameters(r, small),
                    Catch::Contains("model.sood") && Catch::Contains("expected conv1.weight [32,1,3,3], file has [64,1,3,3]"));
  CHECK(std::equal(before.begin(), before.end(), small.values().begin()));  // untouched

  SECTION("renamed tensor") {
    nn::ParameterStore<float> other;
    other.add("conv1.weight", {64, 1, 3, 3});
    other.add("conv1.b", {64});
    other.add("norm.embed", {10, 192});
    io::ByteReader r2(w.bytes(), "m");
    CHECK_THROWS_WITH(nn::load_parameters(r2, other),
                      Catch::Contains("tensor #1") && Catch::Contains("expected conv1.b [64]") &&
                          Catch::Contains("file has conv1.bias [64]"));
  }
  SECTION("fewer or more tensors") {
    nn::ParameterStore<float> more;
    build(more, 64);
    more.add("extra.weight", {2});
    io::ByteReader r3(w.bytes(), "m");
    CHECK_THROWS_WITH(nn::load_parameters(r3, more), Catch::Contains("first missing: extra.weight [2]"));
    nn::ParameterStore<float> fewer;
    fewer.add("conv1.weight", {64, 1, 3, 3});
    io::ByteReader r4(w.bytes(), "m");
    CHECK_THROWS_WITH(nn::load_parameters(r4, fewer), Catch::Contains("first extra: conv1.bias"));
  }
  SECTION("not a parameter block") {
    io::ByteWriter junk;
    junk.put_string("adam");
    io::ByteReader r5(junk.bytes(), "m");
    CHECK_THROWS_AS(nn::load_parameters(r5, small), FormatError);
  }
}

TEST_CASE("parameter files: round trip, truncation and corruption", "[checkpoint]") {
  nn::ParameterStore<float> a, b;
  build(a, 8, 1);
  build(b, 8, 2);
  const fs::path p = tmp_path("params.sood");
  nn::save_parameters_file(p, a);
  nn::load_parameters_file(p, b);
  for (std::size_t i = 0; i < a.count(); ++i) CHECK(a.values()[i] == b.values()[i]);

  std::vector<char> bytes;
  {
    std::ifstream is(p, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(is), {});
  }
  auto write = [&](const fs::path& q, const std::vector<char>& data) {
    std::ofstream os(q, std::ios::binary | std::ios::trunc);
    os.write(data.data(), std::streamsize(data.size()));
  };
  const fs::path q = tmp_path("bad.sood");
  nn::ParameterStore<float> c;
  build(c, 8, 3);
  const float c0 = c.values()[0];

  std::vector<char> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(bytes.size() / 2));
  write(q, cut);
  CHECK_THROWS_AS(nn::load_parameters_file(q, c), FormatError);
  std::vector<char> flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x10;
  write(q, flipped);
  CHECK_THROWS_WITH(nn::load_parameters_file(q, c), Catch::Contains("checksum"));
  CHECK(c.values()[0] == c0);
  CHECK_THROWS_WITH(nn::load_parameters_file(p, c, "scoreood.detector"), Catch::Contains("expected a 'scoreood.detector'"));
  CHECK_THROWS_WITH(nn::load_parameters_file(tmp_path("missing.sood"), c), Catch::Contains("no such file"));
  fs::remove(p);
  fs::remove(q);
}
