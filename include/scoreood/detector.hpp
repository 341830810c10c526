/** @file detector.hpp
 *  @brief ScoreOOD<Net, Aug, Density>: the whole method behind one type.
 *
 *  train()        Eq. 4 (Eq. 1 when Aug is Identity) on in-distribution images
 *  normality()    the multi-scale normality vectors of images (Eq. 2, 3, 5)
 *  fit_density()  fits the density policy on training images' vectors, and on a
 *                 held-out share of them calibrates a decision threshold
 *  score()        negative log-likelihood: higher = more out-of-distribution
 *  is_ood()       score above the threshold
 *  anomaly_map()  per-pixel squared score residuals: where an image looks wrong
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
#include <scoreood/schedule/validate.hpp>
#include <scoreood/score/normality.hpp>
#include <scoreood/score/trainer.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace scoreood {

/// @tparam Net     score network policy (carries its backend), e.g. nn::SmallUNet<backend::cpu>
/// @tparam Aug     augmentation group: Identity (NCSN/MSMA), Rot4 (RotNCSN), Dihedral8, PatchPermutations
/// @tparam Density density policy over normality vectors: density::Gmm, Gaussian, Knn
template <concepts::FloatScoreNetwork Net = nn::SmallUNet<>, concepts::AugmentationGroup Aug = augment::Rot4,
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
    schedule::check_sigmas(sigmas_, "ScoreOOD");  // what load() demands of a file
    check_draws(opt_.draws);
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
    fitted_ = false;  // the density and threshold no longer match the network
    threshold_.reset();
    return r;
  }

  /// N x D normality vectors (D = features().dims(L, |G|)).
  /// `first`: the index of images[0] when a larger set is processed in parts (a stream of
  /// batches); each image's noise follows its index in the whole set, so parts scored with
  /// their offsets give exactly the whole set's values (score, is_ood and anomaly_map alike).
  Matrix<double> normality(const Images& images, const std::string& label = {}, std::uint64_t first = 0) const {
    return score::normality(*net_, aug_, sigmas_, images, normality_options(label, first));
  }

  /// How fit_density() uses its images.
  struct FitOptions {
    std::size_t limit = 0;  ///< use the first `limit` images (0: all)
    /// Share of them held out of the density fit to calibrate the threshold (0: no threshold; also
    /// none when the share is fewer than 10 images). The held-out images are a seeded random
    /// subset, so a set sorted by class is still sampled evenly.
    double holdout = 0.1;
    double keep = 0.95;     ///< share of held-out in-distribution images the threshold keeps (is_ood false)
  };
  /// The calibrated decision rule: is_ood(x) = score(x) > value.
  struct Threshold {
    double value = 0;
    double keep = 0;           ///< the share of held-out in-distribution scores at or below `value`
    std::size_t held_out = 0;  ///< how many images calibrated it (0: set by hand)
  };

  /// Fits the density on the normality vectors of `images` (the first `o.limit`) less a held-out
  /// share, whose scores then set the threshold. Every image gets its vector once either way,
  /// so holding out costs no network passes, only that share of the density's training data.
  void fit_density(const Images& images, FitOptions o) {
    const std::size_t n = o.limit ? std::min<std::size_t>(o.limit, images.shape()[0]) : images.shape()[0];
    if (n == 0) throw ValueError("fit_density: no training images");
    if (!(o.holdout >= 0 && o.holdout < 1)) throw ValueError("fit_density: holdout must be in [0, 1)");
    if (!(o.keep > 0 && o.keep <= 1)) throw ValueError("fit_density: keep must be in (0, 1]");
    // Fewer than kMinHoldout held-out images would make a threshold by chance: then none is held out.
    std::size_t n_hold = std::size_t(std::llround(o.holdout * double(n)));
    if (n_hold < kMinHoldout || n_hold >= n) n_hold = 0;
    Images head = images;
    if (n < images.shape()[0]) {
      head.resize({n, images.shape()[1], images.shape()[2], images.shape()[3]});
      std::copy(images.data(), images.data() + head.size(), head.data());
    }
    const Matrix<double> v = normality(head, "fit");
    if (n_hold == 0) {
      fit_density_on(v);
      return;
    }
    // A seeded random subset: image k is held out when its hash ranks among the n_hold smallest.
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t(0));
    const CounterRng rng(opt_.seed, 0x401D);
    std::vector<std::uint64_t> key(n);
    for (std::size_t k = 0; k < n; ++k) {
      const auto b = rng.block(k);
      key[k] = (std::uint64_t(b.v[1]) << 32) | b.v[0];
    }
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return key[a] < key[b] || (key[a] == key[b] && a < b); });
    std::vector<bool> held(n, false);
    for (std::size_t k = 0; k < n_hold; ++k) held[order[k]] = true;
    const std::size_t D = v.shape()[1];
    Matrix<double> fit_rows = xt::empty<double>({n - n_hold, D}), hold_rows = xt::empty<double>({n_hold, D});
    for (std::size_t k = 0, a = 0, b = 0; k < n; ++k) {
      double* dst = held[k] ? &hold_rows(b++, 0) : &fit_rows(a++, 0);
      std::copy(&v(k, 0), &v(k, 0) + D, dst);
    }
    fit_density_on(fit_rows);
    calibrate_threshold(hold_rows, o.keep);
  }
  /// Fits on the first `limit` images (0: all) with the default held-out share and threshold.
  void fit_density(const Images& images, std::size_t limit = 0) { fit_density(images, FitOptions{.limit = limit}); }

  /// Fits the density on precomputed normality vectors (no threshold: see calibrate_threshold).
  void fit_density_on(const Matrix<double>& vectors) {
    check_vectors(vectors);
    density_.fit(vectors);
    fitted_ = true;
    threshold_.reset();
  }
  /// Sets the threshold from normality vectors of in-distribution images the density did not see:
  /// the smallest score that at least `keep` of them do not exceed.
  void calibrate_threshold(const Matrix<double>& held_out_vectors, double keep = 0.95) {
    if (!(keep > 0 && keep <= 1)) throw ValueError("calibrate_threshold: keep must be in (0, 1]");
    std::vector<double> s = score_vectors(held_out_vectors);
    if (s.empty()) throw ValueError("calibrate_threshold: no held-out vectors");
    std::sort(s.begin(), s.end());
    const std::size_t k = std::size_t(std::ceil(keep * double(s.size()) - 1e-9));
    threshold_ = Threshold{s[std::max<std::size_t>(k, 1) - 1], keep, s.size()};
  }
  /// Sets the decision threshold by hand (e.g. from a validation set of one's own).
  void set_threshold(double value) {
    if (!std::isfinite(value)) throw ValueError("set_threshold: the threshold must be finite");
    threshold_ = Threshold{value, 0, 0};
  }
  const std::optional<Threshold>& threshold() const { return threshold_; }

  /// OOD score per image: -log-likelihood of its normality vector (higher = more OOD).
  std::vector<double> score(const Images& images, const std::string& label = {}, std::uint64_t first = 0) const {
    return score_vectors(normality(images, label, first));
  }
  /// One decision per image: its score is above the threshold (needs a threshold).
  std::vector<bool> is_ood(const Images& images, const std::string& label = {}, std::uint64_t first = 0) const {
    return is_ood_scores(score(images, label, first));
  }
  std::vector<bool> is_ood_scores(std::span<const double> scores) const {
    if (!threshold_) throw Error("ScoreOOD: is_ood() needs a threshold (fit_density with a holdout, or set_threshold)");
    std::vector<bool> out(scores.size());
    for (std::size_t i = 0; i < scores.size(); ++i) out[i] = scores[i] > threshold_->value;
    return out;
  }

  /// What an anomaly map adds up (score::anomaly_maps).
  struct MapOptions {
    enum class Terms {
      clean,     ///< sum_i |sigma_i s(x, i)|^2 on the clean image (the msma term): L network passes
      features,  ///< every term of the detector's features, residuals with the features' noise
    };
    Terms terms = Terms::clean;
    score::MapWeighting weighting = score::MapWeighting::sigma2;  ///< of the residual terms
  };
  /// N x 1 x H x W maps of where each image departs from the model. The default, the clean
  /// image's score alone, localised best and is the cheapest: a 10x10 MNIST patch pasted into
  /// Fashion-MNIST validation images was found by the best 10x10 window of the map in 92 % (NCSN)
  /// and 58 % (RotNCSN) of them, against 86 % / 41 % for all feature terms; the rotated copies'
  /// residuals spread over the whole image (examples/anomaly_localisation.cpp).
  Images anomaly_map(const Images& images, MapOptions mo = {}, const std::string& label = {},
                     std::uint64_t first = 0) const {
    score::NormalityOptions o = normality_options(label, first);
    if (mo.terms == MapOptions::Terms::clean) o.features = score::FeatureSet{.msma = true};
    return score::anomaly_maps(*net_, aug_, sigmas_, images, o, mo.weighting);
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
    // Since format version 2: the threshold (files before it end after the density).
    w.put<std::uint8_t>(threshold_ ? 1 : 0);
    if (threshold_) {
      w.put<double>(threshold_->value);
      w.put<double>(threshold_->keep);
      w.put<std::uint64_t>(threshold_->held_out);
    }
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
    auto sig = r.get_vector<float>("noise levels");
    if (const auto problem = schedule::sigma_problem(sig); !problem.empty()) r.fail(problem);
    score::FeatureSet f;
    try {
      f = score::FeatureSet::parse(r.get_string(64, "features"));
    } catch (const ValueError& e) {
      r.fail(e.what());
    }
    const auto draws = r.get<std::uint64_t>();
    if (draws < 1 || draws > kMaxDraws)
      r.fail("draws " + std::to_string(draws) + " is outside [1, " + std::to_string(kMaxDraws) + "]");
    const auto seed = r.get<std::uint64_t>();
    auto net = std::make_unique<Net>(opt_.net, seed);
    net->load(r);
    if (net->config().num_levels != sig.size()) r.fail("network and schedule disagree on the number of levels");
    Density d;
    const bool fitted = r.get<std::uint8_t>() != 0;
    if (fitted) d.load(r);
    if constexpr (requires { d.dim(); }) {
      // Otherwise every score() would fail on the vectors' length.
      const std::size_t D = f.dims(sig.size(), aug_.size());
      if (fitted && d.dim() != D)
        r.fail("the density was fitted on " + std::to_string(d.dim()) + "-dimensional vectors, but features " +
               f.str() + " with " + std::to_string(sig.size()) + " levels give " + std::to_string(D));
    }
    std::optional<Threshold> thr;
    if (!r.at_end() && r.get<std::uint8_t>() != 0) {
      Threshold t;
      t.value = r.get<double>();
      t.keep = r.get<double>();
      t.held_out = r.get<std::uint64_t>();
      if (!fitted) r.fail("has a threshold but no fitted density");
      if (!std::isfinite(t.value)) r.fail("threshold: not a finite number");
      if (!(t.keep >= 0 && t.keep <= 1)) r.fail("threshold: the kept share is not in [0, 1]");
      thr = t;
    }
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
    threshold_ = thr;
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
    threshold_.reset();
  }
  void set_draws(std::size_t d) {
    check_draws(d);
    opt_.draws = d;
    fitted_ = false;
    threshold_.reset();
  }
  void set_progress(std::ostream* os) { opt_.progress = os; }
  bool fitted() const { return fitted_; }

 private:
  /// Noise draws per image: more than this is a corrupt value, not a setting.
  static constexpr std::uint64_t kMaxDraws = 1u << 16;
  static void check_draws(std::uint64_t d) {
    if (d < 1 || d > kMaxDraws)
      throw ValueError("ScoreOOD: draws " + std::to_string(d) + " is outside [1, " + std::to_string(kMaxDraws) + "]");
  }

  static constexpr std::size_t kMinHoldout = 10;

  score::NormalityOptions normality_options(const std::string& label, std::uint64_t first = 0) const {
    score::NormalityOptions o;
    o.features = *opt_.features;
    o.draws = opt_.draws;
    o.batch = opt_.batch;
    o.seed = opt_.seed ^ 0x5C0DEull;
    o.progress = opt_.progress;
    o.label = label;
    o.first_index = first;
    return o;
  }

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
  std::optional<Threshold> threshold_;
};

}  // namespace scoreood
