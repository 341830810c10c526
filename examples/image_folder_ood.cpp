// A user's own images: train a detector on a folder of in-distribution images (or load
// one), fit it with a decision threshold, score another folder file by file, streamed in
// batches, and write each image beside its anomaly map.
//   image_folder_ood --train DIR --score DIR --out DIR [--steps N] [--model FILE]
// Writes OUT/scores.tsv (path, score, is_ood per line, in input order), OUT/maps/*.png
// and OUT/detector.sood. Any folder of PNG, JPEG or BMP files works: they are read in
// gray and resized to 28x28 for the network. The training folder needs at least 100 images
// (10 % of them, at least 10, calibrate the threshold).
#include <scoreood/scoreood.hpp>

#include <CLI/CLI.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

namespace so = scoreood;
namespace fs = std::filesystem;

int main(int argc, char** argv) try {
  CLI::App app{"Train or load a detector, fit a threshold, score a folder of images and write anomaly maps"};
  std::string train_dir, score_dir, out_dir, model;
  std::size_t steps = 300;
  app.add_option("--train", train_dir, "folder (or list file) of in-distribution images")->required();
  app.add_option("--score", score_dir, "folder (or list file) of images to score")->required();
  app.add_option("--out", out_dir, "folder for scores.tsv, maps/ and detector.sood")->required();
  app.add_option("--steps", steps, "training steps (ignored with --model)");
  app.add_option("--model", model, "start from this trained detector file instead of training");
  CLI11_PARSE(app, argc, argv);
  const fs::path out = out_dir;
  fs::create_directories(out / "maps");

  // --- README snippet begins
  using Detector = so::ScoreOOD<so::nn::SmallUNet<so::backend::cpu>, so::augment::Rot4, so::density::Gmm>;
  const so::data::LoadOptions as_net{.channels = 1, .image_size = 28, .skip_bad = true};  // the network's input
  const auto train = so::data::load(train_dir, as_net);  // every PNG/JPEG/BMP of the folder, sorted by path
  Detector det{so::schedule::Geometric{1.0f, 0.01f, 10}};
  if (model.empty()) det.train(train.images, {.steps = steps, .batch = 128, .progress = &std::cout});
  else det = Detector::from_file(model);
  det.fit_density(train.images, {.holdout = 0.1, .keep = 0.95});  // threshold: 95 % of held-out images pass
  const so::data::ImageSource images = so::data::open(score_dir, as_net);  // decoded batch by batch
  std::ofstream scores(out / "scores.tsv");
  for (std::size_t first = 0; first < images.size(); first += 256) {
    const so::data::Dataset batch = images.read(first, 256);  // bad files are skipped and listed
    const std::vector<double> s = det.score(batch.images);
    const std::vector<bool> ood = det.is_ood_scores(s);
    const so::Images maps = det.anomaly_map(batch.images);  // N x 1 x 28 x 28: where each image looks wrong
    for (std::size_t k = 0; k < s.size(); ++k) {
      scores << batch.paths[k] << '\t' << s[k] << '\t' << ood[k] << '\n';
      so::data::write_heatmap_png(out / "maps" / (fs::path(batch.paths[k]).stem().string() + ".png"), batch.images,
                                  maps, k);
    }
    for (const auto& bad : batch.skipped) std::cerr << "skipped " << bad.path << ": " << bad.reason << '\n';
  }
  det.save(out / "detector.sood");
  // --- README snippet ends
  std::cout << "scored " << images.size() << " images against the threshold " << det.threshold()->value << " ("
            << det.threshold()->held_out << " held-out images); wrote " << (out / "scores.tsv").string() << '\n';
  return 0;
} catch (const std::exception& e) {
  std::cerr << "image_folder_ood: " << e.what() << '\n';
  return 1;
}
