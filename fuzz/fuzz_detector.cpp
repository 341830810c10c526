// libFuzzer target: ScoreOOD<SmallUNet, Rot4, SCOREOOD_FUZZ_DENSITY>::load on
// a container whose checksum is fixed up, so mutations reach the body parser.
// A file that loads must also score: two images go through the loaded
// network and density when the network and its settings are small enough to
// be quick.
#include "fuzz_common.hpp"
#include "fuzz_models.hpp"

#include <scoreood/density/gaussian.hpp>
#include <scoreood/density/gmm.hpp>
#include <scoreood/density/knn.hpp>
#include <scoreood/detector_info.hpp>

#ifndef SCOREOOD_FUZZ_DENSITY
#error "define SCOREOOD_FUZZ_DENSITY (Gmm, Gaussian or Knn)"
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace so = scoreood;
  using Density = so::density::SCOREOOD_FUZZ_DENSITY;
  using Det = so::fuzz::Detector<Density>;
  // One detector for the whole run: a failed load must leave it usable.
  static Det det(so::fuzz::tiny_schedule(), so::fuzz::tiny_options<Density>());
  const auto p = so::fuzz::scratch_file("detector.sood");
  so::fuzz::write_file(p, so::fuzz::with_valid_crc(data, size));
  try {
    det.load(p);
  } catch (const so::Error&) {
    return 0;
  }
  // Scoring costs levels x draws network passes: a valid file may ask for 10000 levels or
  // 65536 draws, which is slow, not wrong, so only small settings are scored here.
  const auto& c = det.net().config();
  const so::DetectorInfo info = so::read_detector_info(p);
  if (det.fitted() && c.image_size <= 16 && det.net().parameter_count() <= 50000 && info.draws <= 4 &&
      info.sigmas.size() <= 16) {
    try {
      const auto s = det.score(so::fuzz::pattern_images(2, c.channels, c.image_size));
      if (s.size() != 2) __builtin_trap();
    } catch (const so::Error&) {
      // e.g. huge (finite) weights overflow to a non-finite normality vector: refused, not a crash
    }
  }
  return 0;
}
