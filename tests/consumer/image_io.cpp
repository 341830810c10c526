// Built by both consumer projects against scoreood::image_io (the optional
// component): writes two PNGs, reads the folder back; exits non-zero on any mismatch.
#include <scoreood/data/image_write.hpp>
#include <scoreood/data/load.hpp>
#include <scoreood/data/source.hpp>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

int main() {
  namespace fs = std::filesystem;
  namespace data = scoreood::data;
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) std::fprintf(stderr, "consumer image_io: FAILED %s\n", what), ++failures;
  };
  check(data::has_image_io, "SCOREOOD_IMAGE_IO reaches the consumer");
  const fs::path dir = fs::temp_directory_path() / ("scoreood-consumer-image_io-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  scoreood::Images x = scoreood::Images::from_shape({2, 3, 4, 5});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float(i % 256) / 255.0f;
  data::write_png(dir / "b.png", x, 1);
  data::write_png(dir / "a.png", x, 0);
  const data::Dataset d = data::load(dir.string());
  check(d.size() == 2 && d.paths.size() == 2 && d.paths[0] == (dir / "a.png").string(), "folder order and paths");
  check(d.images == x, "PNG pixels round trip");
  const data::ImageSource src = data::open(dir.string() + ":gray", {.image_size = 2});
  check(src.size() == 2 && src.channels() == 1 && src.height() == 2 && src.read(1, 1).size() == 1, "streaming source");
  fs::remove_all(dir);
  if (failures == 0) std::printf("consumer image_io: OK\n");
  return failures == 0 ? 0 : 1;
}
