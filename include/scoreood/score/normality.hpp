/** @file normality.hpp
 *  @brief Multi-scale "normality vectors" of images (Eq. 2, 3, 5).
 *
 *  For each level i (sigma_i) and image x:
 *    msma_i = || sigma_i s(x, i) ||                                   (Eq. 2, clean x)
 *    rec_i  = E || s(x~, i) + (x~ - x)/sigma_i^2 ||,  x~ = x + sigma_i z  (Eq. 3)
 *    rot_i  = E sum_r || s(r(x~), i) + (x~ - x)/sigma_i^2 ||          (Eq. 5)
 *    elem_(i,r) = E || s(r(x~), i) + (x~ - x)/sigma_i^2 ||            (the L x |G| terms of Eq. 5)
 *  With the `log` modifier every entry is replaced by its logarithm: the norms
 *  are positive scale-like quantities with long right tails, and a GMM fits
 *  their logarithms far better (measured on a validation split, see
 *  examples/models/README.md); the Gaussian/GMM models then see ratios between
 *  levels and group elements as differences.
 *  E is a mean over `draws` noise draws (the paper uses one). rec is the
 *  identity element's term, so it comes free with rot. The noise of image n
 *  is a counter-based function of (seed, n, level, draw): vectors do not
 *  depend on the batch size or on which other images are in the batch. */
#pragma once
#include <scoreood/concepts.hpp>
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/backend.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scoreood::score {

/// Which normality vectors to concatenate, in this order: msma, rec, rot, per-element;
/// `log` takes the logarithm of every entry.
struct FeatureSet {
  bool msma = false, rec = false, rot = false, per_element = false;
  bool log = false;  ///< a modifier, not a vector: log of every entry

  static FeatureSet parse(std::string_view list) {
    FeatureSet f;
    std::size_t pos = 0;
    while (pos <= list.size()) {
      const std::size_t end = std::min(list.find(',', pos), list.size());
      const std::string_view tok = list.substr(pos, end - pos);
      if (tok == "msma") f.msma = true;
      else if (tok == "rec") f.rec = true;
      else if (tok == "rot") f.rot = true;
      else if (tok == "elem" || tok == "per-element" || tok == "per_element") f.per_element = true;
      else if (tok == "log") f.log = true;
      else if (!tok.empty())
        throw ValueError("unknown feature '" + std::string(tok) + "' (valid: msma, rec, rot, elem, and the modifier log)");
      pos = end + 1;
    }
    if (!f.any()) throw ValueError("no feature selected in '" + std::string(list) + "' (valid: msma, rec, rot, elem)");
    return f;
  }
  std::string str() const {
    std::string s;
    auto add = [&](bool on, const char* n) { if (on) s += (s.empty() ? "" : ",") + std::string(n); };
    add(msma, "msma");
    add(rec, "rec");
    add(rot, "rot");
    add(per_element, "elem");
    add(log, "log");
    return s;
  }
  bool any() const { return msma || rec || rot || per_element; }
  bool needs_noise() const { return rec || rot || per_element; }
  std::size_t dims(std::size_t L, std::size_t G) const {
    return L * ((msma ? 1 : 0) + (rec ? 1 : 0) + (rot ? 1 : 0) + (per_element ? G : 0));
  }
};

/// Replaces every entry by its logarithm (the `log` modifier of FeatureSet),
/// for vectors computed without it.
inline void log_features(Matrix<double>& v) {
  for (double& x : v) x = std::log(std::max(x, 1e-300));
}

struct NormalityOptions {
  FeatureSet features{.rot = true};
  std::size_t draws = 1;       ///< noise draws averaged (K)
  std::size_t batch = 64;      ///< images per network call (times |G| for the group terms)
  std::uint64_t seed = 0x5C0DE;
  std::ostream* progress = nullptr;
  std::string label;           ///< shown in progress lines
  /// Index of images[0] in the whole set when a set is processed in parts (streamed): an
  /// image's noise follows its index in the whole set, so the parts give the whole set's values.
  std::uint64_t first_index = 0;
};

namespace detail {

/// The network passes behind the normality vectors and the anomaly maps, batch by
/// batch and level by level, with the noise both must share, in the network's backend:
///   clean(ctx, n0, B, i, s)            when `want_clean`: s = s(x, i) for images n0 .. n0+B-1;
///   noisy(ctx, n0, B, i, d, z, s)      for draw d of `groups` group elements (0 = identity): z holds
///                                      the B noise images, s the B*groups scores, group-major.
/// Each clean batch goes to the backend once; only what the callbacks reduce comes back.
/// Checks the inputs and reports progress.
template <class Net, class Aug, class Clean, class Noisy>
void network_passes(const Net& net, const Aug& aug, std::span<const float> sigmas, const Images& images,
                    const NormalityOptions& opt, bool want_clean, std::size_t groups, Clean&& clean, Noisy&& noisy,
                    const char* what) {
  using B = typename Net::backend_type;
  using Ops = backend::ops<B>;
  const auto& cfg = net.config();
  const std::size_t N = images.shape()[0], C = images.shape()[1], H = images.shape()[2], W = images.shape()[3];
  const std::size_t P = C * H * W, L = sigmas.size();
  if (N == 0) throw ValueError(std::string(what) + ": no images");
  if (C != cfg.channels || H != cfg.image_size || W != cfg.image_size)
    throw ShapeError(std::string(what) + ": images " + to_string(shape_of(images)) + " do not fit the network (" +
                     std::to_string(cfg.channels) + " x " + std::to_string(cfg.image_size) + " x " +
                     std::to_string(cfg.image_size) + ")");
  if (L != cfg.num_levels)
    throw ValueError(std::string(what) + ": schedule and network disagree on the number of levels");
  if (opt.draws == 0 || opt.batch == 0) throw ValueError(std::string(what) + ": draws and batch must be positive");
  for (std::size_t k = 0; k < groups; ++k) aug.check_shape(C, H, W, k);  // throw here, never inside a parallel loop

  typename Net::Workspace ws;  // this call's own scratch and context: several threads may run it at once
  auto& ctx = ws.ctx;
  Images host_batch;
  typename Net::Tensor staging, in, s, z;
  std::vector<int> levels;
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  std::size_t last_report = 0;

  for (std::size_t n0 = 0; n0 < N; n0 += opt.batch) {
    const std::size_t Bn = std::min(opt.batch, N - n0);
    host_batch.resize({Bn, C, H, W});
    std::copy(images.data() + n0 * P, images.data() + (n0 + Bn) * P, host_batch.data());
    const auto& x = Ops::to_backend(ctx, host_batch, staging);  // the CPU: host_batch itself
    for (std::size_t i = 0; i < L; ++i) {
      const float sg = sigmas[i];
      if (want_clean) {
        levels.assign(Bn, int(i));
        net.infer(ws, x, levels, s);
        clean(ctx, n0, Bn, i, std::as_const(s));
      }
      if (groups == 0) continue;
      for (std::size_t d = 0; d < opt.draws; ++d) {
        const CounterRng rng = CounterRng(opt.seed, 0x4E0).substream(d * L + i);
        Ops::resize(in, Shape4{Bn * groups, C, H, W});
        Ops::resize(z, Shape4{Bn, C, H, W});
        Ops::noisy_copies(ctx, x, opt.first_index + n0, sg, rng, groups, aug, in, z);
        levels.assign(Bn * groups, int(i));
        net.infer(ws, in, levels, s);
        noisy(ctx, n0, Bn, i, d, std::as_const(z), std::as_const(s));
      }
    }
    if (opt.progress && (n0 + Bn == N || n0 + Bn - last_report >= 1000)) {
      last_report = n0 + Bn;
      const double secs = std::chrono::duration<double>(clock::now() - t0).count();
      const double rate = double(n0 + Bn) / std::max(secs, 1e-9);
      *opt.progress << "  " << what << ' ' << opt.label << (opt.label.empty() ? "" : " ") << n0 + Bn << '/' << N
                    << "  " << int(rate) << " img/s";
      if (n0 + Bn < N) {
        const int eta = int(double(N - n0 - Bn) / std::max(rate, 1e-9));
        *opt.progress << "  ETA " << eta / 60 << 'm' << (eta % 60 < 10 ? "0" : "") << eta % 60 << 's';
      }
      *opt.progress << std::endl;
    }
  }
}

}  // namespace detail

/// N x D normality vectors of `images` (D = features.dims(L, |G|)), in double.
template <concepts::FloatScoreNetwork Net, concepts::AugmentationGroup Aug>
Matrix<double> normality(const Net& net, const Aug& aug, std::span<const float> sigmas, const Images& images,
                         const NormalityOptions& opt) {
  const std::size_t N = images.shape()[0];
  const std::size_t L = sigmas.size(), G = aug.size();
  const FeatureSet& f = opt.features;
  if (!f.any()) throw ValueError("normality: no feature selected");
  // Group terms needed: all of them for rot/per-element, the identity alone for rec.
  const std::size_t groups = (f.rot || f.per_element) ? G : (f.rec ? 1 : 0);
  std::vector<double> elem(N * L * G, 0.0), msma(N * L, 0.0);
  std::vector<double> norms(std::max<std::size_t>(groups, 1) * std::min(opt.batch, N));  // one batch's norms

  detail::network_passes(
      net, aug, sigmas, images, opt, f.msma, groups,
      [&](auto& ctx, std::size_t n0, std::size_t B, std::size_t i, const auto& s) {
        backend::ops<typename Net::backend_type>::scaled_norms(ctx, s, sigmas[i], std::span<double>(norms).first(B));
        for (std::size_t b = 0; b < B; ++b) msma[(n0 + b) * L + i] = norms[b];
      },
      [&](auto& ctx, std::size_t n0, std::size_t B, std::size_t i, std::size_t, const auto& z, const auto& s) {
        // || s + (x~ - x)/sigma^2 || = || s + z/sigma ||
        const std::span<double> r = std::span<double>(norms).first(groups * B);
        backend::ops<typename Net::backend_type>::residual_norms(ctx, s, z, sigmas[i], groups, r);
        for (std::size_t g = 0; g < groups; ++g)
          for (std::size_t b = 0; b < B; ++b) elem[((n0 + b) * L + i) * G + g] += r[g * B + b] / double(opt.draws);
      },
      "normality");

  Matrix<double> out = xt::zeros<double>({N, f.dims(L, G)});
  for (std::size_t n = 0; n < N; ++n) {
    std::size_t col = 0;
    auto put = [&](double v) { out(n, col++) = v; };
    if (f.msma)
      for (std::size_t i = 0; i < L; ++i) put(msma[n * L + i]);
    if (f.rec)
      for (std::size_t i = 0; i < L; ++i) put(elem[(n * L + i) * G + 0]);
    if (f.rot)
      for (std::size_t i = 0; i < L; ++i) {
        double sum = 0;
        for (std::size_t g = 0; g < G; ++g) sum += elem[(n * L + i) * G + g];
        put(sum);
      }
    if (f.per_element)
      for (std::size_t i = 0; i < L; ++i)
        for (std::size_t g = 0; g < G; ++g) put(elem[(n * L + i) * G + g]);
  }
  if (f.log) log_features(out);
  return out;
}

/// How the levels of an anomaly map are weighted.
enum class MapWeighting {
  none,    ///< sum_i |s + z/sigma_i|^2 as written: the smallest sigma dominates (|z/sigma| ~ 1/sigma)
  sigma2,  ///< sum_i sigma_i^2 |s + z/sigma_i|^2 = sum_i |sigma_i s + z|^2: every level on the scale of the DSM loss
};

/// Per-pixel anomaly maps, N x 1 x H x W: the squared score residuals behind the features,
///   map(p) = sum_i w_i sum_g mean_draws sum_c (s(r_g(x~), i) + z/sigma_i)^2        (the rec/rot/elem terms)
///          + sum_i sum_c (sigma_i s(x, i))^2                                      (when features has msma)
/// with w_i = 1 or sigma_i^2 (`weighting`), over the group elements the features use and with
/// their noise (the same seed, draws and images), so a map shows where an image's normality
/// vector comes from. The network predicts the un-transformed noise, so every residual is
/// already in the image's frame: no inverse transform is needed.
template <concepts::FloatScoreNetwork Net, concepts::AugmentationGroup Aug>
Images anomaly_maps(const Net& net, const Aug& aug, std::span<const float> sigmas, const Images& images,
                    const NormalityOptions& opt, MapWeighting weighting = MapWeighting::sigma2) {
  const std::size_t N = images.shape()[0], H = images.shape()[2], W = images.shape()[3];
  const std::size_t HW = H * W;
  const FeatureSet& f = opt.features;
  if (!f.any()) throw ValueError("anomaly_maps: no feature selected");
  const std::size_t groups = (f.rot || f.per_element) ? aug.size() : (f.rec ? 1 : 0);
  Images maps = xt::zeros<float>({N, std::size_t(1), H, W});
  std::vector<double> acc(N * HW, 0.0);

  detail::network_passes(
      net, aug, sigmas, images, opt, f.msma, groups,
      [&](auto& ctx, std::size_t n0, std::size_t B, std::size_t i, const auto& s) {
        backend::ops<typename Net::backend_type>::clean_map_add(ctx, s, sigmas[i],
                                                                 std::span<double>(acc).subspan(n0 * HW, B * HW));
      },
      [&](auto& ctx, std::size_t n0, std::size_t B, std::size_t i, std::size_t, const auto& z, const auto& s) {
        const double sg = sigmas[i];
        const double w = (weighting == MapWeighting::sigma2 ? sg * sg : 1.0) / double(opt.draws);
        backend::ops<typename Net::backend_type>::residual_map_add(ctx, s, z, sigmas[i], groups, w,
                                                                    std::span<double>(acc).subspan(n0 * HW, B * HW));
      },
      "anomaly map");
  std::transform(acc.begin(), acc.end(), maps.data(), [](double v) { return float(v); });
  return maps;
}

}  // namespace scoreood::score
