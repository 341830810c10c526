/** @file ood_experiment.hpp
 *  @brief The experiment behind the paper's tables, parameterised by the datasets:
 *  train NCSN (Identity) and RotNCSN (Rot4) under one budget, extract normality
 *  vectors once per model and image set, fit a GMM per feature combination on
 *  column slices, evaluate against every OOD set, write the table, results.json,
 *  Figure 3 (training images with the highest OOD score) and Figure 4 (TNR at
 *  95 % TPR per noise level, as an SVG).
 *
 *  Used by examples/fashion_mnist_ood.cpp and examples/cifar10_ood.cpp. */
#pragma once
#include <scoreood/augment/identity.hpp>
#include <scoreood/augment/ood_transforms.hpp>
#include <scoreood/augment/rot4.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/data/find.hpp>
#include <scoreood/data/load.hpp>
#include <scoreood/data/png.hpp>
#include <scoreood/density/gmm.hpp>
#include <scoreood/detector.hpp>
#include <scoreood/metrics/report.hpp>
#include <scoreood/metrics/table.hpp>
#include <scoreood/nn/nets/small_unet.hpp>
#include <scoreood/schedule/geometric.hpp>
#include <scoreood/score/normality.hpp>

#include "../cli/json.hpp"
#include "../cli/parse.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::examples {

/// One OOD set read from a file: a display name and a data::load spec.
struct NamedSpec {
  std::string name;
  std::string spec;
};

/// What differs between the Fashion-MNIST and the CIFAR-10 experiment.
struct ExperimentSetup {
  std::string program;            ///< for usage and error messages
  std::string title;              ///< in-distribution name, e.g. "Fashion-MNIST"
  std::string train_spec;         ///< data::load spec of the training images
  std::string test_spec;          ///< data::load spec of the in-distribution test images
  std::vector<NamedSpec> ood_files;     ///< OOD sets read from files (skipped with a note when absent)
  std::vector<std::string> transforms;  ///< transformed copies of the test set (augment::apply_transform names)
  nn::SmallUNetConfig net{};      ///< channels and image size (width comes from --width)
  std::string default_out;
};

/// Command-line settings shared by both examples.
struct ExperimentArgs {
  std::optional<std::filesystem::path> data_root;
  double minutes = 5;
  std::size_t steps = 0;
  std::size_t width = 32, batch = 128, test = 1000, fit = 2000;
  std::filesystem::path out;
  std::filesystem::path load_ncsn, load_rotncsn;
  std::vector<NamedSpec> extra;
  std::uint64_t seed = 0;
};

inline std::string usage(const ExperimentSetup& s) {
  return "usage: " + s.program +
         " [--data DIR] [--minutes M | --steps N] [--width C] [--batch B] [--test N] [--fit N]\n"
         "       [--out DIR] [--load-ncsn FILE --load-rotncsn FILE] [--extra NAME=SPEC]... [--seed S]\n"
         "  --minutes M   training budget per model in minutes (default 5)\n"
         "  --steps N     training budget per model in steps (replaces --minutes unless both are given)\n"
         "  --width C     SmallUNet width (default 32)\n"
         "  --batch B     training batch (default 128)\n"
         "  --test N      in-distribution test images and images per OOD set (default 1000)\n"
         "  --fit N       training images the density is fitted on (default 2000)\n"
         "  --out DIR     output folder (default " + s.default_out + ")\n"
         "  --load-ncsn FILE, --load-rotncsn FILE   skip training, use saved detectors (.sood)\n"
         "  --extra NAME=SPEC   one more OOD set, SPEC as data::load reads it (PATH[:gray28][:first=N])\n"
         "  --data DIR    data folder searched first (then $SCOREOOD_DATA, ../shared/data, /usr/share/datasets)\n"
         "  --seed S      seed of the networks, the feature noise, the GMMs and patch shuffle (default 0)\n";
}

/// Parses the flags; throws ValueError naming the flag on bad input. Returns nullopt after --help.
inline std::optional<ExperimentArgs> parse_args(int argc, char** argv, const ExperimentSetup& s) {
  ExperimentArgs a;
  a.out = s.default_out;
  CLI::App app{s.title + " OOD experiment", s.program};
  cli::configure(app, usage(s));
  std::string data_root, out = a.out.string(), load_ncsn, load_rotncsn;
  std::vector<std::string> extra;
  app.add_option("--data", data_root);
  cli::add_real(app, "--minutes", a.minutes, /*positive=*/true);
  cli::add_count(app, "--steps", a.steps, /*positive=*/true);
  cli::add_count(app, "--width", a.width, true);
  cli::add_count(app, "--batch", a.batch, true);
  cli::add_count(app, "--test", a.test, true);
  cli::add_count(app, "--fit", a.fit, true);
  app.add_option("--out", out);
  app.add_option("--load-ncsn", load_ncsn);
  app.add_option("--load-rotncsn", load_rotncsn);
  cli::add_repeated(app, "--extra", extra);
  cli::add_count(app, "--seed", a.seed);
  if (!cli::parse(app, argc, argv)) return std::nullopt;
  if (app.count("--data")) a.data_root = data_root;
  a.out = out;
  a.load_ncsn = load_ncsn;
  a.load_rotncsn = load_rotncsn;
  // Set names key the table and results.json: an --extra set takes a name no other set has.
  auto taken = [&](const std::string& n) {
    for (const auto& f : s.ood_files)
      if (f.name == n) return true;
    for (const auto& t : s.transforms)
      if (t == n || (t == "patch_shuffle" && n.starts_with("patch shuffle"))) return true;
    for (const auto& e : a.extra)
      if (e.name == n) return true;
    return false;
  };
  for (const auto& v : extra) {
    const auto eq = v.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
      throw ValueError("--extra: '" + v + "' is not NAME=SPEC (e.g. KMNIST=kmnist/t10k-images-idx3-ubyte.gz)");
    const std::string name = v.substr(0, eq);
    if (taken(name)) throw ValueError("--extra: another set is already named '" + name + "'");
    a.extra.push_back({name, v.substr(eq + 1)});
  }
  if (app.count("--steps") && !app.count("--minutes")) a.minutes = 0;
  if (a.load_ncsn.empty() != a.load_rotncsn.empty())
    throw ValueError("--load-ncsn and --load-rotncsn go together (both models are needed for the table)");
  return a;
}

/// Loads a spec, resolving its path against --data first, optionally keeping the first `first` images.
inline Images load_images(const std::string& spec, const std::optional<std::filesystem::path>& root,
                          std::size_t first = 0) {
  const data::LoadSpec ls = data::parse_load_spec(spec);
  std::string resolved = data::find_data(ls.path, root).string();
  const std::size_t n = ls.first ? (first ? std::min(*ls.first, first) : *ls.first) : first;
  if (n) resolved += ":first=" + std::to_string(n);
  if (ls.gray28) resolved += ":gray28";
  return data::load(resolved).images;
}

/// True when the file a spec names can be found (OOD sets that may be missing offline).
inline bool data_present(const std::string& spec, const std::optional<std::filesystem::path>& root) {
  try {
    data::find_data(data::parse_load_spec(spec).path, root);
    return true;
  } catch (const FormatError&) {
    return false;
  }
}

/// Columns of feature subset `sub` inside vectors computed with `full` (order: msma, rec, rot, elem).
inline std::vector<std::size_t> feature_columns(const score::FeatureSet& full, const score::FeatureSet& sub,
                                                std::size_t L, std::size_t G) {
  std::vector<std::size_t> cols;
  std::size_t at = 0;
  auto block = [&](bool have, bool want, std::size_t width) {
    if (want && !have) throw ValueError("feature_columns: '" + sub.str() + "' is not inside '" + full.str() + "'");
    if (want)
      for (std::size_t c = 0; c < width; ++c) cols.push_back(at + c);
    if (have) at += width;
  };
  block(full.msma, sub.msma, L);
  block(full.rec, sub.rec, L);
  block(full.rot, sub.rot, L);
  block(full.per_element, sub.per_element, L * G);
  return cols;
}

inline Matrix<double> take_columns(const Matrix<double>& m, const std::vector<std::size_t>& cols) {
  Matrix<double> out = xt::zeros<double>({m.shape()[0], cols.size()});
  for (std::size_t r = 0; r < m.shape()[0]; ++r)
    for (std::size_t c = 0; c < cols.size(); ++c) out(r, c) = m(r, cols[c]);
  return out;
}

/// The vectors of feature set `sub` (its columns, then its log modifier) from vectors computed with `full`.
inline Matrix<double> select_features(const Matrix<double>& m, const score::FeatureSet& full,
                                      const score::FeatureSet& sub, std::size_t L, std::size_t G) {
  if (full.log) throw ValueError("select_features: the full vectors must be computed without log");
  Matrix<double> out = take_columns(m, feature_columns(full, sub, L, G));
  if (sub.log) score::log_features(out);
  return out;
}

/// One image set: its name and images (test set first, then every OOD set).
struct ImageSet {
  std::string name;
  Images images;
};

/// A detection method: a model (0 = NCSN, 1 = RotNCSN) and a feature subset of that model's vectors.
struct Method {
  std::string name;
  int model;
  score::FeatureSet features;
};

/// Figure 4: TNR at 95 % TPR per noise level, one polyline per OOD set, log-scale sigma axis.
inline void write_level_svg(const std::filesystem::path& path, const std::string& title,
                            const std::vector<float>& sigmas, const std::vector<std::string>& names,
                            const std::vector<std::vector<double>>& tnr) {
  const double W = 720, H = 440, left = 70, right = 190, top = 40, bottom = 60;
  const double pw = W - left - right, ph = H - top - bottom;
  const double lmin = std::log10(*std::min_element(sigmas.begin(), sigmas.end()));
  const double lmax = std::log10(*std::max_element(sigmas.begin(), sigmas.end()));
  const double span = lmax > lmin ? lmax - lmin : 1.0;
  auto X = [&](double sigma) { return left + (std::log10(sigma) - lmin) / span * pw; };
  auto Y = [&](double v) { return top + (1.0 - v) * ph; };
  static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  std::ostringstream s;
  s << std::fixed << std::setprecision(1);
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << left + pw / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" << title << "</text>\n";
  // Axes, y grid (TNR 0..1), x ticks at every decade and at each sigma.
  s << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"black\"/>\n";
  for (int k = 0; k <= 5; ++k) {
    const double v = k / 5.0;
    s << "<line x1=\"" << left << "\" y1=\"" << Y(v) << "\" x2=\"" << left + pw << "\" y2=\"" << Y(v)
      << "\" stroke=\"#ddd\"/>\n<text x=\"" << left - 6 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">"
      << std::setprecision(1) << v << "</text>\n";
  }
  for (int d = int(std::floor(lmin + 1e-9)); d <= int(std::ceil(lmax - 1e-9)); ++d) {
    const double sg = std::pow(10.0, d);
    if (std::log10(sg) < lmin - 1e-9 || std::log10(sg) > lmax + 1e-9) continue;
    s << "<line x1=\"" << X(sg) << "\" y1=\"" << top << "\" x2=\"" << X(sg) << "\" y2=\"" << top + ph
      << "\" stroke=\"#ddd\"/>\n<text x=\"" << X(sg) << "\" y=\"" << top + ph + 18
      << "\" text-anchor=\"middle\">1e" << d << "</text>\n";
  }
  for (float sg : sigmas)
    s << "<line x1=\"" << X(sg) << "\" y1=\"" << top + ph << "\" x2=\"" << X(sg) << "\" y2=\"" << top + ph + 5
      << "\" stroke=\"black\"/>\n";
  s << "<text x=\"" << left + pw / 2 << "\" y=\"" << H - 15 << "\" text-anchor=\"middle\">noise level sigma_i (log scale)</text>\n";
  s << "<text transform=\"translate(18," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">TNR at 95% TPR</text>\n";
  for (std::size_t k = 0; k < names.size(); ++k) {
    const char* c = colors[k % 10];
    s << "<polyline fill=\"none\" stroke=\"" << c << "\" stroke-width=\"2\" points=\"";
    for (std::size_t i = 0; i < sigmas.size(); ++i) s << X(sigmas[i]) << ',' << Y(tnr[k][i]) << ' ';
    s << "\"/>\n";
    for (std::size_t i = 0; i < sigmas.size(); ++i)
      s << "<circle cx=\"" << X(sigmas[i]) << "\" cy=\"" << Y(tnr[k][i]) << "\" r=\"3\" fill=\"" << c << "\"/>\n";
    const double ly = top + 10 + 20 * double(k);
    s << "<line x1=\"" << left + pw + 15 << "\" y1=\"" << ly << "\" x2=\"" << left + pw + 40 << "\" y2=\"" << ly
      << "\" stroke=\"" << c << "\" stroke-width=\"2\"/>\n<text x=\"" << left + pw + 46 << "\" y=\"" << ly + 4
      << "\">" << names[k] << "</text>\n";
  }
  s << "</svg>\n";
  std::ofstream f(path);
  if (!f) throw Error("cannot write " + path.string());
  f << s.str();
}

/// Runs the whole experiment; returns the process exit code.
inline int run_experiment(int argc, char** argv, ExperimentSetup setup) {
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  const auto parsed = parse_args(argc, argv, setup);
  if (!parsed) return 0;
  const ExperimentArgs& a = *parsed;
  auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - t_start).count(); };
  std::filesystem::create_directories(a.out);

  // ---- data
  std::cout << "== " << setup.title << " OOD experiment (output: " << a.out.string() << ")\n";
  const Images train = load_images(setup.train_spec, a.data_root);
  const Images fit = data::first_n(train, a.fit);
  std::vector<ImageSet> sets;  // sets[0] is the in-distribution test set
  sets.push_back({setup.title, load_images(setup.test_spec, a.data_root, a.test)});
  std::cout << "train " << to_string(shape_of(train)) << ", density fit " << fit.shape()[0] << ", test "
            << to_string(shape_of(sets[0].images)) << '\n';
  std::vector<NamedSpec> files = setup.ood_files;
  files.insert(files.end(), a.extra.begin(), a.extra.end());
  for (const auto& f : files) {
    if (!data_present(f.spec, a.data_root)) {
      std::cout << "skipping OOD set " << f.name << ": " << data::parse_load_spec(f.spec).path << " not found\n";
      continue;
    }
    sets.push_back({f.name, load_images(f.spec, a.data_root, a.test)});
    const auto& im = sets.back().images;
    if (im.shape()[1] != setup.net.channels || im.shape()[2] != setup.net.image_size ||
        im.shape()[3] != setup.net.image_size)
      throw ShapeError("OOD set " + f.name + " (" + f.spec + ") has shape " + to_string(shape_of(im)) +
                       ", the model takes " + std::to_string(setup.net.channels) + " x " +
                       std::to_string(setup.net.image_size) + " x " + std::to_string(setup.net.image_size) +
                       " (add :gray28 for colour images and a gray model)");
  }
  for (const auto& t : setup.transforms) {
    const Images& test = sets[0].images;
    // Patch size H/2 x W/4 as in the paper (14x7 at 28 px, 16x8 at 32 px).
    sets.push_back({t == "patch_shuffle" ? "patch shuffle " + std::to_string(test.shape()[2] / 2) + "x" +
                                               std::to_string(test.shape()[3] / 4)
                                         : t,
                    augment::apply_transform(test, t, a.seed + 17)});
  }

  // ---- models
  using Ncsn = ScoreOOD<nn::SmallUNet<>, augment::Identity, density::Gmm>;
  using RotNcsn = ScoreOOD<nn::SmallUNet<>, augment::Rot4, density::Gmm>;
  const schedule::Geometric sched{1.0f, 0.01f, 10};
  auto opts = [&](auto o, const char* features) {  // Options is a member type of each detector
    o.net = setup.net;
    o.net.width = a.width;
    o.features = score::FeatureSet::parse(features);
    o.seed = a.seed;
    o.progress = &std::cout;
    return o;
  };
  const score::FeatureSet full_ncsn = score::FeatureSet::parse("msma,rec");
  const score::FeatureSet full_rot = score::FeatureSet::parse("msma,rec,rot,elem");
  Ncsn ncsn(sched, opts(Ncsn::Options{}, "msma,rec"));
  RotNcsn rot(sched, opts(RotNcsn::Options{}, "msma,rec,rot,elem"));
  score::TrainOptions topt;
  topt.steps = a.steps;
  topt.minutes = a.minutes;
  topt.batch = a.batch;
  topt.seed = a.seed;
  topt.progress = &std::cout;
  if (!a.load_ncsn.empty()) {
    std::cout << "loading " << a.load_ncsn.string() << " and " << a.load_rotncsn.string() << '\n';
    ncsn.load(a.load_ncsn);
    rot.load(a.load_rotncsn);
    ncsn.set_features(full_ncsn);
    rot.set_features(full_rot);
    ncsn.set_progress(&std::cout);
    rot.set_progress(&std::cout);
  } else {
    const std::string budget = a.steps ? std::to_string(a.steps) + " steps" : "";
    const std::string mins = a.minutes > 0 ? std::to_string(a.minutes).substr(0, 5) + " min" : "";
    std::cout << "== training NCSN (Eq. 1), budget " << budget << (budget.empty() || mins.empty() ? "" : " or ")
              << mins << '\n';
    const auto r1 = ncsn.train(train, topt);
    std::cout << "   " << r1.steps << " steps in " << std::fixed << std::setprecision(1) << r1.seconds
              << " s, final loss " << std::setprecision(4) << r1.final_loss << '\n';
    std::cout << "== training RotNCSN (Eq. 4), same budget\n";
    const auto r2 = rot.train(train, topt);
    std::cout << "   " << r2.steps << " steps in " << std::fixed << std::setprecision(1) << r2.seconds
              << " s, final loss " << std::setprecision(4) << r2.final_loss << '\n';
  }
  const std::size_t L = rot.sigmas().size(), G = rot.augmentation().size();

  // ---- normality vectors, once per model and image set, with every feature a method needs
  std::cout << "== normality vectors (NCSN: " << full_ncsn.str() << "; RotNCSN: " << full_rot.str() << ")\n";
  const auto t_feat = clock::now();
  std::vector<Matrix<double>> fit_vec(2);
  std::vector<std::vector<Matrix<double>>> vec(2);
  fit_vec[0] = ncsn.normality(fit, "NCSN fit");
  fit_vec[1] = rot.normality(fit, "RotNCSN fit");
  for (const auto& s : sets) {
    vec[0].push_back(ncsn.normality(s.images, "NCSN " + s.name));
    vec[1].push_back(rot.normality(s.images, "RotNCSN " + s.name));
  }
  const double feat_seconds = std::chrono::duration<double>(clock::now() - t_feat).count();
  std::size_t n_images = fit.shape()[0];
  for (const auto& s : sets) n_images += s.images.shape()[0];
  std::cout << "   " << n_images << " images per model in " << std::fixed << std::setprecision(1) << feat_seconds
            << " s (" << std::setprecision(2) << n_images / std::max(feat_seconds, 1e-9) << " img/s for both models)\n";

  // ---- methods: a fresh GMM per feature combination on sliced columns
  const std::vector<Method> methods = {
      {"NCSN f_msma", 0, score::FeatureSet::parse("msma")},
      {"NCSN f_rec", 0, score::FeatureSet::parse("rec")},
      {"NCSN msma+rec", 0, score::FeatureSet::parse("msma,rec")},
      {"RotNCSN f_rot", 1, score::FeatureSet::parse("rot")},
      {"RotNCSN elem", 1, score::FeatureSet::parse("elem")},
      {"RotNCSN log(msma+elem)", 1, score::FeatureSet::parse("msma,elem,log")},
  };
  density::GmmOptions gopt;
  gopt.seed = a.seed;
  // At most one component per 10 training vectors: tiny runs stay valid.
  gopt.components.erase(std::remove_if(gopt.components.begin(), gopt.components.end(),
                                       [&](int k) { return std::size_t(k) * 10 > fit.shape()[0] && k > 1; }),
                        gopt.components.end());
  std::vector<std::vector<std::vector<double>>> scores(methods.size());  // [method][set]
  std::vector<std::vector<double>> fit_scores(methods.size());
  std::vector<std::vector<metrics::EvalRow>> rows(methods.size());
  for (std::size_t m = 0; m < methods.size(); ++m) {
    const Method& me = methods[m];
    const auto& full = me.model == 0 ? full_ncsn : full_rot;
    auto features_of = [&](const Matrix<double>& v) { return select_features(v, full, me.features, L, G); };
    density::Gmm gmm(gopt);
    const Matrix<double> fit_features = features_of(fit_vec[me.model]);
    gmm.fit(fit_features);
    auto neg_ll = [&](const Matrix<double>& v) {
      const Vector<double> ll = gmm.log_likelihood(features_of(v));
      std::vector<double> s(ll.size());
      for (std::size_t i = 0; i < s.size(); ++i) s[i] = -ll(i);
      return s;
    };
    fit_scores[m] = neg_ll(fit_vec[me.model]);
    for (std::size_t k = 0; k < sets.size(); ++k) scores[m].push_back(neg_ll(vec[me.model][k]));
    for (std::size_t k = 1; k < sets.size(); ++k)
      rows[m].push_back({sets[k].name, metrics::evaluate(scores[m][0], scores[m][k])});
    std::cout << "   " << me.name << ": " << fit_features.shape()[1] << " dims, GMM with " << gmm.chosen_components()
              << " components\n";
  }

  // ---- save both detectors, each with the density of its main method
  if (a.load_ncsn.empty()) {
    ncsn.fit_density_on(fit_vec[0]);  // msma+rec, the MSMA-style combination
    ncsn.save(a.out / "ncsn.sood");
    rot.set_features(score::FeatureSet::parse("msma,elem,log"));
    rot.fit_density_on(select_features(fit_vec[1], full_rot, rot.features(), L, G));
    rot.save(a.out / "rotncsn.sood");
    std::cout << "saved " << (a.out / "ncsn.sood").string() << " (msma,rec) and " << (a.out / "rotncsn.sood").string()
              << " (msma,elem,log)\n";
  }

  // ---- the paper's table: AUROC, one row per OOD set, one column per method
  std::ostringstream tab;
  std::size_t namew = 14;
  for (std::size_t k = 1; k < sets.size(); ++k) namew = std::max(namew, sets[k].name.size());
  tab << "\nAUROC, in-distribution " << setup.title << " (" << sets[0].images.shape()[0]
      << " test images; OOD positive)\n";
  tab << std::left << std::setw(int(namew)) << "OOD set";
  for (const auto& me : methods) tab << std::right << std::setw(int(std::max<std::size_t>(me.name.size(), 7)) + 2) << me.name;
  tab << '\n' << std::fixed << std::setprecision(3);
  for (std::size_t k = 1; k < sets.size(); ++k) {
    tab << std::left << std::setw(int(namew)) << sets[k].name;
    for (std::size_t m = 0; m < methods.size(); ++m)
      tab << std::right << std::setw(int(std::max<std::size_t>(methods[m].name.size(), 7)) + 2)
          << rows[m][k - 1].report.auroc;
    tab << '\n';
  }
  std::cout << tab.str() << '\n';
  for (std::size_t m = 0; m < methods.size(); ++m)
    std::cout << metrics::format_table(rows[m], methods[m].name) << '\n';

  // ---- results.json
  {
    cli::Json methods_json = cli::Json::object();
    for (std::size_t m = 0; m < methods.size(); ++m) methods_json[methods[m].name] = cli::rows_to_json(rows[m]);
    const cli::Json results{{"in_distribution", setup.title},
                            {"train", setup.train_spec},
                            {"test", setup.test_spec},
                            {"n_fit", fit.shape()[0]},
                            {"width", a.width},
                            {"steps", a.steps},
                            {"minutes", a.minutes},
                            {"seed", a.seed},
                            {"methods", std::move(methods_json)}};
    io::write_file_atomic(a.out / "results.json", cli::dump_file(results));
  }

  // ---- Figure 3: the 9 training images (of the fit set) with the highest OOD score, per model
  auto top9 = [&](const std::vector<double>& s, const char* file) {
    std::vector<std::size_t> idx(s.size());
    std::iota(idx.begin(), idx.end(), 0);
    const std::size_t k = std::min<std::size_t>(9, idx.size());
    std::partial_sort(idx.begin(), idx.begin() + std::ptrdiff_t(k), idx.end(),
                      [&](std::size_t x, std::size_t y) { return s[x] > s[y]; });
    const std::size_t P = fit.shape()[1] * fit.shape()[2] * fit.shape()[3];
    Images g = Images::from_shape({k, fit.shape()[1], fit.shape()[2], fit.shape()[3]});
    for (std::size_t i = 0; i < k; ++i) std::copy_n(fit.data() + idx[i] * P, P, g.data() + i * P);
    data::write_png_grid(a.out / file, g, 3);
  };
  top9(fit_scores[0], "figure3_ncsn.png");  // NCSN f_msma (the MSMA baseline)
  top9(fit_scores[3], "figure3_rotncsn.png");  // RotNCSN f_rot

  // ---- Figure 4: per-level score |f_rot,i(x) - mean_train f_rot,i|, TNR at 95 % TPR per level
  {
    const auto cols = feature_columns(full_rot, score::FeatureSet::parse("rot"), L, G);
    std::vector<std::string> names;
    std::vector<std::vector<double>> tnr;
    for (std::size_t k = 1; k < sets.size(); ++k) names.push_back(sets[k].name), tnr.emplace_back(L);
    std::ostringstream f4;
    f4 << "TNR at 95% TPR per noise level, RotNCSN f_rot,i (|f_i - mean over training|)\n" << std::left
       << std::setw(int(namew)) << "OOD set" << std::right << std::fixed;
    for (std::size_t i = 0; i < L; ++i) f4 << std::setw(7) << std::setprecision(3) << rot.sigmas()[i];
    f4 << '\n';
    for (std::size_t i = 0; i < L; ++i) {
      const std::size_t c = cols[i];
      double mean = 0;
      for (std::size_t r = 0; r < fit_vec[1].shape()[0]; ++r) mean += fit_vec[1](r, c);
      mean /= double(fit_vec[1].shape()[0]);
      auto level_scores = [&](const Matrix<double>& v) {
        std::vector<double> s(v.shape()[0]);
        for (std::size_t r = 0; r < s.size(); ++r) s[r] = std::abs(v(r, c) - mean);
        return s;
      };
      const auto in = level_scores(vec[1][0]);
      for (std::size_t k = 1; k < sets.size(); ++k)
        tnr[k - 1][i] = metrics::evaluate(in, level_scores(vec[1][k])).tnr_at_95_tpr;
    }
    for (std::size_t k = 0; k < names.size(); ++k) {
      f4 << std::left << std::setw(int(namew)) << names[k] << std::right;
      for (std::size_t i = 0; i < L; ++i) f4 << std::setw(7) << std::setprecision(3) << tnr[k][i];
      f4 << '\n';
    }
    std::cout << f4.str() << '\n';
    write_level_svg(a.out / "figure4.svg",
                    "RotNCSN on " + setup.title + ": TNR at 95% TPR of |f_rot,i - training mean|", rot.sigmas(),
                    names, tnr);
  }

  std::cout << "wrote " << (a.out / "results.json").string() << ", figure3_ncsn.png, figure3_rotncsn.png, figure4.svg\n"
            << "total time " << std::fixed << std::setprecision(1) << elapsed() << " s\n";
  return 0;
}

}  // namespace scoreood::examples
