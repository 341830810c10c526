// Single image files through stb: PNG / JPEG / BMP round trips with our
// writers, 16-bit PNG, alpha, and one case per kind of damaged file.
#include "image_helpers.hpp"

#include <scoreood/data/image_file.hpp>
#include <scoreood/data/image_write.hpp>
#include <scoreood/data/transforms.hpp>

using namespace dataio_test;
using namespace scoreood;
using namespace scoreood::data;

static_assert(has_image_io, "the tests link scoreood::image_io");

TEST_CASE("PNG round trip is exact, gray and RGB, non-square", "[image][png]") {
  TempDir dir;
  for (std::size_t c : {1u, 3u}) {
    const Images x = pattern_image(c, 5, 7, unsigned(c));
    const auto p = dir / ("x" + std::to_string(c) + ".png");
    write_png(p, x);
    const ImageInfo info = read_image_info(p);
    CHECK(info.width == 7);
    CHECK(info.height == 5);
    CHECK(info.channels == c);
    CHECK_FALSE(info.sixteen_bit);
    const Images y = read_image(p);
    REQUIRE(shape_of(y) == Shape4{1, c, 5, 7});
    CHECK(same(x, y));
  }
  // One image of a batch, by index; 0 and 1 map to 0 and 255 exactly.
  Images batch = Images::from_shape({2, 1, 1, 2});
  batch(0, 0, 0, 0) = 0.2f, batch(0, 0, 0, 1) = 0.4f;
  batch(1, 0, 0, 0) = 0.0f, batch(1, 0, 0, 1) = 1.0f;
  write_png(dir / "second.png", batch, 1);
  const Images y = read_image(dir / "second.png");
  CHECK(y(0, 0, 0, 0) == 0.0f);
  CHECK(y(0, 0, 0, 1) == 1.0f);
}

TEST_CASE("PNG writer clamps and rounds like write_png_grid", "[image][png]") {
  TempDir dir;
  Images x = Images::from_shape({1, 1, 1, 5});
  x(0, 0, 0, 0) = -0.5f;
  x(0, 0, 0, 1) = 2.0f;
  x(0, 0, 0, 2) = std::nanf("");
  x(0, 0, 0, 3) = 0.5f;             // 127.5 rounds to 128
  x(0, 0, 0, 4) = 10.4f / 255.0f;  // rounds to 10
  write_png(dir / "c.png", x);
  const Images y = read_image(dir / "c.png");
  CHECK(y(0, 0, 0, 0) == 0.0f);
  CHECK(y(0, 0, 0, 1) == 1.0f);
  CHECK(y(0, 0, 0, 2) == 0.0f);
  CHECK(y(0, 0, 0, 3) == 128.0f / 255.0f);
  CHECK(y(0, 0, 0, 4) == 10.0f / 255.0f);
}

TEST_CASE("JPEG round trip within a tolerance, gray and RGB", "[image][jpeg]") {
  TempDir dir;
  const Images rgb = smooth_image(3, 24, 32);
  write_jpeg(dir / "rgb.jpg", rgb, 0, 95);
  const Images y = read_image(dir / "rgb.jpg");
  REQUIRE(shape_of(y) == Shape4{1, 3, 24, 32});
  CHECK(max_abs_diff(y, rgb) == Approx(0.0).epsilon(0).margin(0.08));
  CHECK_FALSE(same(y, rgb));  // lossy: it is a real JPEG, not a copy

  // stb_image_write stores gray as YCbCr: it reads back as three equal-ish planes.
  const Images gray = smooth_image(1, 16, 20);
  write_jpeg(dir / "gray.JPEG", gray, 0, 95);
  const Images g = read_image(dir / "gray.JPEG");
  REQUIRE(shape_of(g) == Shape4{1, 3, 16, 20});
  CHECK(max_abs_diff(to_grayscale(g), gray) == Approx(0.0).epsilon(0).margin(0.05));

  // Lower quality, larger error, still the same picture.
  write_jpeg(dir / "q30.jpg", rgb, 0, 30);
  const double err30 = max_abs_diff(read_image(dir / "q30.jpg"), rgb);
  CHECK(err30 == Approx(0.0).epsilon(0).margin(0.25));
  CHECK(err30 >= max_abs_diff(y, rgb));
}

TEST_CASE("BMP round trip is exact; gray is stored as RGB", "[image][bmp]") {
  TempDir dir;
  const Images rgb = pattern_image(3, 6, 9, 4);  // 9 * 3 bytes per row: padded rows
  write_bmp(dir / "rgb.bmp", rgb);
  CHECK(same(read_image(dir / "rgb.bmp"), rgb));
  const Images gray = pattern_image(1, 4, 3, 5);
  write_bmp(dir / "gray.BMP", gray);
  const Images g = read_image(dir / "gray.BMP");
  REQUIRE(shape_of(g) == Shape4{1, 3, 4, 3});
  for (std::size_t c = 0; c < 3; ++c)
    for (std::size_t y = 0; y < 4; ++y)
      for (std::size_t x = 0; x < 3; ++x) CHECK(g(0, c, y, x) == gray(0, 0, y, x));
}

TEST_CASE("16-bit PNG is read at full precision (value / 65535)", "[image][png]") {
  TempDir dir;
  const std::vector<std::uint16_t> gray = {0, 1, 257, 4095, 32768, 65534, 65535, 12345};
  write_png16(dir / "g16.png", 4, 2, 1, gray);
  const ImageInfo info = read_image_info(dir / "g16.png");
  CHECK(info.sixteen_bit);
  const Images g = read_image(dir / "g16.png");
  REQUIRE(shape_of(g) == Shape4{1, 1, 2, 4});
  for (std::size_t i = 0; i < gray.size(); ++i) CHECK(g.data()[i] == float(gray[i]) / 65535.0f);
  CHECK(g(0, 0, 0, 1) != 0.0f);  // an 8-bit reduction would lose 1 / 65535

  std::vector<std::uint16_t> rgb(3 * 2 * 3);
  for (std::size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<std::uint16_t>(i * 3001 + 7);
  write_png16(dir / "c16.png", 3, 2, 3, rgb);
  const Images c = read_image(dir / "c16.png");
  REQUIRE(shape_of(c) == Shape4{1, 3, 2, 3});
  for (std::size_t y = 0; y < 2; ++y)
    for (std::size_t x = 0; x < 3; ++x)
      for (std::size_t k = 0; k < 3; ++k) CHECK(c(0, k, y, x) == float(rgb[(y * 3 + x) * 3 + k]) / 65535.0f);
}

TEST_CASE("Alpha is dropped: gray + alpha reads as gray, RGBA as RGB", "[image][png]") {
  TempDir dir;
  // 2x1 gray + alpha, and 2x1 RGBA, written through the 8-bit overload.
  const std::vector<unsigned char> ga = {10, 255, 200, 0};
  write_png(dir / "ga.png", ga, 2, 1, 2);
  CHECK(read_image_info(dir / "ga.png").channels == 2);
  const Images g = read_image(dir / "ga.png");
  REQUIRE(shape_of(g) == Shape4{1, 1, 1, 2});
  CHECK(g(0, 0, 0, 0) == 10.0f / 255.0f);
  CHECK(g(0, 0, 0, 1) == 200.0f / 255.0f);  // not composited: alpha 0 keeps the colour
  const std::vector<unsigned char> rgba = {1, 2, 3, 128, 250, 251, 252, 0};
  write_png(dir / "rgba.png", rgba, 2, 1, 4);
  const Images c = read_image(dir / "rgba.png");
  REQUIRE(shape_of(c) == Shape4{1, 3, 1, 2});
  CHECK(c(0, 0, 0, 0) == 1.0f / 255.0f);
  CHECK(c(0, 2, 0, 0) == 3.0f / 255.0f);
  CHECK(c(0, 1, 0, 1) == 251.0f / 255.0f);
}

TEST_CASE("Image damage: missing, folder, zero-byte, not an image", "[image][errors]") {
  TempDir dir;
  const auto missing = dir / "missing.png";
  require_format_error([&] { read_image(missing); }, missing, "no such file");
  require_format_error([&] { read_image_info(missing); }, missing, "no such file");
  fs::create_directories(dir / "sub.png");
  require_format_error([&] { read_image(dir / "sub.png"); }, dir / "sub.png", "is a folder");
  const auto empty = dir / "empty.jpg";
  write_raw(empty, {});
  require_format_error([&] { read_image(empty); }, empty, "empty file");
  require_format_error([&] { read_image_info(empty); }, empty, "empty file");
  const auto text = dir / "notes.png";
  write_raw(text, {'j', 'u', 's', 't', ' ', 't', 'e', 'x', 't'});
  require_format_error([&] { read_image(text); }, text, "not an image stb_image can read");
  require_format_error([&] { read_image(text); }, text, "stb_image: unknown image type");
  require_format_error([&] { read_image_info(text); }, text, "unknown image type");
}

TEST_CASE("Image damage: truncated PNG, JPEG and BMP at several points", "[image][errors]") {
  TempDir dir;
  const Images x = pattern_image(3, 16, 16, 1);
  write_png(dir / "full.png", x);
  write_jpeg(dir / "full.jpg", x);
  write_bmp(dir / "full.bmp", x);
  for (const char* name : {"full.png", "full.jpg", "full.bmp"}) {
    const Bytes all = read_raw(dir / name);
    REQUIRE(all.size() > 100);
    for (double frac : {0.2, 0.5, 0.8, 0.95}) {
      const auto p = dir / ("cut_" + std::to_string(int(frac * 100)) + "_" + name);
      write_raw(p, Bytes(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(double(all.size()) * frac)));
      INFO(p.string());
      // Each names the file and says what failed: stb's reason, or our size check for BMP.
      const std::string problem = std::string(name) == "full.bmp" ? "truncated BMP" : "stb_image";
      require_format_error([&] { read_image(p); }, p, problem);
    }
  }
  // A PNG cut inside its chunks says so beyond stb's terse reason.
  const Bytes png = read_raw(dir / "full.png");
  write_raw(dir / "half.png", Bytes(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2)));
  require_format_error([&] { read_image(dir / "half.png"); }, dir / "half.png", "IEND");
  // Only the signature left: the header cannot be read.
  write_raw(dir / "sig.png", Bytes(png.begin(), png.begin() + 8));
  require_format_error([&] { read_image(dir / "sig.png"); }, dir / "sig.png", "this PNG file");
}

TEST_CASE("Image damage: corrupt PNG and JPEG data", "[image][errors]") {
  TempDir dir;
  const Images x = pattern_image(3, 16, 16, 2);
  write_png(dir / "ok.png", x);
  write_jpeg(dir / "ok.jpg", x);
  for (const char* name : {"ok.png", "ok.jpg"}) {
    Bytes b = read_raw(dir / name);
    for (std::size_t i = b.size() / 3; i < 2 * b.size() / 3; ++i) b[i] ^= 0x5A;
    const auto p = dir / ("bad_" + std::string(name));
    write_raw(p, b);
    require_format_error([&] { read_image(p); }, p, "cannot decode");
  }
}

TEST_CASE("Image writers reject what they cannot write", "[image][errors]") {
  TempDir dir;
  const Images x = pattern_image(3, 4, 4);
  CHECK_THROWS_AS(write_png(dir / "a.png", Images::from_shape({1, 2, 4, 4})), ShapeError);
  CHECK_THROWS_AS(write_png(dir / "b.png", x, 1), ValueError);
  CHECK_THROWS_AS(write_jpeg(dir / "c.jpg", x, 0, 0), ValueError);
  CHECK_THROWS_AS(write_jpeg(dir / "c.jpg", x, 0, 101), ValueError);
  CHECK_THROWS_AS(write_png(dir / "d.png", std::vector<unsigned char>(5), 2, 2, 1), ShapeError);
  CHECK_THROWS_AS(write_png(dir / "e.png", std::vector<unsigned char>(20), 2, 2, 5), ValueError);
  CHECK_THROWS_WITH(write_png(dir / "no_such_dir" / "f.png", x), Catch::Contains("no_such_dir"));
  CHECK_FALSE(fs::exists(dir / "a.png"));
}
