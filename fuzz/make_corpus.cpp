// Writes the seed corpus of every fuzz target: tiny valid files, one folder
// per target (fuzz/corpus/<target>/). Deterministic; run by `scripts/fuzz
// --make-corpus` after a file format changes, and the result committed.
//   make_fuzz_corpus OUTDIR
#include "fuzz_models.hpp"

#include <scoreood/core/serialization.hpp>
#include <scoreood/data/image_write.hpp>
#include <scoreood/density/gaussian.hpp>
#include <scoreood/density/gmm.hpp>
#include <scoreood/density/knn.hpp>
#include <scoreood/score/trainer.hpp>

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace so = scoreood;
namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

namespace {

void write(const fs::path& p, const Bytes& b) {
  fs::create_directories(p.parent_path());
  std::ofstream os(p, std::ios::binary | std::ios::trunc);
  os.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!os) throw so::Error(p.string() + ": cannot write");
  std::cout << p.string() << " (" << b.size() << " bytes)\n";
}

Bytes gzip(const Bytes& b) {
  z_stream zs{};
  if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw so::Error("deflateInit2");
  Bytes out(deflateBound(&zs, uLong(b.size())) + 64);
  zs.next_in = const_cast<Bytef*>(b.data());
  zs.avail_in = uInt(b.size());
  zs.next_out = out.data();
  zs.avail_out = uInt(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) throw so::Error("deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}
Bytes ramp(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>((i * 7 + i / 3) & 0xFF);
  return b;
}

Bytes file_bytes(const fs::path& p) {
  const auto v = so::io::read_file_bytes(p);
  return Bytes(v.begin(), v.end());
}

template <class Density>
void detector(const fs::path& out, const std::string& features, Density density) {
  auto o = so::fuzz::tiny_options<Density>();
  o.features = so::score::FeatureSet::parse(features);
  so::fuzz::Detector<Density> det(so::fuzz::tiny_schedule(), o, {}, std::move(density));
  det.fit_density(so::fuzz::pattern_images(12, 1, 8));
  fs::create_directories(out.parent_path());
  det.save(out);
  std::cout << out.string() << '\n';
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::cerr << "usage: make_fuzz_corpus OUTDIR\n";
    return 2;
  }
  const fs::path dir = argv[1];

  // IDX: 2 images of 3x4 and 3 labels, raw and gzip.
  Bytes img;
  put_be32(img, 0x00000803);
  put_be32(img, 2);
  put_be32(img, 3);
  put_be32(img, 4);
  const Bytes px = ramp(24);
  img.insert(img.end(), px.begin(), px.end());
  Bytes lab;
  put_be32(lab, 0x00000801);
  put_be32(lab, 3);
  lab.insert(lab.end(), {2, 0, 1});
  write(dir / "fuzz_idx" / "images.idx3", img);
  write(dir / "fuzz_idx" / "images.idx3.gz", gzip(img));
  write(dir / "fuzz_idx" / "labels.idx1", lab);
  write(dir / "fuzz_idx" / "labels.idx1.gz", gzip(lab));

  // CIFAR: one CIFAR-10 record raw; two CIFAR-100 records gzipped.
  Bytes c10{3};
  const Bytes pixels = ramp(3072);
  c10.insert(c10.end(), pixels.begin(), pixels.end());
  write(dir / "fuzz_cifar" / "cifar10-1.bin", c10);
  Bytes c100;
  for (unsigned char fine : {42, 7}) {
    c100.insert(c100.end(), {static_cast<unsigned char>(fine / 5), fine});
    c100.insert(c100.end(), pixels.begin(), pixels.end());
  }
  write(dir / "fuzz_cifar" / "cifar100-2.bin.gz", gzip(c100));

  // Detectors: a fitted one per density, and an unfitted one.
  so::density::GmmOptions go;
  go.components = {1, 2};
  go.restarts = 1;
  detector(dir / "fuzz_detector_gmm" / "gmm-msma-rot.sood", "msma,rot", so::density::Gmm(go));
  detector(dir / "fuzz_detector_gmm" / "gmm-msma-log.sood", "msma,log", so::density::Gmm(go));
  {
    so::fuzz::Detector<so::density::Gmm> det(so::fuzz::tiny_schedule(), so::fuzz::tiny_options<so::density::Gmm>());
    det.save(dir / "fuzz_detector_gmm" / "unfitted.sood");  // the folder exists: gmm seeds were written
  }
  detector(dir / "fuzz_detector_gaussian" / "gaussian-msma-rot.sood", "msma,rot", so::density::Gaussian{});
  detector(dir / "fuzz_detector_knn" / "knn-msma.sood", "msma", so::density::Knn(so::density::KnnOptions{2}));

  // Images: a gray and a colour PNG, a baseline JPEG and a BMP of 5x5 pixels.
  {
    const so::Images gray = so::fuzz::pattern_images(1, 1, 5);
    const so::Images rgb = so::fuzz::pattern_images(1, 3, 5);
    fs::create_directories(dir / "fuzz_image");
    so::data::write_png(dir / "fuzz_image" / "gray.png", gray);
    so::data::write_png(dir / "fuzz_image" / "rgb.png", rgb);
    so::data::write_jpeg(dir / "fuzz_image" / "rgb.jpg", rgb, 0, 80);
    so::data::write_bmp(dir / "fuzz_image" / "gray.bmp", gray);
  }

  // Trainer states after two steps, with and without EMA.
  for (bool ema : {false, true}) {
    so::nn::SmallUNet<> net(so::fuzz::tiny_net());
    const auto p = dir / "fuzz_trainer_state" / (ema ? "state-ema.sood" : "state.sood");
    fs::create_directories(p.parent_path());
    so::score::Trainer<so::nn::SmallUNet<>, so::augment::Rot4> t(
        net, {}, so::fuzz::tiny_sigmas(),
        {.steps = 2, .batch = 2, .ema = ema ? 0.9 : 0.0, .log_every = 0, .checkpoint = p});
    t.run(so::fuzz::pattern_images(4, 1, 8));
    std::cout << p.string() << " (" << file_bytes(p).size() << " bytes)\n";
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "make_fuzz_corpus: " << e.what() << '\n';
  return 1;
}
