// Folders, list files and single images as datasets: order, options,
// conversions against the existing transforms, bad files with and without
// skip_bad, and the streaming ImageSource against a whole load.
#include "image_helpers.hpp"

#include <scoreood/data/dataset.hpp>
#include <scoreood/data/image_file.hpp>
#include <scoreood/data/image_list.hpp>
#include <scoreood/data/image_write.hpp>
#include <scoreood/data/load.hpp>
#include <scoreood/data/source.hpp>
#include <scoreood/data/transforms.hpp>

#include <xtensor/xview.hpp>

#include <fstream>

using namespace dataio_test;
using namespace scoreood;
using namespace scoreood::data;

namespace {

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream os(p, std::ios::binary | std::ios::trunc);
  os << s;
}

std::vector<std::string> strings(const std::vector<fs::path>& ps) {
  std::vector<std::string> out;
  for (const auto& p : ps) out.push_back(p.string());
  return out;
}

/// The pixels read_image() gives for each file, stacked.
Images read_each(const std::vector<fs::path>& files) {
  std::vector<Images> xs;
  for (const auto& f : files) xs.push_back(read_image(f));
  return stack(xs);
}

/// A folder of `n` RGB PNGs 6x8 named img_00.png… (one seed each).
std::vector<fs::path> png_folder(const fs::path& dir, std::size_t n, std::size_t c = 3) {
  fs::create_directories(dir);
  std::vector<fs::path> files;
  for (std::size_t i = 0; i < n; ++i) {
    const auto p = dir / ("img_" + std::string(i < 10 ? "0" : "") + std::to_string(i) + ".png");
    write_png(p, pattern_image(c, 6, 8, unsigned(i)));
    files.push_back(p);
  }
  return files;
}

}  // namespace

TEST_CASE("A folder is its image files sorted by path, any case of extension", "[folder]") {
  TempDir dir;
  const auto d = dir / "photos";
  fs::create_directories(d / "sub");
  // Written out of order, with every accepted extension.
  write_png(d / "c.PNG", pattern_image(3, 4, 5, 1));
  write_bmp(d / "a.bmp", pattern_image(3, 4, 5, 2));
  write_jpeg(d / "b.JPG", smooth_image(3, 4, 5));
  write_jpeg(d / "d.jpeg", smooth_image(3, 4, 5));
  write_png(d / "B.png", pattern_image(3, 4, 5, 3));  // upper case sorts first
  // Not taken: other extensions, hidden files, subfolders (without :recursive).
  write_text(d / "notes.txt", "not an image\n");
  write_text(d / "._a.jpg", "macOS resource fork");
  write_png(d / "sub" / "e.png", pattern_image(3, 4, 5, 4));
  write_png(d / "c.png.bak", pattern_image(3, 4, 5, 5));

  const std::vector<fs::path> want = {d / "B.png", d / "a.bmp", d / "b.JPG", d / "c.PNG", d / "d.jpeg"};
  CHECK(list_image_folder(d) == want);
  const Dataset ds = load(d.string());
  CHECK(ds.paths == strings(want));
  CHECK(ds.labels.empty());
  CHECK(ds.skipped.empty());
  CHECK(ds.source == d.string());
  REQUIRE(shape_of(ds.images) == Shape4{5, 3, 4, 5});
  CHECK(same(ds.images, read_each(want)));
}

TEST_CASE("recursive takes subfolders, sorted by path, hidden folders left out", "[folder]") {
  TempDir dir;
  const auto d = dir / "set";
  fs::create_directories(d / "b" / "deep");
  fs::create_directories(d / "a");
  fs::create_directories(d / ".cache");
  write_png(d / "b" / "deep" / "x.png", pattern_image(1, 3, 3, 1));
  write_png(d / "b" / "y.png", pattern_image(1, 3, 3, 2));
  write_png(d / "a" / "z.png", pattern_image(1, 3, 3, 3));
  write_png(d / "a-top.png", pattern_image(1, 3, 3, 4));
  write_png(d / ".cache" / "thumb.png", pattern_image(1, 3, 3, 5));
  // Path order: a/ before a-top.png (component by component), b/deep/x before b/y.
  const std::vector<fs::path> want = {d / "a" / "z.png", d / "a-top.png", d / "b" / "deep" / "x.png", d / "b" / "y.png"};
  CHECK(list_image_folder(d, true) == want);
  const Dataset ds = load(d.string() + ":recursive");
  CHECK(ds.paths == strings(want));
  CHECK(same(ds.images, read_each(want)));
  // Without :recursive only the top level.
  CHECK(load(d.string()).paths == std::vector<std::string>{(d / "a-top.png").string()});
}

TEST_CASE("Empty folders and lists are errors saying so", "[folder][list][errors]") {
  TempDir dir;
  fs::create_directories(dir / "empty");
  require_format_error([&] { load((dir / "empty").string()); }, dir / "empty", "no image files");
  // Images only in a subfolder: the message suggests :recursive.
  fs::create_directories(dir / "nested" / "inner");
  write_png(dir / "nested" / "inner" / "a.png", pattern_image(1, 2, 2));
  require_format_error([&] { load((dir / "nested").string()); }, dir / "nested", "add :recursive");
  CHECK(load((dir / "nested").string() + ":recursive").size() == 1);
  fs::create_directories(dir / "only_text");
  write_text(dir / "only_text" / "readme.txt", "x");
  require_format_error([&] { load((dir / "only_text").string() + ":recursive"); }, dir / "only_text",
                       "no image files (.png, .jpg, .jpeg, .bmp) in this folder or its subfolders");
  const auto list = dir / "list.txt";
  write_text(list, "# nothing here yet\n\n   \n# a.png\n");
  require_format_error([&] { read_image_list(list); }, list, "lists no images (4 lines");
  require_format_error([&] { load(list.string()); }, list, "lists no images");
  // Text whose first entry is no image path is not taken for a list.
  const auto notes = dir / "notes.txt";
  write_text(notes, "# my notes\nhello\n");
  require_format_error([&] { load(notes.string()); }, notes, "unknown dataset format");
  // :recursive belongs to folders.
  write_png(dir / "one.png", pattern_image(1, 2, 2));
  CHECK_THROWS_WITH(load((dir / "one.png").string() + ":recursive"), Catch::Contains("recursive applies to folders"));
}

TEST_CASE("A list file: relative to its folder, comments, blanks, CRLF, spaces, absolute paths", "[list]") {
  TempDir dir;
  const auto imgs = png_folder(dir / "imgs", 4);
  fs::create_directories(dir / "lists");
  write_png(dir / "lists" / "local.png", pattern_image(3, 6, 8, 9));
  const auto list = dir / "lists" / "eval.txt";
  write_text(list, "\xEF\xBB\xBF# evaluation images\r\n"
                   "../imgs/img_02.png\r\n"
                   "\r\n"
                   "   local.png   \n"
                   "# ../imgs/img_00.png is left out\n"
                   "\t" + imgs[3].string() + "\n"
                   "../imgs/img_01.png");  // no newline at the end
  const std::vector<fs::path> want = {dir / "lists" / ".." / "imgs" / "img_02.png", dir / "lists" / "local.png", imgs[3],
                                      dir / "lists" / ".." / "imgs" / "img_01.png"};
  CHECK(read_image_list(list) == want);
  CHECK(looks_like_image_list(list));
  const Dataset ds = load(list.string());
  CHECK(ds.paths == strings(want));
  CHECK(same(ds.images, read_each(want)));
  CHECK(load(list.string() + ":first=2").paths == strings({want[0], want[1]}));
}

TEST_CASE("A single image file is a set of one", "[image]") {
  TempDir dir;
  write_png(dir / "one.png", pattern_image(3, 5, 4, 1));
  const Dataset d = load((dir / "one.png").string());
  CHECK(d.paths == std::vector<std::string>{(dir / "one.png").string()});
  CHECK(same(d.images, read_image(dir / "one.png")));
  // Found by its signature even without an image extension.
  fs::copy_file(dir / "one.png", dir / "one.data");
  CHECK(detect_dataset_kind(dir / "one.data") == DatasetKind::image);
  CHECK(same(load((dir / "one.data").string()).images, d.images));
}

TEST_CASE("size=N, gray, rgb and gray28 use resize_bilinear and to_grayscale", "[folder][transforms]") {
  TempDir dir;
  const auto files = png_folder(dir / "rgb", 3);  // 3 x 6 x 8
  const std::string d = (dir / "rgb").string();
  const Images raw = read_each(files);
  CHECK(same(load(d + ":size=5").images, resize_bilinear(raw, 5, 5)));
  CHECK(same(load(d + ":gray").images, to_grayscale(raw)));
  CHECK(same(load(d + ":size=12:gray").images, resize_bilinear(to_grayscale(raw), 12, 12)));
  CHECK(same(load(d + ":gray28").images, resize_bilinear(to_grayscale(raw), 28, 28)));
  CHECK(same(load(d + ":rgb").images, raw));  // already colour: unchanged

  // Gray files to RGB: the plane replicated, after resizing.
  const auto gray_files = png_folder(dir / "gray", 2, 1);
  const Images g = read_each(gray_files);
  const Images rgb = load((dir / "gray").string() + ":rgb:size=4").images;
  REQUIRE(shape_of(rgb) == Shape4{2, 3, 4, 4});
  const Images g4 = resize_bilinear(g, 4, 4);
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < 4; ++y)
        for (std::size_t x = 0; x < 4; ++x) CHECK(rgb(i, c, y, x) == g4(i, 0, y, x));
}

TEST_CASE("LoadOptions: the model's channels and size, applied after the spec", "[folder][options]") {
  TempDir dir;
  const auto files = png_folder(dir / "rgb", 2);
  const std::string d = (dir / "rgb").string();
  const Images raw = read_each(files);
  CHECK(same(load(d, {.channels = 1, .image_size = 28}).images, resize_bilinear(to_grayscale(raw), 28, 28)));
  CHECK(same(load(d, {.channels = 3, .image_size = 6}).images, resize_bilinear(raw, 6, 6)));
  // The options' size wins over the spec's (one resize from the file's size).
  CHECK(same(load(d + ":size=16", {.image_size = 10}).images, resize_bilinear(raw, 10, 10)));
  // The spec asks for gray, the model for RGB: gray photos, replicated.
  const Images gray3 = load(d + ":gray", {.channels = 3}).images;
  const Images gray = to_grayscale(raw);
  REQUIRE(shape_of(gray3) == Shape4{2, 3, 6, 8});
  for (std::size_t c = 0; c < 3; ++c) CHECK(gray3(1, c, 4, 5) == gray(1, 0, 4, 5));
  CHECK_THROWS_AS(load(d, {.channels = 2}), ValueError);
}

TEST_CASE("Conversions apply to IDX and CIFAR too", "[load][options]") {
  TempDir dir;
  const auto img = dir / "t10k-images-idx3-ubyte.gz";
  write_gz(img, idx_images(2, 4, 5, ramp(2 * 4 * 5)));
  const Images x = load_idx_images(img);
  const Images rgb = load(img.string(), {.channels = 3, .image_size = 8}).images;
  REQUIRE(shape_of(rgb) == Shape4{2, 3, 8, 8});
  const Images x8 = resize_bilinear(x, 8, 8);
  for (std::size_t c = 0; c < 3; ++c) CHECK(rgb(1, c, 3, 6) == x8(1, 0, 3, 6));
  CHECK(same(load(img.string() + ":size=3").images, resize_bilinear(x, 3, 3)));
}

TEST_CASE("Images of different sizes need a target size; the error names both files", "[folder][errors]") {
  TempDir dir;
  const auto d = dir / "mixed";
  fs::create_directories(d);
  write_png(d / "a.png", pattern_image(3, 6, 8, 1));
  write_png(d / "b.png", pattern_image(3, 6, 8, 2));
  write_png(d / "c.png", pattern_image(3, 10, 7, 3));
  require_error_naming<ShapeError>([&] { load(d.string()); },
                                   {(d / "c.png").string(), "7x10", (d / "a.png").string(), "8x6", ":size=N"});
  // skip_bad does not hide it: the file is fine, the set is not.
  CHECK_THROWS_AS(load(d.string(), {.skip_bad = true}), ShapeError);
  const Dataset ok = load(d.string() + ":size=6");
  CHECK(shape_of(ok.images) == Shape4{3, 3, 6, 6});
  std::vector<Images> each;
  for (const char* n : {"a.png", "b.png", "c.png"}) each.push_back(resize_bilinear(read_image(d / n), 6, 6));
  CHECK(same(ok.images, stack(each)));
  CHECK(load(d.string(), {.image_size = 6}).size() == 3);
}

TEST_CASE("Gray and colour files in one folder: the first decides unless told", "[folder][errors]") {
  TempDir dir;
  const auto d = dir / "mix";
  fs::create_directories(d);
  write_png(d / "a.png", pattern_image(3, 4, 4, 1));
  write_png(d / "b.png", pattern_image(1, 4, 4, 2));
  // Colour first: the gray one is replicated.
  const Dataset rgb = load(d.string());
  REQUIRE(shape_of(rgb.images) == Shape4{2, 3, 4, 4});
  const Images b = read_image(d / "b.png");
  for (std::size_t c = 0; c < 3; ++c) CHECK(rgb.images(1, c, 2, 3) == b(0, 0, 2, 3));
  // Gray first: a colour file is an error that says what to add.
  fs::rename(d / "a.png", d / "c.png");
  require_error_naming<ShapeError>([&] { load(d.string()); },
                                   {(d / "c.png").string(), (d / "b.png").string(), ":gray", ":rgb"});
  CHECK(shape_of(load(d.string() + ":gray").images) == Shape4{2, 1, 4, 4});
  CHECK(shape_of(load(d.string() + ":rgb").images) == Shape4{2, 3, 4, 4});
  CHECK(shape_of(load(d.string(), {.channels = 3}).images) == Shape4{2, 3, 4, 4});
}

namespace {
/// A folder of good images with a bad file of each kind between them.
struct DamagedFolder {
  fs::path dir;
  std::vector<fs::path> good, bad;
  explicit DamagedFolder(const fs::path& d) : dir(d) {
    good = png_folder(d, 4);  // img_00 .. img_03
    const Bytes png = read_raw(good[0]);
    bad = {d / "img_00b_zero.png", d / "img_01b_cut.png", d / "img_02b_text.jpg", d / "img_02c_corrupt.png"};
    write_raw(bad[0], {});
    write_raw(bad[1], Bytes(png.begin(), png.begin() + static_cast<std::ptrdiff_t>(png.size() / 2)));
    write_text(bad[2], "this is not a JPEG");
    Bytes corrupt = png;
    for (std::size_t i = png.size() / 3; i < 2 * png.size() / 3; ++i) corrupt[i] ^= 0x5A;
    write_raw(bad[3], corrupt);
  }
};
}  // namespace

TEST_CASE("Bad files: an error naming the file, or skipped and reported with skip_bad", "[folder][errors][skip]") {
  TempDir dir;
  const DamagedFolder f(dir / "damaged");
  // Without skip_bad: the first bad file in order is the error.
  require_format_error([&] { load(f.dir.string()); }, f.bad[0], "empty file");
  // Each kind of damage alone names its file.
  const std::vector<std::string> problems = {"empty file", "stb_image", "not an image", "cannot decode"};
  for (std::size_t k = 0; k < f.bad.size(); ++k) {
    TempDir one;
    fs::copy_file(f.good[0], one / "a.png");
    fs::copy_file(f.bad[k], one / ("b" + f.bad[k].extension().string()));
    require_format_error([&] { load(one.path.string()); }, one / ("b" + f.bad[k].extension().string()), problems[k]);
  }
  // With skip_bad: the good ones, in order, and the bad ones with their reasons.
  const Dataset d = load(f.dir.string(), {.skip_bad = true});
  CHECK(d.paths == strings(f.good));
  CHECK(same(d.images, read_each(f.good)));
  REQUIRE(d.skipped.size() == 4);
  for (std::size_t k = 0; k < 4; ++k) {
    CHECK(d.skipped[k].path == f.bad[k].string());
    CHECK(d.skipped[k].reason.find(f.bad[k].string()) != std::string::npos);
    CHECK(d.skipped[k].reason.find(problems[k]) != std::string::npos);
  }
}

TEST_CASE("A list naming a missing file: the error says which list; skip_bad reports it", "[list][errors][skip]") {
  TempDir dir;
  const auto files = png_folder(dir / "imgs", 2);
  const auto list = dir / "set.lst";
  write_text(list, "imgs/img_00.png\nimgs/gone.png\nimgs/img_01.png\n");
  require_error_naming<FormatError>([&] { load(list.string()); },
                                    {(dir / "imgs" / "gone.png").string(), "no such file", "listed in " + list.string()});
  const Dataset d = load(list.string(), {.skip_bad = true});
  CHECK(d.paths == strings(files));
  REQUIRE(d.skipped.size() == 1);
  CHECK(d.skipped[0].path == (dir / "imgs" / "gone.png").string());
}

TEST_CASE("Nothing readable: an error even with skip_bad", "[folder][errors][skip]") {
  TempDir dir;
  fs::create_directories(dir / "bad");
  write_raw(dir / "bad" / "a.png", {});
  write_text(dir / "bad" / "b.png", "text");
  require_error_naming<FormatError>([&] { load((dir / "bad").string(), {.skip_bad = true}); },
                                    {(dir / "bad").string(), "none of its 2 image files", "empty file"});
  // With the size and channels given, nothing is probed at open(): the whole load still refuses.
  require_error_naming<FormatError>(
      [&] { load((dir / "bad").string(), {.channels = 1, .image_size = 4, .skip_bad = true}); }, {"none of its 2"});
}

TEST_CASE("first=N keeps the first N files and their paths", "[folder][first]") {
  TempDir dir;
  const auto files = png_folder(dir / "f", 5);
  const std::string d = (dir / "f").string();
  const Dataset a = load(d + ":first=3");
  CHECK(a.paths == strings({files[0], files[1], files[2]}));
  CHECK(same(a.images, read_each({files[0], files[1], files[2]})));
  CHECK(load(d + ":first=99").size() == 5);
  const Dataset z = load(d + ":first=0");
  CHECK(shape_of(z.images) == Shape4{0, 3, 6, 8});
  CHECK(z.paths.empty());
  // skip=N leaves out the first N files (before first=N), paths in step.
  const Dataset b = load(d + ":skip=1:first=2");
  CHECK(b.paths == strings({files[1], files[2]}));
  CHECK(same(b.images, read_each({files[1], files[2]})));
  CHECK(load(d + ":skip=3").paths == strings({files[3], files[4]}));
  CHECK_THROWS_WITH(load(d + ":skip=5"), Catch::Contains("skip=5 leaves no image"));
  CHECK(open(d + ":skip=2").size() == 3);
  // first_n on a Dataset keeps paths in step with the images.
  const Dataset all = load(d);
  const Dataset two = first_n(all, 2);
  CHECK(two.paths == strings({files[0], files[1]}));
  CHECK(same(two.images, first_n(all.images, 2)));
}

TEST_CASE("ImageSource streams the same pixels as a whole load, for any batch size", "[source]") {
  TempDir dir;
  const DamagedFolder f(dir / "d");
  for (const bool skip : {false, true}) {
    for (const std::string& spec : {(dir / "d").string() + ":size=5:gray", (dir / "d").string() + ":first=6"}) {
      INFO(spec << " skip_bad=" << skip);
      if (!skip) {
        // Without skip_bad a batch holding a bad file is an error naming it.
        const ImageSource src = open(spec, {});
        require_format_error([&] { src.read(0, src.size()); }, f.bad[0], "empty file");
        continue;
      }
      const LoadOptions opts{.skip_bad = true};
      const Dataset whole = load(spec, opts);
      const ImageSource src = open(spec, opts);
      CHECK(src.has_paths());
      CHECK(src.kind() == DatasetKind::folder);
      CHECK(src.source() == spec);
      CHECK(src.channels() == whole.images.shape()[1]);
      CHECK(src.height() == whole.images.shape()[2]);
      CHECK(src.width() == whole.images.shape()[3]);
      for (std::size_t batch : {std::size_t(1), std::size_t(3), std::size_t(5), src.size(), src.size() + 10}) {
        std::vector<Images> parts;
        std::vector<std::string> paths;
        std::vector<std::string> skipped;
        for (std::size_t i = 0; i < src.size(); i += batch) {
          const Dataset b = src.read(i, batch);
          CHECK(b.size() + b.skipped.size() == std::min(batch, src.size() - i));
          CHECK(b.paths.size() == b.size());
          for (std::size_t k = 0; k < b.size(); ++k) parts.push_back(xt::eval(xt::view(b.images, xt::range(k, k + 1))));
          paths.insert(paths.end(), b.paths.begin(), b.paths.end());
          for (const auto& s : b.skipped) skipped.push_back(s.path);
        }
        CHECK(paths == whole.paths);
        CHECK(same(stack(parts), whole.images));
        std::vector<std::string> whole_skipped;
        for (const auto& s : whole.skipped) whole_skipped.push_back(s.path);
        CHECK(skipped == whole_skipped);
      }
      // path(i) is the listing, readable or not.
      for (std::size_t i = 0; i < src.size(); ++i) CHECK(!src.path(i).empty());
      CHECK(src.path(0) == (dir / "d" / "img_00.png").string());
      CHECK(src.path(1) == f.bad[0].string());
    }
  }
}

TEST_CASE("ImageSource: the same interface for IDX and CIFAR, held in memory", "[source]") {
  TempDir dir;
  const auto img = dir / "t10k-images-idx3-ubyte.gz";
  write_gz(img, idx_images(7, 4, 5, ramp(7 * 4 * 5)));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_labels({1, 2, 3, 4, 5, 6, 7}, 7));
  const ImageSource src = open(img.string() + ":first=6", {.channels = 3});
  CHECK(src.kind() == DatasetKind::idx);
  CHECK_FALSE(src.has_paths());
  CHECK(src.size() == 6);
  CHECK(src.path(5).empty());
  CHECK(src.channels() == 3);
  const Dataset whole = load(img.string() + ":first=6", {.channels = 3});
  const Dataset a = src.read(0, 4), b = src.read(4, 4);
  CHECK(a.size() == 4);
  CHECK(b.size() == 2);
  CHECK(a.paths.empty());
  CHECK(b.labels == std::vector<int>{5, 6});
  std::vector<Images> parts;
  for (std::size_t k = 0; k < 4; ++k) parts.push_back(xt::eval(xt::view(a.images, xt::range(k, k + 1))));
  for (std::size_t k = 0; k < 2; ++k) parts.push_back(xt::eval(xt::view(b.images, xt::range(k, k + 1))));
  CHECK(same(stack(parts), whole.images));
  CHECK(src.read(6, 3).size() == 0);
  CHECK_THROWS_AS(src.read(7, 1), ValueError);
  CHECK_THROWS_AS(src.path(6), ValueError);
}

TEST_CASE("ImageSource lists at open() and decodes only in read()", "[source]") {
  TempDir dir;
  const auto files = png_folder(dir / "f", 3);
  const ImageSource src = open((dir / "f").string());
  CHECK(src.size() == 3);
  CHECK(src.path(2) == files[2].string());
  // A file damaged after open() is found by the batch that reads it.
  write_raw(files[2], {});
  CHECK(src.read(0, 2).size() == 2);
  require_format_error([&] { src.read(2, 1); }, files[2], "empty file");
  CHECK_THROWS_AS(src.read(4, 1), ValueError);
  CHECK(src.read(3, 1).size() == 0);
}

TEST_CASE("parse_load_spec: new options, contradictions, format_load_spec round trip", "[load][spec]") {
  const LoadSpec s = parse_load_spec("photos/set:recursive:size=64:gray:skip=3:first=10");
  CHECK(s.path == "photos/set");
  CHECK(s.recursive);
  CHECK(s.size == std::size_t(64));
  CHECK(s.channels == 1);
  CHECK(s.first == std::size_t(10));
  CHECK(s.skip == 3);
  CHECK(parse_load_spec(format_load_spec(s)).skip == 3);
  CHECK(parse_load_spec(format_load_spec(s)).path == s.path);
  CHECK(format_load_spec(parse_load_spec(format_load_spec(s))) == format_load_spec(s));
  CHECK(parse_load_spec("a.bin:gray28").wanted_size() == std::size_t(28));
  CHECK(parse_load_spec("a.bin:gray28").wanted_channels() == 1);
  CHECK(parse_load_spec("x:rgb").channels == 3);
  CHECK(parse_load_spec("x:gray28:size=28").gray28);
  CHECK_THROWS_WITH(parse_load_spec("x:gray:rgb"), Catch::Contains("contradict"));
  CHECK_THROWS_WITH(parse_load_spec("x:gray28:rgb"), Catch::Contains("contradict"));
  CHECK_THROWS_WITH(parse_load_spec("x:gray28:size=32"), Catch::Contains("contradict"));
  CHECK_THROWS_WITH(parse_load_spec("x:size=0"), Catch::Contains("positive"));
  CHECK_THROWS_WITH(parse_load_spec("x:size=big"), Catch::Contains("not a non-negative integer"));
  CHECK_THROWS_WITH(parse_load_spec("x:first=1:first=2"), Catch::Contains("given twice"));
  CHECK_THROWS_WITH(parse_load_spec("x:recurse"), Catch::Contains("unknown option 'recurse'"));
}
