// scoreood: the command-line tool. Subcommands metrics, inspect, train, fit, score, eval.
// Every error is ONE line "scoreood: <message>" on stderr and exit status 1.
//
// The detector's policies are template parameters; this program picks the
// instantiation at run time from flags (train) or from the names recorded in
// the model file (fit/score/eval). Supported: net small-unet (and ncsn when
// <scoreood/nn/nets/ncsn_refinenet.hpp> is present) x aug identity|rot4|dihedral8
// x density gmm|gaussian|knn. PatchPermutations is left out: it needs constructor
// arguments that the file does not record, and each extra policy multiplies
// the instantiations (compile time).
#include <scoreood/scoreood.hpp>

#include "cli/args.hpp"
#include "cli/output_path.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#if __has_include(<scoreood/nn/nets/ncsn_refinenet.hpp>)
#include <scoreood/nn/nets/ncsn_refinenet.hpp>
#define SCOREOOD_CLI_HAS_NCSN 1
#else
#define SCOREOOD_CLI_HAS_NCSN 0
#endif

namespace so = scoreood;
using so::cli::Args;

namespace {

// ------------------------------------------------------------ policy dispatch
template <class T>
using tag = std::type_identity<T>;

template <class F>
void with_net(std::string_view name, F&& f) {
  if (name == "small-unet") return f(tag<so::nn::SmallUNet<so::backend::cpu>>{});
#if SCOREOOD_CLI_HAS_NCSN
  if (name == "ncsn") return f(tag<so::nn::NcsnRefineNet<so::backend::cpu>>{});
  throw so::ValueError("unknown network '" + std::string(name) + "' (valid: small-unet, ncsn)");
#else
  throw so::ValueError("unknown or unsupported network '" + std::string(name) +
                       "' (valid: small-unet; this build has no ncsn network)");
#endif
}
template <class F>
void with_aug(std::string_view name, F&& f) {
  if (name == "identity") return f(tag<so::augment::Identity>{});
  if (name == "rot4") return f(tag<so::augment::Rot4>{});
  if (name == "dihedral8") return f(tag<so::augment::Dihedral8>{});
  throw so::ValueError("unknown or unsupported augmentation '" + std::string(name) +
                       "' (valid: identity, rot4, dihedral8)");
}
template <class F>
void with_density(std::string_view name, F&& f) {
  if (name == "gmm") return f(tag<so::density::Gmm>{});
  if (name == "gaussian") return f(tag<so::density::Gaussian>{});
  if (name == "knn") return f(tag<so::density::Knn>{});
  throw so::ValueError("unknown density '" + std::string(name) + "' (valid: gmm, gaussian, knn)");
}

/// What a detector file records before the network (see ScoreOOD::save).
struct ModelHeader {
  std::string net, aug, density, features;
  std::vector<float> sigmas;
  std::uint64_t draws = 1, seed = 0;
};

/// Reads the header of a detector file; `reader` is left positioned at the network.
ModelHeader read_header(so::io::ByteReader& r) {
  ModelHeader h;
  h.net = r.get_string(64);
  h.aug = r.get_string(64);
  h.density = r.get_string(64);
  h.sigmas = r.get_vector<float>("noise levels");
  if (const auto problem = so::schedule::sigma_problem(h.sigmas); !problem.empty()) r.fail(problem);
  h.features = r.get_string(64);
  h.draws = r.get<std::uint64_t>();
  h.seed = r.get<std::uint64_t>();
  return h;
}
ModelHeader peek_model(const std::string& path) {
  const auto body = so::io::load_container(path, "scoreood-detector");
  so::io::ByteReader r(body, path);
  return read_header(r);
}

/// Calls f(tag<Detector>) for the detector type recorded in a model file.
template <class F>
void with_detector_of(const ModelHeader& h, F&& f) {
  with_net(h.net, [&](auto n) {
    with_aug(h.aug, [&](auto a) {
      with_density(h.density, [&](auto d) {
        f(tag<so::ScoreOOD<typename decltype(n)::type, typename decltype(a)::type, typename decltype(d)::type>>{});
      });
    });
  });
}

// ------------------------------------------------------------ helpers
std::string num(double v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}


bool wants_help(const std::vector<std::string>& a) {
  return std::find(a.begin(), a.end(), "--help") != a.end() || std::find(a.begin(), a.end(), "-h") != a.end();
}

/// Loads a dataset spec through data::load, with a clear message for an empty set.
so::data::Dataset load_data(const std::string& spec, const char* what) {
  auto d = so::data::load(spec);
  if (d.size() == 0) throw so::ValueError(std::string(what) + " '" + spec + "' holds no images");
  return d;
}

/// The images must match the network's channels and size.
template <class Det>
void check_images(const Det& det, const so::Images& x, const std::string& spec) {
  const auto& c = det.net().config();
  const auto s = x.shape();
  if (s[1] != c.channels || s[2] != c.image_size || s[3] != c.image_size)
    throw so::ShapeError(spec + ": images are " + std::to_string(s[1]) + "x" + std::to_string(s[2]) + "x" +
                         std::to_string(s[3]) + " (CxHxW), the model expects " + std::to_string(c.channels) + "x" +
                         std::to_string(c.image_size) + "x" + std::to_string(c.image_size) +
                         " (add :gray28 to convert colour images to 28x28 gray)");
}

// ------------------------------------------------------------ metrics
const char* kMetricsHelp =
    "usage: scoreood metrics --in FILE --out FILE [--json]\n"
    "  FILE: one score per line (higher = more OOD); --in in-distribution, --out OOD.\n"
    "  Prints AUROC, AUPR-in, AUPR-out, FPR@95%TPR, TNR@95%TPR, detection accuracy\n"
    "  (OOD is the positive class), or one JSON object with --json.\n";

int cmd_metrics(const std::vector<std::string>& argv) {
  Args a("metrics", argv, {"in", "out"}, {"json"});
  const auto s_in = so::metrics::read_scores(a.required("in"));
  const auto s_out = so::metrics::read_scores(a.required("out"));
  if (s_in.empty()) a.fail(a.required("in") + ": no scores");
  if (s_out.empty()) a.fail(a.required("out") + ": no scores");
  const auto r = so::metrics::evaluate(s_in, s_out);
  if (a.has("json")) {
    std::cout << so::metrics::to_json(r) << '\n';
  } else {
    std::cout << "auroc               " << num(r.auroc) << '\n'
              << "aupr_in             " << num(r.aupr_in) << '\n'
              << "aupr_out            " << num(r.aupr_out) << '\n'
              << "fpr_at_95_tpr       " << num(r.fpr_at_95_tpr) << '\n'
              << "tnr_at_95_tpr       " << num(r.tnr_at_95_tpr) << '\n'
              << "detection_accuracy  " << num(r.detection_accuracy) << '\n'
              << "n_in                " << r.n_in << '\n'
              << "n_out               " << r.n_out << '\n';
  }
  return 0;
}

// ------------------------------------------------------------ inspect
const char* kInspectHelp =
    "usage: scoreood inspect PATH[:gray28][:first=N]\n"
    "  Prints the format, image count, shape, pixel range and mean, and the label histogram.\n";

int cmd_inspect(const std::vector<std::string>& argv) {
  Args a("inspect", argv, {}, {}, 1);
  if (a.positional().empty()) a.fail("missing the dataset PATH (see scoreood inspect --help)");
  const std::string spec = a.positional()[0];
  const auto d = so::data::load(spec);
  const auto path = so::data::find_data(so::data::parse_load_spec(spec).path);
  const auto s = d.images.shape();
  const bool idx = path.filename().string().find(".bin") == std::string::npos;
  double lo = 0, hi = 0, sum = 0;
  const std::size_t n = d.images.size();
  if (n) lo = hi = d.images.data()[0];
  for (std::size_t i = 0; i < n; ++i) {
    const double v = d.images.data()[i];
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  std::cout << "file        " << path.string() << '\n'
            << "kind        " << (idx ? "idx" : "cifar") << '\n'
            << "count       " << s[0] << '\n'
            << "shape       " << s[1] << "x" << s[2] << "x" << s[3] << " (CxHxW)\n"
            << "pixels      min " << num(lo) << "  max " << num(hi) << '\n'
            << "mean        " << num(n ? sum / double(n) : 0.0) << '\n';
  if (d.labels.empty()) {
    std::cout << "labels      none\n";
  } else {
    std::map<int, std::size_t> hist;
    for (int l : d.labels) ++hist[l];
    std::cout << "labels      " << d.labels.size() << " in " << hist.size() << " classes\n";
    for (auto [l, c] : hist) std::cout << "  " << l << "  " << c << '\n';
  }
  return 0;
}

// ------------------------------------------------------------ train
const char* kTrainHelp =
    "usage: scoreood train --data PATH --out MODEL [options]\n"
    "  --net small-unet|ncsn   score network (default small-unet)\n"
    "  --width N               small-unet channels of the first stage (default 32)\n"
    "  --ngf N                 ncsn feature width (default 64)\n"
    "  --aug identity|rot4|dihedral8   augmentation group (default rot4 = RotNCSN; identity = NCSN/MSMA)\n"
    "  --steps N | --minutes M budget (one of them required)\n"
    "  --batch B (128)  --lr X (1e-3)  --seed S (0)  --ema R (0 = off)  --clip G (0 = off)\n"
    "  --sigma-max X (1)  --sigma-min X (0.01)  --levels L (10)   geometric noise schedule\n"
    "  --checkpoint-every N [--checkpoint STATE]  periodic trainer state (default MODEL.state)\n"
    "  --resume STATE          continue a run from a trainer state\n"
    "  --log loss.csv          CSV step,loss,seconds\n"
    "  --log-every N           progress line every N steps (default 50)\n"
    "  Saves the detector (density not fitted yet: run `scoreood fit`) and ends with one JSON line.\n";

int cmd_train(const std::vector<std::string>& argv) {
  Args a("train", argv,
         {"data", "net", "width", "ngf", "aug", "steps", "minutes", "batch", "lr", "seed", "out", "checkpoint-every",
          "checkpoint", "resume", "log", "log-every", "ema", "clip", "sigma-max", "sigma-min", "levels"});
  const std::string data_spec = a.required("data"), out = a.required("out");
  so::cli::check_writable(out, "--out");
  so::score::TrainOptions opt;
  opt.steps = a.count("steps", 0);
  opt.minutes = a.real("minutes", 0);
  if (opt.steps == 0 && opt.minutes <= 0) a.fail("give --steps N or --minutes M");
  opt.batch = a.count("batch", 128);
  if (opt.batch == 0) a.fail("--batch must be positive");
  opt.lr = a.real("lr", 1e-3);
  if (!(opt.lr > 0)) a.fail("--lr must be positive");
  opt.seed = a.count("seed", 0);
  opt.ema = a.real("ema", 0);
  opt.max_grad_norm = a.real("clip", 0);
  opt.log_every = a.count("log-every", 50);
  opt.checkpoint_every = a.count("checkpoint-every", 0);
  if (opt.checkpoint_every || a.has("checkpoint")) {
    opt.checkpoint = a.str("checkpoint", out + ".state");
    so::cli::check_writable(opt.checkpoint.string(), "--checkpoint");
  }
  if (auto l = a.get("log")) {
    so::cli::check_writable(*l, "--log");
    opt.loss_log = *l;
  }
  opt.progress = &std::cout;
  const std::string resume = a.str("resume", "");
  if (!resume.empty() && !std::filesystem::exists(resume)) a.fail("--resume: " + resume + ": no such file");
  so::schedule::Geometric sched{static_cast<float>(a.real("sigma-max", 1.0)),
                                static_cast<float>(a.real("sigma-min", 0.01)), a.count("levels", 10)};
  if (!(sched.sigma_max > sched.sigma_min && sched.sigma_min > 0)) a.fail("need --sigma-max > --sigma-min > 0");
  if (sched.levels == 0) a.fail("--levels must be positive");
  std::vector<float> sigmas = sched.sigmas();
  std::string net_name = a.str("net", "small-unet"), aug_name = a.str("aug", "rot4");
  std::size_t width = a.count("width", 32), ngf = a.count("ngf", 64);
  if (!resume.empty()) {
    // The state fixes the architecture, seed, schedule and group: a flag may repeat them, not change them.
    const auto st = so::score::read_train_state_info(resume);
    auto same = [&](const char* flag, bool given, bool equal, const std::string& held) {
      if (given && !equal) a.fail("--" + std::string(flag) + " differs from the resumed state " + resume + ", which holds " + held);
    };
    same("net", a.has("net"), net_name == st.network, "a " + st.network + " network");
    same("aug", a.has("aug"), aug_name == st.augmentation, "augmentation " + st.augmentation);
    same("width", a.has("width"), width == st.sizes.width, "a " + st.network + " of " + st.sizes.str());
    same("ngf", a.has("ngf"), ngf == st.sizes.width, "a " + st.network + " of " + st.sizes.str());
    same("seed", a.has("seed"), opt.seed == st.seed, "seed " + std::to_string(st.seed));
    const bool sched_given = a.has("sigma-max") || a.has("sigma-min") || a.has("levels");
    same("sigma-max/--sigma-min/--levels", sched_given, sigmas == st.sigmas,
         "another noise schedule (" + std::to_string(st.sigmas.size()) + " levels)");
    if (opt.steps && opt.steps <= st.step)
      a.fail("--steps " + std::to_string(opt.steps) + ": the resumed state " + resume + " is already at step " +
             std::to_string(st.step) + " (--steps counts every step, the resumed ones too)");
    net_name = st.network;
    aug_name = st.augmentation;
    width = ngf = st.sizes.width;
    opt.seed = st.seed;
    sigmas = st.sigmas;
  }
  if (net_name == "small-unet" && a.has("ngf")) a.fail("--ngf is for --net ncsn (small-unet takes --width)");
  if (net_name == "ncsn" && a.has("width")) a.fail("--width is for --net small-unet (ncsn takes --ngf)");

  const auto data = load_data(data_spec, "--data");
  const auto s = data.images.shape();
  if (s[2] != s[3]) a.fail(data_spec + ": images are " + std::to_string(s[2]) + "x" + std::to_string(s[3]) + ", need square images");

  so::score::TrainResult res;
  with_net(net_name, [&](auto n) {
    using Net = typename decltype(n)::type;
    with_aug(aug_name, [&](auto g) {
      using Aug = typename decltype(g)::type;
      using Det = so::ScoreOOD<Net, Aug, so::density::Gmm>;  // density placeholder: `fit --density` re-types it
      typename Det::Options o;
      o.net.channels = s[1];
      o.net.image_size = s[2];
      if constexpr (requires { o.net.width; }) o.net.width = width;
      if constexpr (requires { o.net.ngf; }) o.net.ngf = ngf;
      o.seed = opt.seed;
      Det det(so::schedule::ExplicitList{sigmas}, o);
      res = det.train(data.images, opt, resume);
      det.save(out);
    });
  });
  std::cout << "{\"steps\": " << res.total_steps << ", \"seconds\": " << num(res.seconds)
            << ", \"images_per_second\": " << num(res.images_per_second) << ", \"final_loss\": " << num(res.final_loss)
            << "}" << std::endl;
  return 0;
}

// ------------------------------------------------------------ fit
const char* kFitHelp =
    "usage: scoreood fit --model MODEL --data PATH --out DETECTOR [options]\n"
    "  --features LIST     msma,rec,rot,elem, plus log for log space (default: the model's)\n"
    "  --density gmm|gaussian|knn   (default gmm)\n"
    "  --limit N           fit on the first N images (0 = all, default)\n"
    "  --draws K           noise draws per image for rec/rot/elem (default: the model's)\n"
    "  --components LIST   GMM candidate component counts (default 1,2,4,...,20; larger than N dropped)\n";

int cmd_fit(const std::vector<std::string>& argv) {
  Args a("fit", argv, {"model", "data", "features", "density", "limit", "draws", "out", "components"});
  const std::string model = a.required("model"), data_spec = a.required("data"), out = a.required("out");
  so::cli::check_writable(out, "--out");
  const std::string density_name = a.str("density", "gmm");
  with_density(density_name, [](auto) {});  // reject a bad name before the slow part
  const auto body = so::io::load_container(model, "scoreood-detector");
  so::io::ByteReader r(body, model);
  const ModelHeader h = read_header(r);
  so::score::FeatureSet features;
  try {
    features = so::score::FeatureSet::parse(a.str("features", h.features));
  } catch (const so::ValueError& e) {
    a.fail(std::string("--features: ") + e.what());
  }
  const std::size_t draws = a.count("draws", h.draws), limit = a.count("limit", 0);
  if (draws == 0) a.fail("--draws must be positive");
  std::vector<int> comps;
  if (auto c = a.get("components")) {
    for (const auto& t : so::cli::split_list(*c)) {
      int k = 0;
      const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), k);
      if (ec != std::errc() || p != t.data() + t.size() || k < 1) a.fail("--components: '" + t + "' is not a positive integer");
      comps.push_back(k);
    }
    if (comps.empty()) a.fail("--components: empty list");
  }
  auto data = load_data(data_spec, "--data");
  if (limit) data = so::data::first_n(data, limit);

  with_net(h.net, [&](auto n) {
    using Net = typename decltype(n)::type;
    with_aug(h.aug, [&](auto g) {
      using Aug = typename decltype(g)::type;
      with_density(density_name, [&](auto dn) {
        using Density = typename decltype(dn)::type;
        Density density;
        if constexpr (std::is_same_v<Density, so::density::Gmm>) {
          so::density::GmmOptions go;
          if (!comps.empty()) go.components = comps;
          const int nrows = static_cast<int>(data.size());
          std::erase_if(go.components, [&](int k) { return k > nrows; });
          if (go.components.empty()) a.fail("--components: every count exceeds the " + std::to_string(nrows) + " images");
          density = Density(go);
        }
        using Det = so::ScoreOOD<Net, Aug, Density>;
        typename Det::Options o;
        o.seed = h.seed;
        o.features = features;
        o.draws = draws;
        o.progress = &std::cout;
        // The network comes straight from the model file (whatever density it was saved with).
        Det det(so::schedule::ExplicitList{h.sigmas}, o, Aug{}, std::move(density));
        det.net().load(r);
        if (det.net().config().num_levels != h.sigmas.size())
          r.fail("network and schedule disagree on the number of levels");
        check_images(det, data.images, data_spec);
        det.fit_density(data.images);
        det.save(out);
        std::cout << "fitted " << density_name << " on " << data.size() << " images, features " << features.str()
                  << ", saved " << out << '\n';
      });
    });
  });
  return 0;
}

// ------------------------------------------------------------ score
const char* kScoreHelp =
    "usage: scoreood score --model DETECTOR --data PATH --out FILE\n"
    "  Writes one OOD score per line (input order, full precision; higher = more OOD).\n";

int cmd_score(const std::vector<std::string>& argv) {
  Args a("score", argv, {"model", "data", "out"});
  const std::string model = a.required("model"), data_spec = a.required("data"), out = a.required("out");
  so::cli::check_writable(out, "--out");
  const ModelHeader h = peek_model(model);
  const auto data = load_data(data_spec, "--data");
  with_detector_of(h, [&](auto t) {
    using Det = typename decltype(t)::type;
    auto det = Det::from_file(model);
    if (!det.fitted()) a.fail(model + ": the density is not fitted (run `scoreood fit` first)");
    check_images(det, data.images, data_spec);
    det.set_progress(&std::cout);
    so::metrics::write_scores(out, det.score(data.images, "score"));
  });
  std::cout << "wrote " << data.size() << " scores to " << out << '\n';
  return 0;
}

// ------------------------------------------------------------ eval
const char* kEvalHelp =
    "usage: scoreood eval --model DETECTOR --in PATH [--ood NAME=PATH ...] [--transforms LIST] [options]\n"
    "  --in PATH           in-distribution test set\n"
    "  --ood NAME=PATH     an OOD set (repeatable)\n"
    "  --transforms LIST   transformed copies of the test set: rot90,rot180,rot270,patch_shuffle,hflip\n"
    "  --limit N           first N images of every set (0 = all, default)\n"
    "  --seed S            seed of the random transforms (patch_shuffle)\n"
    "  --json FILE         also write the table as JSON\n"
    "  --title TEXT        table title\n";

int cmd_eval(const std::vector<std::string>& argv) {
  Args a("eval", argv, {"model", "in", "ood", "transforms", "limit", "seed", "json", "title"});
  const std::string model = a.required("model"), in_spec = a.required("in");
  if (auto j = a.get("json")) so::cli::check_writable(*j, "--json");
  const std::size_t limit = a.count("limit", 0);
  const std::uint64_t seed = a.count("seed", 0);
  std::vector<std::pair<std::string, std::string>> oods;
  for (const auto& o : a.all("ood")) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == o.size()) a.fail("--ood: expected NAME=PATH, got '" + o + "'");
    oods.emplace_back(o.substr(0, eq), o.substr(eq + 1));
  }
  const auto transforms = so::cli::split_list(a.str("transforms", ""));
  for (const auto& t : transforms)
    if (std::find(so::augment::transform_names.begin(), so::augment::transform_names.end(), t) ==
        so::augment::transform_names.end())
      a.fail("--transforms: unknown transform '" + t + "' (valid: rot90, rot180, rot270, patch_shuffle, hflip)");
  if (oods.empty() && transforms.empty()) a.fail("give at least one --ood NAME=PATH or --transforms LIST");
  const ModelHeader h = peek_model(model);
  auto load_limited = [&](const std::string& spec, const char* what) {
    auto d = load_data(spec, what);
    return limit ? so::data::first_n(d, limit) : d;
  };
  const auto in = load_limited(in_spec, "--in");
  // Load every set before the slow scoring so a bad path fails at once.
  std::vector<so::data::Dataset> ood_sets;
  for (const auto& [name, spec] : oods) ood_sets.push_back(load_limited(spec, "--ood"));

  std::vector<so::metrics::EvalRow> rows;
  with_detector_of(h, [&](auto t) {
    using Det = typename decltype(t)::type;
    auto det = Det::from_file(model);
    if (!det.fitted()) a.fail(model + ": the density is not fitted (run `scoreood fit` first)");
    check_images(det, in.images, in_spec);
    for (std::size_t i = 0; i < oods.size(); ++i) check_images(det, ood_sets[i].images, oods[i].second);
    det.set_progress(&std::cout);
    const auto s_in = det.score(in.images, "in");
    for (std::size_t i = 0; i < oods.size(); ++i)
      rows.push_back({oods[i].first, so::metrics::evaluate(s_in, det.score(ood_sets[i].images, oods[i].first))});
    for (const auto& tname : transforms) {
      const auto x = so::augment::apply_transform(in.images, tname, seed);
      rows.push_back({tname, so::metrics::evaluate(s_in, det.score(x, tname))});
    }
  });
  const std::string title = a.str("title", "in-distribution: " + in_spec + " (" + std::to_string(in.size()) +
                                               " images); OOD is positive");
  std::cout << so::metrics::format_table(rows, title);
  if (auto j = a.get("json")) {
    const std::string text = so::metrics::rows_to_json(rows) + '\n';
    so::io::write_file_atomic(*j, text);
  }
  return 0;
}

const char* kUsage =
    "usage: scoreood [--data-root DIR] COMMAND [options]   (COMMAND --help for details)\n"
    "  metrics   metrics of two score files\n"
    "  inspect   describe a dataset file\n"
    "  train     train a score network (RotNCSN / NCSN) on images\n"
    "  fit       fit a density on the normality vectors of training images\n"
    "  score     OOD scores of images, one per line\n"
    "  eval      evaluation table against OOD sets and transforms\n"
    "Data paths: PATH[:gray28][:first=N], looked up in --data-root, $SCOREOOD_DATA,\n"
    "../shared/data and /usr/share/datasets.\n";

/// Library messages may span lines (e.g. the folders searched); the contract is one line.
std::string one_line(std::string m) {
  std::string out;
  bool space = false;
  for (char c : m) {
    if (c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space) {
      while (!out.empty() && out.back() == ' ') out.pop_back();
      out += out.empty() || out.back() == ':' || out.back() == ';' ? " " : "; ";
      space = false;
      if (c == ' ') continue;
    }
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out += c;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    // Global option before the command.
    int first = 1;
    while (first < argc && std::string_view(argv[first]).starts_with("--data-root")) {
      std::string v;
      const std::string_view arg = argv[first];
      if (arg.size() > 11 && arg[11] == '=') v = std::string(arg.substr(12)), first += 1;
      else if (arg.size() == 11 && first + 1 < argc) v = argv[first + 1], first += 2;
      else throw so::ValueError(arg.size() == 11 ? "--data-root needs a value" : "unknown option " + std::string(arg));
      if (!std::filesystem::is_directory(v)) throw so::ValueError("--data-root: " + v + ": not a directory");
      ::setenv("SCOREOOD_DATA", v.c_str(), 1);  // data::load searches $SCOREOOD_DATA first
    }
    if (first >= argc) {
      std::cerr << "scoreood: no command given (commands: metrics, inspect, train, fit, score, eval; try --help)\n";
      return 1;
    }
    const std::string cmd = argv[first];
    const std::vector<std::string> rest(argv + first + 1, argv + argc);
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << kUsage;
      return 0;
    }
    struct Cmd {
      const char* help;
      int (*run)(const std::vector<std::string>&);
    };
    static const std::map<std::string, Cmd> cmds{{"metrics", {kMetricsHelp, cmd_metrics}},
                                                 {"inspect", {kInspectHelp, cmd_inspect}},
                                                 {"train", {kTrainHelp, cmd_train}},
                                                 {"fit", {kFitHelp, cmd_fit}},
                                                 {"score", {kScoreHelp, cmd_score}},
                                                 {"eval", {kEvalHelp, cmd_eval}}};
    const auto it = cmds.find(cmd);
    if (it == cmds.end())
      throw so::ValueError("unknown command '" + cmd + "' (commands: metrics, inspect, train, fit, score, eval)");
    if (wants_help(rest)) {
      std::cout << it->second.help;
      return 0;
    }
    return it->second.run(rest);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "scoreood: " << one_line(e.what()) << std::endl;
    return 1;
  }
}
