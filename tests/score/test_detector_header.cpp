// read_detector_info: the header of a detector file (what ScoreOOD::save writes before the
// network, and the network's sizes), read back from saved detectors of several policy mixes;
// files of another kind, damaged files and inconsistent headers are refused.
#include <scoreood/scoreood.hpp>
#include <scoreood/nn/nets/ncsn_refinenet.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace scoreood;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "scoreood-detinfo-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

Images ramps(std::size_t n, std::size_t size) {
  Images x = xt::zeros<float>({n, std::size_t(1), size, size});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float((i * 7 + i / 13) % 17) / 16.0f;
  return x;
}
}  // namespace

TEST_CASE("read_detector_info returns what ScoreOOD::save recorded", "[detector][info]") {
  TempDir dir;
  STATIC_REQUIRE(detector_file_kind == ScoreOOD<>::kind);

  SECTION("SmallUNet, Rot4, Gaussian; unfitted and fitted") {
    using Det = ScoreOOD<nn::SmallUNet<>, augment::Rot4, density::Gaussian>;
    Det::Options o;
    o.net = {.channels = 1, .image_size = 8, .width = 4};
    o.features = score::FeatureSet::parse("msma,rot");
    o.draws = 2;
    o.seed = 9;
    Det det(schedule::Geometric{1.0f, 0.05f, 4}, o);
    det.save(dir.path / "unfitted.sood");
    det.fit_density(ramps(12, 8));
    det.save(dir.path / "fitted.sood");
    for (const char* file : {"unfitted.sood", "fitted.sood"}) {
      INFO(file);
      const DetectorInfo info = read_detector_info(dir.path / file);
      CHECK(info.network == "small-unet");
      CHECK(info.augmentation == "rot4");
      CHECK(info.density == "gaussian");
      CHECK(info.sigmas == det.sigmas());
      CHECK(info.features == "msma,rot");
      CHECK(info.draws == 2);
      CHECK(info.seed == 9);
      CHECK(info.sizes == nn::detail::NetSizes{.channels = 1, .image_size = 8, .width = 4, .num_levels = 4});
    }
  }
  SECTION("NcsnRefineNet, Identity, Knn, explicit noise levels") {
    using Det = ScoreOOD<nn::NcsnRefineNet<>, augment::Identity, density::Knn>;
    Det::Options o;
    o.net = {.channels = 3, .image_size = 8, .ngf = 4};
    Det det(schedule::ExplicitList{{0.9f, 0.3f, 0.1f}}, o);
    det.save(dir.path / "ncsn.sood");
    const DetectorInfo info = read_detector_info(dir.path / "ncsn.sood");
    CHECK(info.network == "ncsn");
    CHECK(info.augmentation == "identity");
    CHECK(info.density == "knn");
    CHECK(info.sigmas == std::vector<float>{0.9f, 0.3f, 0.1f});
    CHECK(info.features == "msma,rec");  // Identity's default features
    CHECK(info.draws == 1);
    CHECK(info.seed == 0);
    CHECK(info.sizes == nn::detail::NetSizes{.channels = 3, .image_size = 8, .width = 4, .num_levels = 3});
  }
}

TEST_CASE("read_detector_info refuses files that are not detectors", "[detector][info]") {
  TempDir dir;
  using Net = nn::SmallUNet<>;
  Net net({.channels = 1, .image_size = 8, .width = 4, .num_levels = 3});

  SECTION("a trainer state") {
    score::Trainer<Net, augment::Rot4> trainer(net, {}, {1.0f, 0.3f, 0.1f}, {});
    trainer.save(dir.path / "run.state");
    CHECK_THROWS_AS(read_detector_info(dir.path / "run.state"), FormatError);
    CHECK_THROWS_WITH(read_detector_info(dir.path / "run.state"),
                      Catch::Contains("run.state") && Catch::Contains("holds a 'scoreood-train-state'") &&
                          Catch::Contains("expected a 'scoreood-detector'"));
  }
  SECTION("a file that is no scoreood file at all, or a missing one") {
    std::ofstream(dir.path / "text.sood") << "this is not a detector file";
    CHECK_THROWS_WITH(read_detector_info(dir.path / "text.sood"), Catch::Contains("bad magic"));
    CHECK_THROWS_AS(read_detector_info(dir.path / "missing.sood"), Error);
  }
  SECTION("a truncated detector") {
    ScoreOOD<Net, augment::Rot4, density::Gmm> det(schedule::Geometric{1.0f, 0.1f, 3},
                                                   {.net = {.channels = 1, .image_size = 8, .width = 4}});
    det.save(dir.path / "d.sood");
    auto bytes = io::read_file_bytes(dir.path / "d.sood");
    bytes.resize(bytes.size() / 2);
    io::write_file_atomic(dir.path / "cut.sood", bytes);
    CHECK_THROWS_AS(read_detector_info(dir.path / "cut.sood"), FormatError);
  }
  SECTION("a detector header that disagrees with its network") {
    auto write = [&](const fs::path& p, std::string_view net_in_header, std::vector<float> sigmas,
                     std::uint64_t net_levels) {
      io::ByteWriter w;
      w.put_string("small-unet");
      w.put_string("rot4");
      w.put_string("gmm");
      w.put_vector(sigmas);
      w.put_string("msma");
      w.put<std::uint64_t>(1);
      w.put<std::uint64_t>(0);
      nn::detail::write_net_header(w, net_in_header, {.channels = 1, .image_size = 8, .width = 4, .num_levels = net_levels});
      io::save_container(p, detector_file_kind, w);
    };
    write(dir.path / "ok.sood", "small-unet", {1.0f, 0.5f}, 2);
    CHECK(read_detector_info(dir.path / "ok.sood").sizes.num_levels == 2);
    write(dir.path / "other-net.sood", "ncsn", {1.0f, 0.5f}, 2);
    CHECK_THROWS_WITH(read_detector_info(dir.path / "other-net.sood"), Catch::Contains("holds a 'ncsn' network"));
    write(dir.path / "levels.sood", "small-unet", {1.0f, 0.5f}, 3);
    CHECK_THROWS_WITH(read_detector_info(dir.path / "levels.sood"), Catch::Contains("number of levels"));
    write(dir.path / "none.sood", "small-unet", {}, 0);
    CHECK_THROWS_WITH(read_detector_info(dir.path / "none.sood"), Catch::Contains("no noise levels"));
  }
}
