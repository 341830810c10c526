// A program built without scoreood::image_io (as a user who links only
// scoreood::scoreood): IDX still loads, and an image folder, list, image file
// or image writer fails naming the component to link. The test programs link
// the component, so this file takes its definition back before any include.
#undef SCOREOOD_IMAGE_IO

#include "dataio_helpers.hpp"

#include <scoreood/data/image_write.hpp>
#include <scoreood/data/load.hpp>
#include <scoreood/data/png.hpp>
#include <scoreood/data/source.hpp>

#include <fstream>

using namespace dataio_test;
using namespace scoreood;
using namespace scoreood::data;

static_assert(!has_image_io, "SCOREOOD_IMAGE_IO was taken back: the fallback path is compiled");

TEST_CASE("Without scoreood::image_io: folders, lists and image files name the component", "[image_io]") {
  TempDir dir;
  fs::create_directories(dir / "photos");
  // write_png_grid needs only zlib, so the fixture can be made here too.
  write_png_grid(dir / "photos" / "a.png", Images::from_shape({1, 1, 2, 2}), 1, 0);
  {
    std::ofstream os(dir / "list.txt");
    os << "photos/a.png\n";
  }
  for (const auto& p : {dir / "photos", dir / "list.txt", dir / "photos" / "a.png"}) {
    INFO(p.string());
    require_format_error([&] { load(p.string()); }, p, "link the CMake target scoreood::image_io");
    require_format_error([&] { open(p.string()); }, p, "libstb-dev");
  }
  require_format_error([&] { write_png(dir / "b.png", Images::from_shape({1, 1, 2, 2})); }, dir / "b.png",
                       "scoreood::image_io");
  // The other formats do not need it.
  const auto idx = dir / "t10k-images-idx3-ubyte";
  write_raw(idx, idx_images(2, 2, 2, ramp(8)));
  CHECK(load(idx.string()).size() == 2);
  CHECK(open(idx.string()).size() == 2);
}
