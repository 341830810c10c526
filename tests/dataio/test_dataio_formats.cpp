// IDX and CIFAR readers on small generated files: round trips, the generic
// load(spec), and one test case per kind of damage.
#include "dataio_helpers.hpp"

#include <scoreood/data/cifar.hpp>
#include <scoreood/data/dataset.hpp>
#include <scoreood/data/idx.hpp>
#include <scoreood/data/load.hpp>

#include <chrono>
#include <cmath>

using namespace dataio_test;
using namespace scoreood;
using namespace scoreood::data;

namespace {
// 3 images of 4x5 with labels 2 0 1, written raw and gzipped.
constexpr std::uint32_t kN = 3, kR = 4, kC = 5;
const Bytes kPixels = ramp(kN * kR * kC);
const Bytes kLabels = {2, 0, 1};

void check_small_images(const Images& x) {
  REQUIRE(shape_of(x) == Shape4{kN, 1, kR, kC});
  for (std::size_t i = 0; i < kPixels.size(); ++i) REQUIRE(x.data()[i] == float(kPixels[i]) / 255.0f);
}
}  // namespace

TEST_CASE("IDX images and labels round-trip, raw and gzip", "[idx]") {
  TempDir dir;
  for (bool gz : {false, true}) {
    const std::string ext = gz ? ".gz" : "";
    const auto img = dir / ("train-images-idx3-ubyte" + ext);
    const auto lab = dir / ("train-labels-idx1-ubyte" + ext);
    (gz ? write_gz : write_raw)(img, idx_images(kN, kR, kC, kPixels));
    (gz ? write_gz : write_raw)(lab, idx_labels(kLabels, kN));
    check_small_images(load_idx_images(img));
    CHECK(load_idx_labels(lab) == std::vector<int>{2, 0, 1});
    const Dataset d = load_idx(img);
    check_small_images(d.images);
    CHECK(d.labels == std::vector<int>{2, 0, 1});
    CHECK(d.source == img.string());
  }
  // Pixel 255 maps to exactly 1 and 0 to 0.
  const auto p = dir / "extremes-images-idx3-ubyte";
  write_raw(p, idx_images(1, 1, 2, {0, 255}));
  const Images x = load_idx_images(p);
  CHECK(x(0, 0, 0, 0) == 0.0f);
  CHECK(x(0, 0, 0, 1) == 1.0f);
}

TEST_CASE("load_idx works without a label file and finds t10k labels by name", "[idx]") {
  TempDir dir;
  const auto img = dir / "t10k-images-idx3-ubyte.gz";
  write_gz(img, idx_images(kN, kR, kC, kPixels));
  CHECK(load_idx(img).labels.empty());
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_labels(kLabels, kN));
  CHECK(load_idx(img).labels == std::vector<int>{2, 0, 1});
  // Concatenated gzip members are one valid gzip stream.
  const Bytes all = idx_images(kN, kR, kC, kPixels);
  Bytes two = gzip_bytes(Bytes(all.begin(), all.begin() + 20));
  const Bytes tail = gzip_bytes(Bytes(all.begin() + 20, all.end()));
  two.insert(two.end(), tail.begin(), tail.end());
  const auto multi = dir / "multi-images-idx3-ubyte.gz";
  write_raw(multi, two);
  check_small_images(load_idx_images(multi));
}

TEST_CASE("IDX damage: missing file", "[idx][errors]") {
  TempDir dir;
  const auto p = dir / "nope-images-idx3-ubyte.gz";
  require_format_error([&] { load_idx_images(p); }, p, "no such file");
  require_format_error([&] { load_idx_labels(p); }, p, "no such file");
}

TEST_CASE("IDX damage: empty file", "[idx][errors]") {
  TempDir dir;
  const auto p = dir / "empty-images-idx3-ubyte";
  write_raw(p, {});
  require_format_error([&] { load_idx_images(p); }, p, "empty file");
}

TEST_CASE("IDX damage: bad magic", "[idx][errors]") {
  TempDir dir;
  const auto p = dir / "bad-images-idx3-ubyte";
  write_raw(p, idx_images(kN, kR, kC, kPixels, 0x12345678));
  require_format_error([&] { load_idx_images(p); }, p, "bad magic number 0x12345678");
  // A label file handed to the image reader says what it is.
  const auto l = dir / "x-labels-idx1-ubyte";
  write_raw(l, idx_labels(kLabels, kN));
  require_format_error([&] { load_idx_images(l); }, l, "IDX label file");
  require_format_error([&] { load_idx_labels(p); }, p, "bad magic");
}

TEST_CASE("IDX damage: header cut short", "[idx][errors]") {
  TempDir dir;
  const auto p = dir / "short-images-idx3-ubyte";
  write_raw(p, {0, 0, 8, 3, 0, 0});
  require_format_error([&] { load_idx_images(p); }, p, "truncated");
}

TEST_CASE("IDX damage: truncated pixel data (raw)", "[idx][errors]") {
  TempDir dir;
  const auto p = dir / "cut-images-idx3-ubyte";
  Bytes b = idx_images(kN, kR, kC, kPixels);
  b.resize(b.size() - 7);
  write_raw(p, b);
  require_format_error([&] { load_idx_images(p); }, p, "truncated");
}

TEST_CASE("IDX damage: truncated data inside a valid gzip stream", "[idx][errors]") {
  TempDir dir;
  const auto p = dir / "cut-images-idx3-ubyte.gz";
  Bytes px = kPixels;
  px.resize(px.size() - 7);
  write_gz(p, idx_images(kN, kR, kC, px));
  require_format_error([&] { load_idx_images(p); }, p, "truncated");
}

TEST_CASE("IDX damage: dimensions that do not match the size", "[idx][errors]") {
  TempDir dir;
  // Raw: more bytes than count*rows*cols.
  const auto p = dir / "long-images-idx3-ubyte";
  write_raw(p, idx_images(kN, kR, kC - 1, kPixels));
  require_format_error([&] { load_idx_images(p); }, p, "wrong dimensions");
  // Gzip: the same, found after streaming the declared part.
  const auto g = dir / "long-images-idx3-ubyte.gz";
  write_gz(g, idx_images(kN, kR, kC - 1, kPixels));
  require_format_error([&] { load_idx_images(g); }, g, "header does not match the file size");
}

TEST_CASE("IDX damage: zero dimension", "[idx][errors]") {
  TempDir dir;
  const auto p = dir / "zero-images-idx3-ubyte";
  write_raw(p, idx_images(kN, 0, kC, kPixels));
  require_format_error([&] { load_idx_images(p); }, p, "zero dimension");
  const auto l = dir / "zero-labels-idx1-ubyte";
  write_raw(l, idx_labels({}, 0));
  require_format_error([&] { load_idx_labels(l); }, l, "zero dimension");
}

TEST_CASE("IDX damage: absurd counts are refused before allocating", "[idx][errors]") {
  TempDir dir;
  const auto t0 = std::chrono::steady_clock::now();
  // 2^31 images of 28x28 in a ~100-byte raw file: the size check fires first.
  const auto p = dir / "huge-images-idx3-ubyte";
  write_raw(p, idx_images(0x80000000u, 28, 28, ramp(84)));
  require_format_error([&] { load_idx_images(p); }, p, "implausible");
  const auto q = dir / "big-images-idx3-ubyte";
  write_raw(q, idx_images(1u << 20, 28, 28, ramp(84)));  // 822 MB claimed: plausible, but the file is 100 bytes
  require_format_error([&] { load_idx_images(q); }, q, "truncated");
  // Dimensions whose product overflows 64 bits.
  const auto o = dir / "overflow-images-idx3-ubyte";
  write_raw(o, idx_images(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, ramp(84)));
  require_format_error([&] { load_idx_images(o); }, o, "implausible");
  // Gzip: 2^20 images claimed in a tiny .gz: more than deflate can expand to.
  const auto g = dir / "big-images-idx3-ubyte.gz";
  write_gz(g, idx_images(1u << 20, 28, 28, ramp(84)));
  require_format_error([&] { load_idx_images(g); }, g, "cannot hold more than");
  // Gzip of noise claiming more images than it holds: passes the ratio bound,
  // then is caught while streaming (the message says how much was missing).
  const auto z = dir / "noise-images-idx3-ubyte.gz";
  Bytes noise(300 * 784);
  std::uint32_t state = 12345;
  for (auto& v : noise) v = static_cast<unsigned char>((state = state * 1664525u + 1013904223u) >> 24);
  write_gz(z, idx_images(400, 28, 28, noise));
  require_format_error([&] { load_idx_images(z); }, z, "but only 235200 remain");
  // Labels: 2^31 claimed.
  const auto l = dir / "huge-labels-idx1-ubyte.gz";
  write_gz(l, idx_labels({1, 2, 3}, 0x80000000u));
  require_format_error([&] { load_idx_labels(l); }, l, "cannot hold more than");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(secs < 5.0);
}

TEST_CASE("IDX damage: named .gz but not gzip", "[idx][errors]") {
  TempDir dir;
  const auto p = dir / "plain-images-idx3-ubyte.gz";
  write_raw(p, idx_images(kN, kR, kC, kPixels));
  require_format_error([&] { load_idx_images(p); }, p, "not gzip");
}

TEST_CASE("IDX damage: corrupt gzip", "[idx][errors]") {
  TempDir dir;
  const Bytes gz = gzip_bytes(idx_images(kN, kR, kC, ramp(kN * kR * kC, 13)));
  SECTION("garbage inside the deflate data") {
    Bytes b = gz;
    for (std::size_t i = 10; i < b.size() - 8; ++i) b[i] = 0xFF;  // invalid block types
    const auto p = dir / "corrupt-images-idx3-ubyte.gz";
    write_raw(p, b);
    require_format_error([&] { load_idx_images(p); }, p, "corrupt gzip");
  }
  SECTION("wrong CRC-32 in the trailer") {
    Bytes b = gz;
    b[b.size() - 8] ^= 0x5A;
    const auto p = dir / "crc-images-idx3-ubyte.gz";
    write_raw(p, b);
    require_format_error([&] { load_idx_images(p); }, p, "corrupt gzip");
  }
  SECTION("gzip file cut in half") {
    Bytes b = gz;
    b.resize(b.size() / 2);
    const auto p = dir / "half-images-idx3-ubyte.gz";
    write_raw(p, b);
    require_format_error([&] { load_idx_images(p); }, p, "truncated gzip");
  }
  SECTION("only the gzip magic") {
    const auto p = dir / "magic-images-idx3-ubyte.gz";
    write_raw(p, {0x1f, 0x8b});
    require_format_error([&] { load_idx_images(p); }, p, "gzip");
  }
}

TEST_CASE("IDX damage: label count differs from image count", "[idx][errors]") {
  TempDir dir;
  const auto img = dir / "train-images-idx3-ubyte";
  const auto lab = dir / "train-labels-idx1-ubyte";
  write_raw(img, idx_images(kN, kR, kC, kPixels));
  write_raw(lab, idx_labels({1, 2}, 2));
  require_format_error([&] { load_idx(img); }, lab, "holds 2 labels");
}

// ------------------------------------------------------------------- CIFAR

namespace {
/// Pixel byte of record i, plane c (0 R, 1 G, 2 B), row y, column x. The planes differ at every
/// pixel (by 85 or 170 mod 256), and y and x enter with different steps, so a swapped channel
/// order (BGR), an interleaved (HWC) reading or a transposed plane each change every pixel.
unsigned char cifar_byte(std::size_t i, std::size_t c, std::size_t y, std::size_t x) {
  return static_cast<unsigned char>((c * 85 + y * 13 + x * 3 + i * 11) & 0xFF);
}
Bytes cifar_records(std::size_t n, bool hundred) {
  Bytes b;
  for (std::size_t i = 0; i < n; ++i) {
    if (hundred) b.push_back(static_cast<unsigned char>(i % 20));
    b.push_back(static_cast<unsigned char>(hundred ? (i * 7) % 100 : i % 10));
    // The published layout: 1024 R bytes, then 1024 G, then 1024 B, each plane row-major 32x32.
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < 32; ++y)
        for (std::size_t x = 0; x < 32; ++x) b.push_back(cifar_byte(i, c, y, x));
  }
  return b;
}
void check_cifar(const Dataset& d, std::size_t n, bool hundred) {
  REQUIRE(shape_of(d.images) == Shape4{n, 3, 32, 32});
  REQUIRE(d.labels.size() == n);
  for (std::size_t i = 0; i < n; ++i) {
    CHECK(d.labels[i] == int(hundred ? (i * 7) % 100 : i % 10));
    // Channel 0 is R, 1 G, 2 B; every pixel, byte / 255 exactly.
    std::size_t wrong = 0;
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < 32; ++y)
        for (std::size_t x = 0; x < 32; ++x) wrong += d.images(i, c, y, x) != float(cifar_byte(i, c, y, x)) / 255.0f;
    INFO("record " << i);
    CHECK(wrong == 0);
  }
}
}  // namespace

TEST_CASE("CIFAR-10 and CIFAR-100 layouts, raw and gzip, detected automatically", "[cifar]") {
  TempDir dir;
  const auto c10 = dir / "test_batch.bin";
  const auto c10gz = dir / "test_batch.bin.gz";
  const auto c100 = dir / "test.bin.gz";
  write_raw(c10, cifar_records(5, false));
  write_gz(c10gz, cifar_records(5, false));
  write_gz(c100, cifar_records(6, true));
  check_cifar(load_cifar(c10), 5, false);
  check_cifar(load_cifar(c10gz), 5, false);
  check_cifar(load_cifar(c100), 6, true);
  check_cifar(load_cifar(c100, CifarLayout::Cifar100), 6, true);
  check_cifar(load_cifar(c10, CifarLayout::Cifar10), 5, false);
}

TEST_CASE("CIFAR layout: ambiguous sizes are settled by the file name", "[cifar]") {
  // 3074 CIFAR-10 records = 3073 CIFAR-100 records = 9 446 402 bytes.
  TempDir dir;
  Bytes b(std::size_t(3073) * 3074, 0);
  b[0] = 3;  // CIFAR-10 reading: first label 3; CIFAR-100 reading: coarse 3, fine 0
  const auto a = dir / "cifar100-test.bin.gz";
  const auto t = dir / "batch.bin.gz";
  write_gz(a, b);
  write_gz(t, b);
  const Dataset d100 = load_cifar(a);
  CHECK(d100.images.shape()[0] == 3073);
  CHECK(d100.labels[0] == 0);
  const Dataset d10 = load_cifar(t);
  CHECK(d10.images.shape()[0] == 3074);
  CHECK(d10.labels[0] == 3);
}

TEST_CASE("CIFAR damage: truncated file", "[cifar][errors]") {
  TempDir dir;
  Bytes b = cifar_records(3, false);
  b.resize(b.size() - 100);
  const auto p = dir / "data_batch.bin";
  write_raw(p, b);
  require_format_error([&] { load_cifar(p); }, p, "not a whole number");
  const auto g = dir / "data_batch.bin.gz";
  write_gz(g, b);
  require_format_error([&] { load_cifar(g); }, g, "not a whole number");
  require_format_error([&] { load_cifar(g, CifarLayout::Cifar10); }, g, "truncated");
}

TEST_CASE("CIFAR damage: label out of range", "[cifar][errors]") {
  TempDir dir;
  Bytes b = cifar_records(3, false);
  b[3073] = 42;  // second record's label
  const auto p = dir / "bad_label.bin";
  write_raw(p, b);
  require_format_error([&] { load_cifar(p); }, p, "label 42");
  Bytes h = cifar_records(2, true);
  h[0] = 25;  // coarse label
  const auto q = dir / "bad_coarse_100.bin";
  write_raw(q, h);
  require_format_error([&] { load_cifar(q); }, q, "coarse label 25");
}

TEST_CASE("CIFAR damage: empty, missing, not gzip, corrupt gzip", "[cifar][errors]") {
  TempDir dir;
  const auto e = dir / "empty.bin";
  write_raw(e, {});
  require_format_error([&] { load_cifar(e); }, e, "empty file");
  const auto m = dir / "missing.bin";
  require_format_error([&] { load_cifar(m); }, m, "no such file");
  const auto n = dir / "plain.bin.gz";
  write_raw(n, cifar_records(1, false));
  require_format_error([&] { load_cifar(n); }, n, "not gzip");
  Bytes gz = gzip_bytes(cifar_records(2, false));
  gz[gz.size() - 3] ^= 0x11;  // ISIZE field of the trailer
  const auto c = dir / "corrupt.bin.gz";
  write_raw(c, gz);
  require_format_error([&] { load_cifar(c); }, c, "corrupt gzip");
  // A gzip of a few bytes cannot hold a huge dataset: decompressed size bounded.
  const auto z = dir / "empty-inside.bin.gz";
  write_gz(z, {});
  require_format_error([&] { load_cifar(z); }, z, "no data");
}

// ---------------------------------------------------------------- load(spec)

TEST_CASE("load(spec) parses options and detects the format", "[load]") {
  TempDir dir;
  const auto img = dir / "t10k-images-idx3-ubyte.gz";
  write_gz(img, idx_images(kN, kR, kC, kPixels));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_labels(kLabels, kN));
  const auto cif = dir / "test_batch.bin.gz";
  write_gz(cif, cifar_records(5, false));

  const Dataset a = load(img.string());
  check_small_images(a.images);
  CHECK(a.labels == std::vector<int>{2, 0, 1});

  const Dataset b = load(img.string() + ":first=2");
  CHECK(b.images.shape()[0] == 2);
  CHECK(b.labels == std::vector<int>{2, 0});
  CHECK(b.source == img.string() + ":first=2");

  const Dataset c = load(cif.string() + ":gray28:first=3");
  REQUIRE(shape_of(c.images) == Shape4{3, 1, 28, 28});
  CHECK(c.labels == std::vector<int>{0, 1, 2});
  const Dataset c2 = load(cif.string() + ":first=3:gray28");  // order does not matter
  CHECK(same(c2.images, c.images));
  // gray28 = to_grayscale then resize, on the same data.
  const Dataset full = load_cifar(cif);
  CHECK(same(c.images, resize_bilinear(to_grayscale(first_n(full, 3).images), 28, 28)));
  // The gray image of the loaded records is BT.601 luma of the bytes: 0.299 R + 0.587 G + 0.114 B
  // (in double; float rounding of the three products and two sums stays below 2e-7). With R and
  // B exchanged (BGR) the difference is 0.185 |R - B| / 255 >= 0.06 at every pixel.
  const Images gray = to_grayscale(full.images);
  REQUIRE(shape_of(gray) == Shape4{5, 1, 32, 32});
  double worst = 0;
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t y = 0; y < 32; ++y)
      for (std::size_t x = 0; x < 32; ++x) {
        const double want = (0.299 * cifar_byte(i, 0, y, x) + 0.587 * cifar_byte(i, 1, y, x) +
                             0.114 * cifar_byte(i, 2, y, x)) / 255.0;
        worst = std::max(worst, std::abs(double(gray(i, 0, y, x)) - want));
      }
  INFO("max |gray - BT.601 luma| = " << worst);
  CHECK(worst < 1e-6);

  CHECK(load(cif.string() + ":first=100").images.shape()[0] == 5);
  CHECK(load(cif.string() + ":first=0").images.shape()[0] == 0);

  // skip=N leaves out the first N images, then first=N keeps N of the rest (in either order).
  const Dataset s = load(cif.string() + ":first=2:skip=1");
  REQUIRE(s.size() == 2);
  CHECK(s.labels == std::vector<int>{1, 2});
  CHECK(same(s.images, first_n(drop_first(full, 1), 2).images));
  CHECK(same(s.images, first_n(load(cif.string() + ":skip=1").images, 2)));
  CHECK(load(cif.string() + ":skip=4").size() == 1);
  CHECK_THROWS_WITH(load(cif.string() + ":skip=5"), Catch::Contains("skip=5 leaves no image"));
  CHECK_THROWS_WITH(load(img.string() + ":skip=1:skip=2"), Catch::Contains("given twice"));
  CHECK_THROWS_AS(load(img.string() + ":skip=-1"), ValueError);

  const auto parsed = parse_load_spec("/a/b:c/file.bin:first=7");
  CHECK(parsed.path == "/a/b:c/file.bin");
  CHECK(parsed.first == std::size_t(7));
  CHECK_FALSE(parsed.gray28);
}

TEST_CASE("load(spec) errors name the spec or the file", "[load][errors]") {
  TempDir dir;
  const auto img = dir / "t10k-images-idx3-ubyte.gz";
  write_gz(img, idx_images(kN, kR, kC, kPixels));
  const auto lab = dir / "t10k-labels-idx1-ubyte.gz";
  write_gz(lab, idx_labels(kLabels, kN));
  CHECK_THROWS_AS(load(img.string() + ":first=x"), ValueError);
  CHECK_THROWS_AS(load(img.string() + ":first="), ValueError);
  CHECK_THROWS_WITH(load(img.string() + ":gray32"), Catch::Contains("unknown option 'gray32'"));
  require_format_error([&] { load(lab.string()); }, lab, "IDX label file");
  const auto txt = dir / "notes.txt";
  write_raw(txt, {'h', 'e', 'l', 'l', 'o'});
  require_format_error([&] { load(txt.string()); }, txt, "unknown dataset format");
  const auto missing = dir / "missing-images-idx3-ubyte.gz";
  require_format_error([&] { load(missing.string()); }, missing, "not found");
}

TEST_CASE("first_n keeps the first images and labels", "[dataset]") {
  Dataset d;
  d.images = Images::from_shape({4, 1, 2, 2});
  for (std::size_t i = 0; i < d.images.size(); ++i) d.images.data()[i] = float(i);
  d.labels = {5, 6, 7, 8};
  const Dataset f = first_n(d, 2);
  REQUIRE(shape_of(f.images) == Shape4{2, 1, 2, 2});
  CHECK(f.images(1, 0, 1, 1) == 7.0f);
  CHECK(f.labels == std::vector<int>{5, 6});
  CHECK(first_n(d, 10).images.shape()[0] == 4);
  Dataset unlabeled = d;
  unlabeled.labels.clear();
  CHECK(first_n(unlabeled, 3).labels.empty());
}
