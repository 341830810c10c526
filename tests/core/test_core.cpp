#include <catch2/catch.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/serialization.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

using namespace scoreood;

TEST_CASE("Philox 4x32-10 matches the Random123 known-answer vectors", "[rng]") {
  // Known-answer test from Random123 (kat_vectors): philox4x32 10 rounds.
  auto z = philox4x32({{0, 0, 0, 0}}, 0, 0);
  CHECK(z.v[0] == 0x6627e8d5u);
  CHECK(z.v[1] == 0xe169c58du);
  CHECK(z.v[2] == 0xbc57ac4cu);
  CHECK(z.v[3] == 0x9b00dbd8u);
  auto f = philox4x32({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  CHECK(f.v[0] == 0x408f276du);
  CHECK(f.v[1] == 0x41c83b0eu);
  CHECK(f.v[2] == 0xa20bc7c6u);
  CHECK(f.v[3] == 0x6d5451fdu);
}

TEST_CASE("CounterRng is a pure function of seed, stream and index", "[rng]") {
  CounterRng a(42, 7), b(42, 7), c(43, 7);
  CHECK(a.normal(1000) == b.normal(1000));
  CHECK(a.normal(1000) != c.normal(1000));
  CHECK(a.substream(1).uniform(3) != a.substream(2).uniform(3));
  // Moments of 200k normals and uniforms.
  double s = 0, s2 = 0, u = 0;
  const int n = 200000;
  std::set<std::uint32_t> seen;
  for (int i = 0; i < n; ++i) {
    const double x = a.normal(i);
    s += x;
    s2 += x * x;
    const float v = a.uniform(i);
    REQUIRE(v > 0.0f);
    REQUIRE(v < 1.0f);
    u += v;
    seen.insert(a.uniform_int(i, 4));
  }
  CHECK(std::abs(s / n) < 0.01);
  CHECK(std::abs(s2 / n - 1.0) < 0.02);
  CHECK(std::abs(u / n - 0.5) < 0.01);
  CHECK(seen.size() == 4);
}

TEST_CASE("containers round-trip and reject damage", "[serialization]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "scoreood_test_core";
  fs::create_directories(dir);
  const fs::path file = dir / "x.sood";
  io::ByteWriter w;
  w.put<std::uint32_t>(7);
  w.put_string("hello");
  std::vector<float> v{1.5f, -2.0f, 3.25f};
  w.put_vector(v);
  io::save_container(file, "test-kind", w);
  CHECK_FALSE(fs::exists(dir / "x.sood.tmp"));

  SECTION("round trip") {
    auto body = io::load_container(file, "test-kind");
    io::ByteReader r(body, file.string());
    CHECK(r.get<std::uint32_t>() == 7);
    CHECK(r.get_string() == "hello");
    CHECK(r.get_vector<float>() == v);
    CHECK(r.at_end());
    CHECK_THROWS_WITH(r.get<float>(), Catch::Contains("truncated"));
  }
  SECTION("wrong kind") {
    CHECK_THROWS_WITH(io::load_container(file, "other"), Catch::Contains("expected a 'other'"));
  }
  SECTION("flipped byte") {
    auto bytes = io::read_file_bytes(file);
    bytes[bytes.size() / 2] ^= 0x40;
    io::write_file_atomic(file, bytes);
    CHECK_THROWS_WITH(io::load_container(file, "test-kind"), Catch::Contains("checksum"));
  }
  SECTION("truncated") {
    auto bytes = io::read_file_bytes(file);
    bytes.resize(bytes.size() - 5);
    io::write_file_atomic(file, bytes);
    CHECK_THROWS_AS(io::load_container(file, "test-kind"), FormatError);
  }
  SECTION("newer version") {
    auto bytes = io::read_file_bytes(file);
    bytes[4] = 99;
    io::write_file_atomic(file, bytes);
    CHECK_THROWS_WITH(io::load_container(file, "test-kind"), Catch::Contains("newer scoreood"));
  }
  SECTION("not ours") {
    std::ofstream(file, std::ios::binary) << "PK\x03\x04 this is a zip file really";
    CHECK_THROWS_WITH(io::load_container(file, "test-kind"), Catch::Contains("bad magic"));
  }
  SECTION("missing") {
    CHECK_THROWS_WITH(io::load_container(dir / "nope.sood", "test-kind"), Catch::Contains("no such file"));
  }
  fs::remove_all(dir);
}
