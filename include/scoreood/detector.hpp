/** @file detector.hpp
 *  @brief ScoreOOD<Net, Aug, Density>: the whole method behind one type.
 *
 *  train()        Eq. 4 (Eq. 1 when Aug is Identity) on in-distribution images
 *  normality()    the multi-scale normality vectors of images (Eq. 2, 3, 5)
 *  fit_density()  fits the density policy on training images' vectors
 *  score()        negative log-likelihood: higher = more out-of-distribution
 *  save()/load()  network, schedule, features and density in one checked file
 *
 *  Threads: every `const` method (normality, score, score_vectors, save, the
 *  accessors) may be called from any number of threads at once on one
 *  detector, e.g. a server scoring requests concurrently; each call works in
 *  its own scratch (the network's `Workspace`, nn/workspace.hpp) and gives
 *  bit for bit the result of a lone call. A progress stream set with
 *  set_progress() is then written from several threads: use one that is safe
 *  to share (std::cout is) or none. The non-const methods (train, fit_density,
 *  load, set_*) need the detector to themselves. */
#pragma once
#include <scoreood/augment/identity.hpp>
#include <scoreood/augment/rot4.hpp>
#include <scoreood/concepts.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/density/gmm.hpp>
#include <scoreood/nn/nets/small_unet.hpp>
#include <scoreood/schedule/geometric.hpp>
#include <scoreood/score/normality.hpp>
#include <scoreood/score/trainer.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

namespace scoreood {

/// @tparam Net     score network policy (carries its backend), e.g. nn::SmallUNet<backend::cpu>
/// @tparam Aug     augmentation group: Identity (NCSN/MSMA), Rot4 (RotNCSN), Dihedral8, PatchPermutations
/// @tparam Density density policy over normality vectors: density::Gmm, Gaussian, Knn
template <concepts::ScoreNetwork Net = nn::SmallUNet<>, concepts::AugmentationGroup Aug = augment::Rot4,
          concepts::DensityModel Density = density::Gmm>
class ScoreOOD {
 public:
  using net_type = Net;
  using aug_type = Aug;
  using density_type = Density;
  static constexpr std::string_view kind = "scoreood-detector";

  struct Options {
    typename Net::Config net{};
    /// Normality vector fed to the density; empty: rot for a real group, msma+rec for Identity.
    std::optional<score::FeatureSet> features{};
    std::size_t draws = 1;          ///< noise draws per image for rec/rot (the paper: 1)
    std::size_t batch = 64;         ///< images per network call when extracting features
    std::uint64_t seed = 0;         ///< network initialisation and feature noise
    std::ostream* progress = nullptr;
  };

  /// @param schedule any NoiseSchedule policy; its level count sets the network's.
  template <concepts::NoiseSchedule Schedule = schedule::Geometric>
  explicit ScoreOOD(Schedule schedule = {}, Options opt = {}, Aug aug = {}, Density density = {})
      : sigmas_(schedule.sigmas()), opt_(std::move(opt)), aug_(std::move(aug)), density_(std::move(density)) {
    opt_.net.num_levels = sigmas_.size();
    if (!opt_.features) opt_.features = default_features();
    net_ = std::make_unique<Net>(opt_.net, opt_.seed);
  }

  /// Trains the score network (Eq. 4, or Eq. 1 for Identity). Resumes from
  /// `resume_from` when given (a trainer checkpoint).
  score::TrainResult train(const Images& images, score::TrainOptions opt,
                           const std::filesystem::path& resume_from = {}) {
    if (!opt.progress) opt.progress = opt_.progress;
    score::Trainer<Net, Aug> trainer(*net_, aug_, sigmas_, opt);
    if (!resume_from.empty()) trainer.load(resume_from);
    auto r = trainer.run(images);
    fitted_ = false;  // the density no longer matches the network
    return r;
  }

  /// N x D normality vectors (D = features().dims(L, |G|)).
  Matrix<double> normality(const Images& images, const std::string& label = {}) const {
    score::NormalityOptions o;
    o.features = *opt_.features;
    o.draws = opt_.draws;
    o.batch = opt_.batch;
    o.seed = opt_.seed ^ 0x5C0DEull;
    o.progress = opt_.progress;
    o.label = label;
    return score::normality(*net_, aug_, sigmas_, images, o);
  }

  /// Fits the density on the normality vectors of (the first `limit` of) `images`.
  void fit_density(const Images& images, std::size_t limit = 0) {
    const std::size_t n = limit ? std::min<std::size_t>(limit, images.shape()[0]) : images.shape()[0];
    if (n == 0) throw ValueError("fit_density: no training images");
    Images head = images;
    if (n < images.shape()[0]) {
      head.resize({n, images.shape()[1], images.shape()[2], images.shape()[3]});
      std::copy(images.data(), images.data() + head.size(), head.data());
    }
    fit_density_on(normality(head, "fit"));
  }
  /// Fits the density on precomputed normality vectors.
  void fit_density_on(const Matrix<double>& vectors) {
    check_vectors(vectors);
    density_.fit(vectors);
    fitted_ = true;
  }

  /// OOD score per image: -log-likelihood of its normality vector (higher = more OOD).
  std::vector<double> score(const Images& images, const std::string& label = {}) const {
    return score_vectors(normality(images, label));
  }
  std::vector<double> score_vectors(const Matrix<double>& vectors) const {
    if (!fitted_) throw Error("ScoreOOD: score() before fit_density()");
    check_vectors(vectors);
    const Vector<double> ll = density_.log_likelihood(vectors);
    std::vector<double> s(ll.size());
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = -ll(i);
    return s;
  }

  void save(const std::filesystem::path& path) const {
    io::ByteWriter w;
    w.put_string(Net::name);
    w.put_string(Aug::name);
    w.put_string(Density::name);
    w.put_vector(sigmas_);
    w.put_string(opt_.features->str());
    w.put<std::uint64_t>(opt_.draws);
    w.put<std::uint64_t>(opt_.seed);
    net_->save(w);
    w.put<std::uint8_t>(fitted_ ? 1 : 0);
    if (fitted_) density_.save(w);
    io::save_container(path, kind, w);
  }

  void load(const std::filesystem::path& path) {
    const auto body = io::load_container(path, kind);
    io::ByteReader r(body, path.string());
    auto expect_name = [&](std::string_view want, const char* what) {
      const std::string got = r.get_string(64);
      if (got != want)
        r.fail(std::string("holds a ") + what + " '" + got + "', this detector uses '" + std::string(want) + "'");
    };
    expect_name(Net::name, "network");
    expect_name(Aug::name, "augmentation");
    expect_name(Density::name, "density");
    auto sig = r.get_vector<float>();
    if (sig.empty()) r.fail("has no noise levels");
    score::FeatureSet f;
    try {
      f = score::FeatureSet::parse(r.get_string(64));
    } catch (const ValueError& e) {
      r.fail(e.what());
    }
    const auto draws = r.get<std::uint64_t>();
    const auto seed = r.get<std::uint64_t>();
    auto net = std::make_unique<Net>(opt_.net, seed);
    net->load(r);
    if (net->config().num_levels != sig.size()) r.fail("network and schedule disagree on the number of levels");
    Density d;
    const bool fitted = r.get<std::uint8_t>() != 0;
    if (fitted) d.load(r);
    if (!r.at_end()) r.fail("unexpected data after the detector");
    // Commit only after everything parsed: a failed load leaves the detector as it was.
    sigmas_ = std::move(sig);
    opt_.features = f;
    opt_.draws = draws;
    opt_.seed = seed;
    opt_.net = net->config();
    net_ = std::move(net);
    density_ = std::move(d);
    fitted_ = fitted;
  }
  static ScoreOOD from_file(const std::filesystem::path& path, Aug aug = {}) {
    ScoreOOD det(schedule::Geometric{}, {}, std::move(aug));
    det.load(path);
    return det;
  }

  Net& net() { return *net_; }
  const Net& net() const { return *net_; }
  const Aug& augmentation() const { return aug_; }
  Density& density() { return density_; }
  const Density& density() const { return density_; }
  const std::vector<float>& sigmas() const { return sigmas_; }
  const score::FeatureSet& features() const { return *opt_.features; }
  void set_features(const score::FeatureSet& f) {
    if (!f.any()) throw ValueError("ScoreOOD: no feature selected");
    opt_.features = f;
    fitted_ = false;
  }
  void set_draws(std::size_t d) { opt_.draws = d; fitted_ = false; }
  void set_progress(std::ostream* os) { opt_.progress = os; }
  bool fitted() const { return fitted_; }

 private:
  static score::FeatureSet default_features() {
    if constexpr (std::is_same_v<Aug, augment::Identity>) return score::FeatureSet{.msma = true, .rec = true};
    // The per-element vector with msma, in log space: the best measured on a validation
    // split (examples/models/README.md); the paper's f_rot is FeatureSet{.rot = true}.
    else return score::FeatureSet{.msma = true, .per_element = true, .log = true};
  }
  void check_vectors(const Matrix<double>& v) const {
    const std::size_t D = opt_.features->dims(sigmas_.size(), aug_.size());
    if (v.shape()[1] != D)
      throw ShapeError("ScoreOOD: normality vectors have " + std::to_string(v.shape()[1]) + " columns, expected " +
                       std::to_string(D) + " for features " + opt_.features->str());
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v.data()[i]))
        throw ValueError("ScoreOOD: normality vector " + std::to_string(i / D) + " is not finite");
  }

  std::vector<float> sigmas_;
  Options opt_;
  Aug aug_;
  Density density_;
  std::unique_ptr<Net> net_;
  bool fitted_ = false;
};

}  // namespace scoreood
