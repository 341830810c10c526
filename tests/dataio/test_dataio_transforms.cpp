// Gray conversion, bilinear resize (against PyTorch values stored in
// tests/data by gen_dataio_reference.py), PNG grids read back with zlib, and
// the dataset search path.
#include "dataio_helpers.hpp"

#include <scoreood/data/find.hpp>
#include <scoreood/data/png.hpp>
#include <scoreood/data/transforms.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

using namespace dataio_test;
using namespace scoreood;
using namespace scoreood::data;

TEST_CASE("to_grayscale uses BT.601 luma and passes gray through", "[transforms]") {
  Images x = Images::from_shape({2, 3, 1, 2});
  // Image 0: pure R, G, B in pixel 0 / mixed in pixel 1; image 1: white.
  x(0, 0, 0, 0) = 1.0f; x(0, 1, 0, 0) = 0.0f; x(0, 2, 0, 0) = 0.0f;
  x(0, 0, 0, 1) = 0.2f; x(0, 1, 0, 1) = 0.4f; x(0, 2, 0, 1) = 0.6f;
  for (std::size_t c = 0; c < 3; ++c) x(1, c, 0, 0) = x(1, c, 0, 1) = 1.0f;
  const Images g = to_grayscale(x);
  REQUIRE(shape_of(g) == Shape4{2, 1, 1, 2});
  CHECK(g(0, 0, 0, 0) == Approx(0.299f));
  CHECK(g(0, 0, 0, 1) == Approx(0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6).epsilon(1e-6));
  CHECK(g(1, 0, 0, 0) == Approx(1.0f).epsilon(1e-6));
  Images one = Images::from_shape({1, 1, 2, 2});
  one.fill(0.5f);
  CHECK(same(to_grayscale(one), one));
  CHECK_THROWS_AS(to_grayscale(Images::from_shape({1, 2, 2, 2})), ShapeError);
}

namespace {
struct ResizeCase {
  Shape4 in;
  std::size_t h, w;
  std::vector<float> x, y;
};
std::vector<float> read_floats(std::istream& is, std::size_t n) {
  std::vector<float> v(n);
  for (auto& f : v) is >> f;
  return v;
}
std::vector<ResizeCase> read_resize_cases() {
  std::ifstream is(std::string(SCOREOOD_TEST_DATA_DIR) + "/dataio_resize_bilinear.txt");
  REQUIRE(is.good());
  std::vector<ResizeCase> cases;
  std::string tag;
  while (is >> tag) {
    REQUIRE(tag == "case");
    ResizeCase c;
    is >> c.in[0] >> c.in[1] >> c.in[2] >> c.in[3] >> c.h >> c.w;
    c.x = read_floats(is, c.in[0] * c.in[1] * c.in[2] * c.in[3]);
    c.y = read_floats(is, c.in[0] * c.in[1] * c.h * c.w);
    REQUIRE(is.good());
    cases.push_back(std::move(c));
  }
  return cases;
}
}  // namespace

TEST_CASE("resize_bilinear matches torch F.interpolate(bilinear, align_corners=False)", "[transforms]") {
  const auto cases = read_resize_cases();
  REQUIRE(cases.size() == 5);
  for (const auto& c : cases) {
    INFO("input " << to_string(c.in) << " -> " << c.h << "x" << c.w);
    Images x = Images::from_shape({c.in[0], c.in[1], c.in[2], c.in[3]});
    std::copy(c.x.begin(), c.x.end(), x.data());
    const Images y = resize_bilinear(x, c.h, c.w);
    REQUIRE(shape_of(y) == Shape4{c.in[0], c.in[1], c.h, c.w});
    double worst = 0;
    for (std::size_t i = 0; i < c.y.size(); ++i) worst = std::max(worst, double(std::abs(y.data()[i] - c.y[i])));
    CHECK(worst < 2e-6);
  }
}

TEST_CASE("resize_bilinear properties: identity size, constants, errors", "[transforms]") {
  Images x = Images::from_shape({1, 2, 5, 6});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float(i % 7) / 7.0f;
  CHECK(same(resize_bilinear(x, 5, 6), x));
  Images c = Images::from_shape({1, 1, 9, 4});
  c.fill(0.25f);
  const Images r = resize_bilinear(c, 3, 11);
  for (std::size_t i = 0; i < r.size(); ++i) CHECK(r.data()[i] == Approx(0.25f));
  CHECK_THROWS_AS(resize_bilinear(x, 0, 3), ValueError);
}

// ---------------------------------------------------------------------- PNG

namespace {
std::uint32_t be32(const Bytes& b, std::size_t off) {
  return (std::uint32_t(b[off]) << 24) | (std::uint32_t(b[off + 1]) << 16) | (std::uint32_t(b[off + 2]) << 8) | b[off + 3];
}
struct DecodedPng {
  std::uint32_t width = 0, height = 0;
  int color_type = -1;
  std::vector<std::string> chunk_types;
  Bytes pixels;  // width*height*channels, filter bytes removed
};
DecodedPng decode_png(const fs::path& p) {
  std::ifstream is(p, std::ios::binary);
  Bytes b((std::istreambuf_iterator<char>(is)), std::istreambuf_iterator<char>());
  const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  REQUIRE(b.size() > 8);
  REQUIRE(std::memcmp(b.data(), sig, 8) == 0);
  DecodedPng d;
  Bytes idat;
  std::size_t off = 8;
  while (off + 12 <= b.size()) {
    const std::uint32_t len = be32(b, off);
    REQUIRE(off + 12 + len <= b.size());
    const std::string type(b.begin() + off + 4, b.begin() + off + 8);
    const std::uint32_t crc = be32(b, off + 8 + len);
    CHECK(crc == ::crc32(0L, b.data() + off + 4, 4 + len));
    d.chunk_types.push_back(type);
    if (type == "IHDR") {
      REQUIRE(len == 13);
      d.width = be32(b, off + 8);
      d.height = be32(b, off + 12);
      CHECK(b[off + 16] == 8);  // bit depth
      d.color_type = b[off + 17];
      CHECK(b[off + 18] == 0);
      CHECK(b[off + 19] == 0);
      CHECK(b[off + 20] == 0);
    } else if (type == "IDAT") {
      idat.insert(idat.end(), b.begin() + off + 8, b.begin() + off + 8 + len);
    }
    off += 12 + len;
  }
  CHECK(off == b.size());
  const std::size_t ch = d.color_type == 0 ? 1 : 3;
  const std::size_t stride = 1 + d.width * ch;
  Bytes raw(stride * d.height);
  uLongf rawlen = raw.size();
  REQUIRE(::uncompress(raw.data(), &rawlen, idat.data(), idat.size()) == Z_OK);
  REQUIRE(rawlen == raw.size());
  for (std::size_t y = 0; y < d.height; ++y) {
    CHECK(raw[y * stride] == 0);  // filter type none
    d.pixels.insert(d.pixels.end(), raw.begin() + y * stride + 1, raw.begin() + (y + 1) * stride);
  }
  return d;
}
}  // namespace

TEST_CASE("write_png_grid writes a valid gray PNG with the right pixels", "[png]") {
  TempDir dir;
  // 5 gray 3x4 images in 2 columns with pad 1: 3 rows of tiles, the last half empty.
  Images x = Images::from_shape({5, 1, 3, 4});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float((i * 37) % 256) / 255.0f;
  x(0, 0, 0, 0) = 1.7f;   // clamped to 255
  x(0, 0, 0, 1) = -0.3f;  // clamped to 0
  const auto p = dir / "grid.png";
  write_png_grid(p, x, 2, 1);
  const DecodedPng d = decode_png(p);
  CHECK(d.chunk_types == std::vector<std::string>{"IHDR", "IDAT", "IEND"});
  CHECK(d.color_type == 0);
  REQUIRE(d.width == 2 * (4 + 1) + 1);
  REQUIRE(d.height == 3 * (3 + 1) + 1);
  std::size_t tile_pixels = 0;
  for (std::size_t gy = 0; gy < d.height; ++gy)
    for (std::size_t gx = 0; gx < d.width; ++gx) {
      const unsigned char got = d.pixels[gy * d.width + gx];
      const bool in_tile_y = (gy % 4) != 0, in_tile_x = (gx % 5) != 0;
      const std::size_t i = (gy / 4) * 2 + gx / 5;
      if (in_tile_y && in_tile_x && gy < d.height - 0 && i < 5) {
        const std::size_t y = gy % 4 - 1, xx = gx % 5 - 1;
        const float v = std::clamp(x(i, 0, y, xx), 0.0f, 1.0f);
        CHECK(int(got) == int(std::lround(v * 255.0f)));
        ++tile_pixels;
      } else {
        CHECK(int(got) == 0);  // padding and the empty sixth tile are black
      }
    }
  CHECK(tile_pixels == 5 * 3 * 4);
  CHECK(d.pixels[(1) * d.width + 1] == 255);
  CHECK(d.pixels[(1) * d.width + 2] == 0);
}

TEST_CASE("write_png_grid writes RGB and rejects bad input", "[png]") {
  TempDir dir;
  Images x = Images::from_shape({3, 3, 2, 2});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float((i * 29) % 256) / 255.0f;
  const auto p = dir / "rgb.png";
  write_png_grid(p, x, 8, 0);  // cols larger than n: one row, no padding
  const DecodedPng d = decode_png(p);
  CHECK(d.color_type == 2);
  REQUIRE(d.width == 6);
  REQUIRE(d.height == 2);
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < 2; ++y)
        for (std::size_t xx = 0; xx < 2; ++xx)
          CHECK(int(d.pixels[(y * d.width + i * 2 + xx) * 3 + c]) == int(std::lround(x(i, c, y, xx) * 255.0f)));
  CHECK_THROWS_AS(write_png_grid(dir / "a.png", Images::from_shape({1, 2, 2, 2}), 1), ShapeError);
  CHECK_THROWS_AS(write_png_grid(dir / "b.png", Images::from_shape({0, 1, 2, 2}), 1), ValueError);
  CHECK_THROWS_AS(write_png_grid(dir / "c.png", x, 0), ValueError);
  CHECK_THROWS_AS(write_png_grid(dir / "no_such_dir" / "d.png", x, 1), Error);
}

// ------------------------------------------------------------------ find_data

namespace {
struct EnvGuard {
  std::string name;
  std::optional<std::string> old;
  EnvGuard(const char* n, const std::string& value) : name(n) {
    if (const char* v = std::getenv(n)) old = v;
    ::setenv(n, value.c_str(), 1);
  }
  ~EnvGuard() {
    if (old) ::setenv(name.c_str(), old->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
};
}  // namespace

TEST_CASE("find_data searches explicit root, $SCOREOOD_DATA, then the shared folders", "[find]") {
  TempDir a, b;
  fs::create_directories(a.path / "sub");
  fs::create_directories(b.path / "sub");
  write_raw(a / "sub/only_a.bin", {1});
  write_raw(b / "sub/only_b.bin", {1});
  write_raw(a / "sub/both.bin", {1});
  write_raw(b / "sub/both.bin", {1});
  EnvGuard env("SCOREOOD_DATA", b.path.string());
  CHECK(find_data("sub/only_a.bin", a.path) == a.path / "sub/only_a.bin");
  CHECK(find_data("sub/only_b.bin", a.path) == b.path / "sub/only_b.bin");
  CHECK(find_data("sub/both.bin", a.path) == a.path / "sub/both.bin");  // explicit root first
  CHECK(find_data("sub/both.bin") == b.path / "sub/both.bin");
  // A path that exists as given is returned unchanged.
  const auto abs = a / "sub/only_a.bin";
  CHECK(find_data(abs.string()) == abs);
  try {
    find_data("sub/none.bin", a.path);
    FAIL("expected FormatError");
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("sub/none.bin: data file not found") != std::string::npos);
    CHECK(msg.find((a.path / "sub/none.bin").string()) != std::string::npos);
    CHECK(msg.find((b.path / "sub/none.bin").string()) != std::string::npos);
    CHECK(msg.find("/usr/share/datasets/sub/none.bin") != std::string::npos);
    CHECK(msg.find((fs::path(SCOREOOD_SOURCE_DIR).parent_path() / "shared/data/sub/none.bin").string()) != std::string::npos);
  }
  CHECK_THROWS_AS(find_data("/definitely/not/here.bin"), FormatError);
}

TEST_CASE("fashion_mnist_file finds the Debian package's files", "[find]") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") && !std::getenv("SCOREOOD_DATA")) {
    WARN("skipped: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  const auto p = fashion_mnist_file("t10k-images-idx3-ubyte.gz");
  CHECK(fs::exists(p));
  CHECK(p.filename() == "t10k-images-idx3-ubyte.gz");
  CHECK(p.parent_path().filename() == "fashion-mnist");
}
