// examples/image_folder_ood (the README's image-folder snippet) run on folders of PNG
// files made here from Fashion-MNIST (in-distribution) and MNIST (OOD; rotated
// Fashion-MNIST where the MNIST test file is not found).
#include <scoreood/scoreood.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#ifndef SCOREOOD_IMAGE_FOLDER_EXAMPLE
#error "SCOREOOD_IMAGE_FOLDER_EXAMPLE (the example program) must be defined by tests/CMakeLists.txt"
#endif

namespace fs = std::filesystem;
namespace so = scoreood;

namespace {
void write_pngs(const so::Images& x, const fs::path& dir, const std::string& prefix) {
  fs::create_directories(dir);
  for (std::size_t i = 0; i < x.shape()[0]; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "%s%03zu.png", prefix.c_str(), i);
    so::data::write_png(dir / name, x, i);
  }
}
}  // namespace

TEST_CASE("image_folder_ood trains, thresholds, scores a folder and writes maps", "[examples][image_io]") {
  const fs::path dir = fs::temp_directory_path() / "scoreood-image-folder-example";
  fs::remove_all(dir);
  const auto train = so::data::load("fashion-mnist/train-images-idx3-ubyte.gz:first=200").images;
  const auto test = so::data::load("fashion-mnist/t10k-images-idx3-ubyte.gz:first=12").images;
  so::Images ood;
  try {
    ood = so::data::load("mnist/t10k-images-idx3-ubyte.gz:first=12").images;
  } catch (const so::FormatError&) {
    ood = so::augment::apply_transform(test, "rot90", 0);
  }
  write_pngs(train, dir / "train", "fashion-");
  write_pngs(test, dir / "score", "a-fashion-");
  write_pngs(ood, dir / "score", "b-ood-");
  std::ofstream(dir / "score" / "c-broken.png") << "not a png";  // skipped and reported

  const std::string cmd = std::string("'") + SCOREOOD_IMAGE_FOLDER_EXAMPLE + "' --train '" + (dir / "train").string() +
                          "' --score '" + (dir / "score").string() + "' --out '" + (dir / "out").string() +
                          "' --steps 40 >'" + (dir / "log.txt").string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::stringstream log;
  log << std::ifstream(dir / "log.txt").rdbuf();
  INFO(log.str());
  REQUIRE(rc == 0);
  CHECK(log.str().find("skipped " + (dir / "score" / "c-broken.png").string()) != std::string::npos);

  // One line per readable file, in path order: path, score, 0|1.
  std::ifstream tsv(dir / "out" / "scores.tsv");
  std::vector<std::string> paths;
  std::vector<double> scores;
  std::vector<int> flags;
  std::string path;
  double s;
  int f;
  while (std::getline(tsv, path, '\t') && tsv >> s >> f) {
    tsv.ignore(1);
    paths.push_back(path);
    scores.push_back(s);
    flags.push_back(f);
  }
  REQUIRE(paths.size() == 24);
  CHECK(std::is_sorted(paths.begin(), paths.end()));
  CHECK(fs::path(paths.front()).filename() == "a-fashion-000.png");
  CHECK(fs::path(paths.back()).filename() == "b-ood-011.png");

  // The detector file holds the threshold that decided each flag.
  using Det = so::ScoreOOD<so::nn::SmallUNet<>, so::augment::Rot4, so::density::Gmm>;
  const auto det = Det::from_file(dir / "out" / "detector.sood");
  REQUIRE(det.threshold());
  CHECK(det.threshold()->held_out == 20);
  for (std::size_t i = 0; i < scores.size(); ++i) CHECK(flags[i] == (scores[i] > det.threshold()->value ? 1 : 0));
  const std::vector<double> s_in(scores.begin(), scores.begin() + 12), s_out(scores.begin() + 12, scores.end());
  CHECK(so::metrics::auroc(s_in, s_out) > 0.6);  // 40 steps already tell these sets apart

  // A map per image: the image and its heat map side by side, 4x enlarged.
  const auto info = so::data::read_image_info(dir / "out" / "maps" / "b-ood-003.png");
  CHECK(info.width == (2 * 28 + 2) * 4);
  CHECK(info.height == 28 * 4);
  CHECK(info.channels == 3);
  fs::remove_all(dir);
}
