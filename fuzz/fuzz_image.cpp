// libFuzzer target: the image decoder behind image folders and lists
// (data/image_file.hpp over stb_image: PNG, JPEG, BMP and the rest stb reads),
// header first, then the full decode, as data::load does for each file.
#include "fuzz_common.hpp"

#include <scoreood/data/image_file.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace so = scoreood;
  const auto p = so::fuzz::scratch_file("fuzz-image");
  so::fuzz::write_file(p, data, size);
  try {
    const so::data::ImageInfo info = so::data::read_image_info(p);
    // A few bytes of PNG or JPEG may declare up to kMaxImagePixels (2^27) pixels, which the
    // library decodes as a photo of that size would be: correct, but gigabytes and seconds per
    // input. The header is what a tiny input can get wrong; full decodes are of small images.
    if (info.width * info.height > (std::size_t(1) << 20)) return 0;
    const so::Images x = so::data::read_image(p);
    // A decode that succeeds agrees with the header it was checked against.
    if (x.shape()[0] != 1 || x.shape()[2] != info.height || x.shape()[3] != info.width) __builtin_trap();
    if (x.shape()[1] != info.decoded_channels()) __builtin_trap();
    for (float v : x)
      if (!(v >= 0.0f && v <= 1.0f)) __builtin_trap();  // samples / 255 or / 65535
  } catch (const so::Error&) {
  }
  return 0;
}
