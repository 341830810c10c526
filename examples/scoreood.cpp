// scoreood: the command-line tool. Subcommands metrics, inspect, train, fit, score, eval, explain.
// Every error is ONE line "scoreood: <message>" on stderr and exit status 1.
//
// Every dataset goes through data::open / data::read (an IDX or CIFAR file, a folder of
// images, a list of image paths): for fit, score, eval and explain converted to the model's
// channels and image size, so a folder of photos of any size works as it is. score and
// explain stream their input in batches (memory bounded by the batch, not the set).
//
// The detector's policies are template parameters; this program picks the
// instantiation at run time from flags (train) or from the names recorded in
// the model file (fit/score/eval, read with scoreood::read_detector_info).
// Supported: net small-unet (and ncsn when <scoreood/nn/nets/ncsn_refinenet.hpp>
// is present) x aug identity|rot4|dihedral8 x density gmm|gaussian|knn.
// PatchPermutations is left out: it needs constructor arguments that the file
// does not record, and each extra policy multiplies the instantiations
// (compile time).
//
// Flags are parsed by CLI11 (cli/parse.hpp); each subcommand's flags are bound
// to its own struct of settings, whose initial values are the defaults.
#include <scoreood/scoreood.hpp>

#include "cli/json.hpp"
#include "cli/output_path.hpp"
#include "cli/parse.hpp"
#include "cli/score_table.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

// Compiled by nvcc from cli/scoreood_cuda.cu (SCOREOOD_CUDA_CLI=ON), the networks also run on CUDA.
#ifndef SCOREOOD_CLI_CUDA
#define SCOREOOD_CLI_CUDA 0
#endif
#if SCOREOOD_CLI_CUDA
#include <scoreood/cuda.hpp>
#endif

#if __has_include(<scoreood/nn/nets/ncsn_refinenet.hpp>)
#include <scoreood/nn/nets/ncsn_refinenet.hpp>
#define SCOREOOD_CLI_HAS_NCSN 1
#else
#define SCOREOOD_CLI_HAS_NCSN 0
#endif

namespace so = scoreood;
namespace cli = scoreood::cli;

namespace {

// ------------------------------------------------------------ policy dispatch
template <class T>
using tag = std::type_identity<T>;

/// Where the networks run: the global --device flag (before the command). A detector file is
/// the same whichever backend wrote it, so a model trained on one device scores on the other.
std::string g_device = "cpu";

/// Calls f(tag<Backend>) for --device.
template <class F>
void with_backend(F&& f) {
  if (g_device == "cpu") return f(tag<so::backend::cpu>{});
  if (g_device != "cuda") throw so::ValueError("--device: '" + g_device + "' is not cpu or cuda");
#if SCOREOOD_CLI_CUDA
  so::gpu::require_device("--device cuda");
  return f(tag<so::backend::cuda>{});
#else
  throw so::ValueError(
      "--device cuda: this scoreood was built without the CUDA backend (configure with nvcc on PATH and "
      "-DSCOREOOD_CUDA_CLI=ON; see the README's section on the GPU)");
#endif
}

template <class F>
void with_net(std::string_view name, F&& f) {
  with_backend([&](auto b) {
    using B = typename decltype(b)::type;
    if (name == "small-unet") return f(tag<so::nn::SmallUNet<B>>{});
#if SCOREOOD_CLI_HAS_NCSN
    if (name == "ncsn") return f(tag<so::nn::NcsnRefineNet<B>>{});
    throw so::ValueError("unknown network '" + std::string(name) + "' (valid: small-unet, ncsn)");
#else
    throw so::ValueError("unknown or unsupported network '" + std::string(name) +
                         "' (valid: small-unet; this build has no ncsn network)");
#endif
  });
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

/// Calls f(tag<Detector>) for the detector type a model file records.
template <class F>
void with_detector_of(const so::DetectorInfo& h, F&& f) {
  with_net(h.network, [&](auto n) {
    with_aug(h.augmentation, [&](auto a) {
      with_density(h.density, [&](auto d) {
        f(tag<so::ScoreOOD<typename decltype(n)::type, typename decltype(a)::type, typename decltype(d)::type>>{});
      });
    });
  });
}

// ------------------------------------------------------------ helpers
std::string num(double v) { return cli::number_text(v); }

/// A problem with a subcommand's flags: "train: --batch must be positive".
[[noreturn]] void fail(const CLI::App& cmd, const std::string& msg) { throw so::ValueError(cmd.get_name() + ": " + msg); }
bool given(const CLI::App& cmd, const std::string& flag) { return cmd.count(flag) > 0; }

/// The model's input: every image is converted to the network's channels and size.
so::data::LoadOptions model_input(const so::DetectorInfo& h, bool skip_bad) {
  return {.channels = h.sizes.channels, .image_size = h.sizes.image_size, .skip_bad = skip_bad};
}

/// The files --skip-bad left out of one dataset, reported on stdout: how many, and the first few
/// reasons (each names its file).
class SkipLog {
 public:
  void add(const std::vector<so::data::SkippedFile>& files) {
    for (const auto& f : files)
      if (count_++ < kShown) shown_.push_back(f.reason);
  }
  std::size_t count() const { return count_; }
  void report(const std::string& spec) const {
    if (count_ == 0) return;
    std::cout << "skipped " << count_ << " unreadable image file" << (count_ == 1 ? "" : "s") << " of " << spec
              << " (--skip-bad):\n";
    for (const auto& r : shown_) std::cout << "  " << r << '\n';
    if (count_ > shown_.size()) std::cout << "  ... and " << count_ - shown_.size() << " more\n";
  }

 private:
  static constexpr std::size_t kShown = 5;
  std::size_t count_ = 0;
  std::vector<std::string> shown_;
};

/// `flag 'spec': ...` for a dataset that gave no image.
[[noreturn]] void no_images(const std::string& flag, const std::string& spec, std::size_t files, std::size_t skipped) {
  throw so::ValueError(flag + " '" + spec + "': " +
                       (skipped ? "none of its " + std::to_string(files) + " image files can be read"
                                : std::string("holds no images")));
}

/// The first `limit` images of `spec` (0: all), read whole, as `o` converts them; skipped files
/// are reported at once.
so::data::Dataset read_set(const std::string& spec, const so::data::LoadOptions& o, std::size_t limit,
                           const std::string& flag) {
  const auto src = so::data::open(spec, o);
  const std::size_t n = limit ? std::min(limit, src.size()) : src.size();
  auto d = src.read(0, n);
  SkipLog skipped;
  skipped.add(d.skipped);
  skipped.report(spec);
  if (d.size() == 0) no_images(flag, spec, n, skipped.count());
  return d;
}

/// Progress through a streamed set on stdout, "  score 3000/10000  85 img/s  ETA 1m22s", every
/// 1000 images and at the end (the detector's own lines would count each batch on its own).
class Progress {
 public:
  Progress(std::string what, std::size_t total) : what_(std::move(what)), total_(total) {}
  void at(std::size_t done) {
    if (done != total_ && done - last_ < 1000) return;
    last_ = done;
    const double secs = std::chrono::duration<double>(clock::now() - t0_).count();
    const double rate = double(done) / std::max(secs, 1e-9);
    std::cout << "  " << what_ << ' ' << done << '/' << total_ << "  " << int(rate) << " img/s";
    if (done < total_) {
      const int eta = int(double(total_ - done) / std::max(rate, 1e-9));
      std::cout << "  ETA " << eta / 60 << 'm' << (eta % 60 < 10 ? "0" : "") << eta % 60 << 's';
    }
    std::cout << std::endl;
  }

 private:
  using clock = std::chrono::steady_clock;
  std::string what_;
  std::size_t total_, last_ = 0;
  clock::time_point t0_ = clock::now();
};

/// Streams the first `limit` images of `src` (0: all) in batches of `batch`, calling
/// f(batch, names, first): names[k] names batch.images[k], its file or, in an IDX or CIFAR set
/// NAME, "NAME[i]" for image i (from 0); `first` is the index of the batch's first image in the
/// source. Reports progress as `what` and the files skipped; returns how many images f got
/// (none: ValueError naming `flag`).
template <class F>
std::size_t for_each_batch(const so::data::ImageSource& src, std::size_t batch, std::size_t limit,
                           const std::string& flag, const std::string& what, F&& f) {
  const std::size_t n = limit ? std::min(limit, src.size()) : src.size();
  const std::string base = so::data::parse_load_spec(src.source()).path;
  Progress progress(what, n);
  SkipLog skipped;
  std::size_t done = 0;
  for (std::size_t first = 0; first < n; first += batch) {
    const so::data::Dataset b = src.read(first, std::min(batch, n - first));
    skipped.add(b.skipped);
    if (b.size()) {
      std::vector<std::string> names = b.paths;
      if (!src.has_paths())
        for (std::size_t k = 0; k < b.size(); ++k) names.push_back(base + "[" + std::to_string(first + k) + "]");
      f(b, names, first);
      done += b.size();
    }
    progress.at(std::min(first + batch, n));
  }
  skipped.report(src.source());
  if (done == 0) no_images(flag, src.source(), n, skipped.count());
  return done;
}

/// The detector in `model`, which must have its density fitted.
template <class Det>
Det load_fitted(const CLI::App& c, const std::string& model) {
  auto det = Det::from_file(model);
  if (!det.fitted()) fail(c, model + ": the density is not fitted (run `scoreood fit` first)");
  return det;
}

/// "threshold 12.5: keeps 0.95 of 10 held-out images (a score above it is OOD)".
template <class Threshold>
std::string threshold_text(const Threshold& t) {
  std::string s = "threshold " + num(t.value);
  if (t.held_out) s += ": keeps " + num(t.keep) + " of " + std::to_string(t.held_out) + " held-out images";
  return s + " (a score above it is OOD)";
}

// ------------------------------------------------------------ metrics
const char* kMetricsHelp =
    "usage: scoreood metrics --in FILE --out FILE [--json]\n"
    "  FILE: one score per line (higher = more OOD), or the table `scoreood score --out` writes;\n"
    "  --in in-distribution, --out OOD.\n"
    "  Prints AUROC, AUPR-in, AUPR-out, FPR@95%TPR, TNR@95%TPR, detection accuracy\n"
    "  (OOD is the positive class), or one JSON object with --json.\n";

struct MetricsArgs {
  std::string in, out;
  bool json = false;
};

CLI::App* declare_metrics(CLI::App& root, MetricsArgs& a) {
  CLI::App* c = root.add_subcommand("metrics", "metrics of two score files");
  cli::configure(*c, kMetricsHelp);
  c->add_option("--in", a.in)->required();
  c->add_option("--out", a.out)->required();
  cli::add_switch(*c, "--json", a.json);
  return c;
}

int run_metrics(const CLI::App& c, const MetricsArgs& a) {
  const auto s_in = cli::read_score_column(a.in);
  const auto s_out = cli::read_score_column(a.out);
  if (s_in.empty()) fail(c, a.in + ": no scores");
  if (s_out.empty()) fail(c, a.out + ": no scores");
  const auto r = so::metrics::evaluate(s_in, s_out);
  if (a.json) {
    std::cout << cli::dump_line(cli::to_json(r)) << '\n';
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
    "usage: scoreood inspect PATH[:option]...\n"
    "       scoreood inspect --system\n"
    "  --system: the CPU kernels' ISA tier (the best this CPU runs, or SCOREOOD_ISA's), the tiers\n"
    "  this CPU and build have, and the OpenMP thread count.\n"
    "  Prints the kind (idx, cifar, folder, list or image), the image count and shape.\n"
    "  IDX and CIFAR: also the pixel range and mean, and the label histogram. Folders and lists\n"
    "  are not decoded: the shape is what the first readable file's header gives, after the\n"
    "  spec's options (:gray, :rgb, :size=N, :gray28; files of other sizes need :size=N).\n";

struct InspectArgs {
  std::string spec;
  bool system = false;
};

CLI::App* declare_inspect(CLI::App& root, InspectArgs& a) {
  CLI::App* c = root.add_subcommand("inspect", "describe a dataset: a file, folder or list");
  cli::configure(*c, kInspectHelp);
  c->add_option("PATH", a.spec);  // positional
  c->add_flag("--system", a.system);
  return c;
}

/// inspect --system: what the CPU kernels run on here.
int run_inspect_system() {
  namespace isa = so::cpu::isa;
  const isa::Tier active = isa::active();  // SCOREOOD_ISA's errors before any output
  std::cout << "isa tier    " << isa::name(active) << '\n' << "tiers       ";
  for (auto t : {isa::Tier::avx512, isa::Tier::avx2, isa::Tier::baseline})
    std::cout << isa::name(t) << (isa::supported(t) ? " yes  " : " no  ");
  std::cout << '\n'
            << "dispatch    " << (SCOREOOD_ISA_DISPATCH ? "run time (SCOREOOD_ISA=avx512|avx2|baseline forces a tier)"
                                                        : "none: one tier, the build's flags")
            << '\n'
            << "threads     " << so::cpu::max_threads() << " (OMP_NUM_THREADS)\n";
  return 0;
}

const char* kind_name(so::data::DatasetKind k) {
  using K = so::data::DatasetKind;
  switch (k) {
    case K::idx: return "idx";
    case K::cifar: return "cifar";
    case K::folder: return "folder";
    case K::list: return "list";
    case K::image: return "image";
  }
  return "?";
}

int run_inspect(const CLI::App& c, const InspectArgs& a) {
  if (a.system) {
    if (given(c, "PATH")) fail(c, "--system takes no PATH");
    return run_inspect_system();
  }
  if (!given(c, "PATH")) fail(c, "missing the dataset PATH (see scoreood inspect --help)");
  const std::string& spec = a.spec;
  const auto path = so::data::find_data(so::data::parse_load_spec(spec).path);
  const auto kind = so::data::detect_dataset_kind(path);
  const auto src = so::data::open(spec);
  std::cout << "file        " << path.string() << '\n'
            << "kind        " << kind_name(kind) << '\n'
            << "count       " << src.size() << '\n'
            << "shape       " << src.channels() << "x" << src.height() << "x" << src.width() << " (CxHxW)\n";
  if (src.has_paths()) {
    if (src.size()) std::cout << "first       " << src.path(0) << '\n';
    return 0;
  }
  const auto d = src.read(0, src.size());  // IDX and CIFAR are in memory already
  double lo = 0, hi = 0, sum = 0;
  const std::size_t n = d.images.size();
  if (n) lo = hi = d.images.data()[0];
  for (std::size_t i = 0; i < n; ++i) {
    const double v = d.images.data()[i];
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  std::cout << "pixels      min " << num(lo) << "  max " << num(hi) << '\n'
            << "mean        " << num(n ? sum / double(n) : 0.0) << '\n';
  if (d.labels.empty()) {
    std::cout << "labels      none\n";
  } else {
    std::map<int, std::size_t> hist;
    for (int l : d.labels) ++hist[l];
    std::cout << "labels      " << d.labels.size() << " in " << hist.size() << " classes\n";
    for (auto [l, k] : hist) std::cout << "  " << l << "  " << k << '\n';
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
    "  --decay constant|cosine (constant)  --lr-end X (0)  --warmup N (0)   learning rate: cosine\n"
    "                          falls from --lr to --lr-end over the budget, after N warm-up steps\n"
    "  --sigma-max X (1)  --sigma-min X (0.01)  --levels L (10)   geometric noise schedule\n"
    "  --checkpoint-every N [--checkpoint STATE]  periodic trainer state (default MODEL.state)\n"
    "  --resume STATE          continue a run from a trainer state\n"
    "  --log loss.csv          CSV step,loss,seconds\n"
    "  --log-every N           progress line every N steps (default 50)\n"
    "  --skip-bad              leave out image files that cannot be read, and list them (else: an error)\n"
    "  PATH's images must be square and of one size (else add :size=N); with --resume they are\n"
    "  converted to the resumed network's channels and size.\n"
    "  Saves the detector (density not fitted yet: run `scoreood fit`) and ends with one JSON line.\n";

struct TrainArgs {
  std::string data, out, net = "small-unet", aug = "rot4", checkpoint, resume, log, decay = "constant";
  std::size_t width = 32, ngf = 64, steps = 0, batch = 128, log_every = 50, checkpoint_every = 0, levels = 10,
              warmup = 0;
  std::uint64_t seed = 0;
  double minutes = 0, lr = 1e-3, lr_end = 0, ema = 0, clip = 0, sigma_max = 1.0, sigma_min = 0.01;
  bool skip_bad = false;
};

CLI::App* declare_train(CLI::App& root, TrainArgs& a) {
  CLI::App* c = root.add_subcommand("train", "train a score network (RotNCSN / NCSN) on images");
  cli::configure(*c, kTrainHelp);
  c->add_option("--data", a.data)->required();
  c->add_option("--out", a.out)->required();
  c->add_option("--net", a.net);
  cli::add_count(*c, "--width", a.width);
  cli::add_count(*c, "--ngf", a.ngf);
  c->add_option("--aug", a.aug);
  cli::add_count(*c, "--steps", a.steps);
  cli::add_real(*c, "--minutes", a.minutes);
  cli::add_count(*c, "--batch", a.batch);
  cli::add_real(*c, "--lr", a.lr);
  c->add_option("--decay", a.decay);
  cli::add_real(*c, "--lr-end", a.lr_end);
  cli::add_count(*c, "--warmup", a.warmup);
  cli::add_count(*c, "--seed", a.seed);
  cli::add_real(*c, "--ema", a.ema);
  cli::add_real(*c, "--clip", a.clip);
  cli::add_real(*c, "--sigma-max", a.sigma_max);
  cli::add_real(*c, "--sigma-min", a.sigma_min);
  cli::add_count(*c, "--levels", a.levels);
  cli::add_count(*c, "--checkpoint-every", a.checkpoint_every);
  c->add_option("--checkpoint", a.checkpoint);
  c->add_option("--resume", a.resume);
  c->add_option("--log", a.log);
  cli::add_count(*c, "--log-every", a.log_every);
  cli::add_switch(*c, "--skip-bad", a.skip_bad);
  return c;
}

int run_train(const CLI::App& c, const TrainArgs& a) {
  const std::string& data_spec = a.data;
  const std::string& out = a.out;
  cli::check_writable(out, "--out");
  so::score::TrainOptions opt;
  opt.steps = a.steps;
  opt.minutes = a.minutes;
  if (opt.steps == 0 && opt.minutes <= 0) fail(c, "give --steps N or --minutes M");
  opt.batch = a.batch;
  if (opt.batch == 0) fail(c, "--batch must be positive");
  opt.lr = a.lr;
  if (!(opt.lr > 0)) fail(c, "--lr must be positive");
  if (a.decay == "cosine") opt.decay = so::score::LrDecay::cosine;
  else if (a.decay != "constant") fail(c, "--decay: unknown '" + a.decay + "' (valid: constant, cosine)");
  if (given(c, "--lr-end") && opt.decay != so::score::LrDecay::cosine) fail(c, "--lr-end is for --decay cosine");
  opt.lr_end = a.lr_end;
  if (!(opt.lr_end >= 0 && opt.lr_end <= opt.lr)) fail(c, "--lr-end must be in [0, --lr]");
  opt.warmup = a.warmup;
  opt.seed = a.seed;
  opt.ema = a.ema;
  opt.max_grad_norm = a.clip;
  opt.log_every = a.log_every;
  opt.checkpoint_every = a.checkpoint_every;
  if (opt.checkpoint_every || given(c, "--checkpoint")) {
    opt.checkpoint = given(c, "--checkpoint") ? a.checkpoint : out + ".state";
    cli::check_writable(opt.checkpoint.string(), "--checkpoint");
  }
  if (given(c, "--log")) {
    cli::check_writable(a.log, "--log");
    opt.loss_log = a.log;
  }
  opt.progress = &std::cout;
  const std::string& resume = a.resume;
  if (!resume.empty() && !std::filesystem::exists(resume)) fail(c, "--resume: " + resume + ": no such file");
  so::schedule::Geometric sched{static_cast<float>(a.sigma_max), static_cast<float>(a.sigma_min), a.levels};
  if (!(sched.sigma_max > sched.sigma_min && sched.sigma_min > 0)) fail(c, "need --sigma-max > --sigma-min > 0");
  if (sched.levels == 0) fail(c, "--levels must be positive");
  std::vector<float> sigmas = sched.sigmas();
  std::string net_name = a.net, aug_name = a.aug;
  std::size_t width = a.width, ngf = a.ngf;
  so::data::LoadOptions input{.skip_bad = a.skip_bad};  // a new network takes the images as they are
  if (!resume.empty()) {
    // The state fixes the architecture, seed, schedule and group: a flag may repeat them, not change them.
    const auto st = so::score::read_train_state_info(resume);
    auto same = [&](const char* flag, bool is_given, bool equal, const std::string& held) {
      if (is_given && !equal)
        fail(c, "--" + std::string(flag) + " differs from the resumed state " + resume + ", which holds " + held);
    };
    same("net", given(c, "--net"), net_name == st.network, "a " + st.network + " network");
    same("aug", given(c, "--aug"), aug_name == st.augmentation, "augmentation " + st.augmentation);
    same("width", given(c, "--width"), width == st.sizes.width, "a " + st.network + " of " + st.sizes.str());
    same("ngf", given(c, "--ngf"), ngf == st.sizes.width, "a " + st.network + " of " + st.sizes.str());
    same("seed", given(c, "--seed"), opt.seed == st.seed, "seed " + std::to_string(st.seed));
    const bool sched_given = given(c, "--sigma-max") || given(c, "--sigma-min") || given(c, "--levels");
    same("sigma-max/--sigma-min/--levels", sched_given, sigmas == st.sigmas,
         "another noise schedule (" + std::to_string(st.sigmas.size()) + " levels)");
    if (opt.steps && opt.steps <= st.step)
      fail(c, "--steps " + std::to_string(opt.steps) + ": the resumed state " + resume + " is already at step " +
                  std::to_string(st.step) + " (--steps counts every step, the resumed ones too)");
    net_name = st.network;
    aug_name = st.augmentation;
    width = ngf = st.sizes.width;
    opt.seed = st.seed;
    sigmas = st.sigmas;
    input.channels = st.sizes.channels;
    input.image_size = st.sizes.image_size;
  }
  if (net_name == "small-unet" && given(c, "--ngf")) fail(c, "--ngf is for --net ncsn (small-unet takes --width)");
  if (net_name == "ncsn" && given(c, "--width")) fail(c, "--width is for --net small-unet (ncsn takes --ngf)");

  const auto data = read_set(data_spec, input, 0, "--data");
  const auto s = data.images.shape();
  if (s[2] != s[3])
    fail(c, data_spec + ": images are " + std::to_string(s[2]) + "x" + std::to_string(s[3]) + ", need square images");

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
  const cli::Json summary{{"steps", res.total_steps},
                          {"seconds", res.seconds},
                          {"images_per_second", res.images_per_second},
                          {"final_loss", res.final_loss}};
  std::cout << cli::dump_line(summary) << std::endl;
  return 0;
}

// ------------------------------------------------------------ fit
const char* kFitHelp =
    "usage: scoreood fit --model MODEL --data PATH --out DETECTOR [options]\n"
    "  --features LIST     msma,rec,rot,elem, plus log for log space (default: the model's)\n"
    "  --density gmm|gaussian|knn   (default gmm)\n"
    "  --limit N           fit on the first N images (0 = all, default)\n"
    "  --draws K           noise draws per image for rec/rot/elem (default: the model's)\n"
    "  --components LIST   GMM candidate component counts (default 1,2,4,...,20; larger than N dropped)\n"
    "  --holdout F         share of the images held out of the density to set the decision\n"
    "                      threshold, in [0, 1) (default 0.1; 0 = no threshold, as is a share\n"
    "                      of fewer than 10 images)\n"
    "  --keep F            share of the held-out images the threshold keeps in-distribution,\n"
    "                      in (0, 1] (default 0.95)\n"
    "  --skip-bad          leave out image files that cannot be read, and list them (else: an error)\n"
    "  Images are converted to the model's channels and size. Prints the threshold; `score` then\n"
    "  flags each image whose score is above it.\n";

struct FitArgs {
  std::string model, data, out, features, density = "gmm", components;
  std::size_t limit = 0, draws = 0;
  double holdout = 0.1, keep = 0.95;
  bool skip_bad = false;
};

CLI::App* declare_fit(CLI::App& root, FitArgs& a) {
  CLI::App* c = root.add_subcommand("fit", "fit a density on the normality vectors of training images");
  cli::configure(*c, kFitHelp);
  c->add_option("--model", a.model)->required();
  c->add_option("--data", a.data)->required();
  c->add_option("--out", a.out)->required();
  c->add_option("--features", a.features);
  c->add_option("--density", a.density);
  cli::add_count(*c, "--limit", a.limit);
  cli::add_count(*c, "--draws", a.draws);
  c->add_option("--components", a.components);
  cli::add_real(*c, "--holdout", a.holdout);
  cli::add_real(*c, "--keep", a.keep);
  cli::add_switch(*c, "--skip-bad", a.skip_bad);
  return c;
}

/// How many of n images FitOptions{.holdout} holds out: none when that share rounds to fewer
/// than 10 images, or to all of them (the rule ScoreOOD::FitOptions documents).
std::size_t held_out_of(std::size_t n, double holdout) {
  const auto k = static_cast<std::size_t>(std::llround(holdout * double(n)));
  return k < 10 || k >= n ? 0 : k;
}

int run_fit(const CLI::App& c, const FitArgs& a) {
  const std::string &model = a.model, &data_spec = a.data, &out = a.out;
  cli::check_writable(out, "--out");
  if (!(a.holdout >= 0 && a.holdout < 1)) fail(c, "--holdout must be in [0, 1) (0: no threshold), got " + num(a.holdout));
  if (!(a.keep > 0 && a.keep <= 1)) fail(c, "--keep must be in (0, 1], got " + num(a.keep));
  const std::string& density_name = a.density;
  with_density(density_name, [](auto) {});  // reject a bad name before the slow part
  const so::DetectorInfo h = so::read_detector_info(model);
  so::score::FeatureSet features;
  try {
    features = so::score::FeatureSet::parse(given(c, "--features") ? a.features : h.features);
  } catch (const so::ValueError& e) {
    fail(c, std::string("--features: ") + e.what());
  }
  const std::size_t draws = given(c, "--draws") ? a.draws : h.draws;
  if (draws == 0) fail(c, "--draws must be positive");
  std::vector<int> comps;
  if (given(c, "--components")) {
    for (const auto& t : cli::split_list(a.components)) {
      int k = 0;
      const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), k);
      if (ec != std::errc() || p != t.data() + t.size() || k < 1)
        fail(c, "--components: '" + t + "' is not a positive integer");
      comps.push_back(k);
    }
    if (comps.empty()) fail(c, "--components: empty list");
  }
  // The network as the model file holds it, whatever density it was saved with: the whole
  // file is loaded (and checked) as the detector it records, then its network copied over.
  so::io::ByteWriter net_bytes;
  with_detector_of(h, [&](auto t) { decltype(t)::type::from_file(model).net().save(net_bytes); });
  const auto data = read_set(data_spec, model_input(h, a.skip_bad), a.limit, "--data");
  const std::size_t count = data.size();

  with_net(h.network, [&](auto n) {
    using Net = typename decltype(n)::type;
    with_aug(h.augmentation, [&](auto g) {
      using Aug = typename decltype(g)::type;
      with_density(density_name, [&](auto dn) {
        using Density = typename decltype(dn)::type;
        Density density;
        if constexpr (std::is_same_v<Density, so::density::Gmm>) {
          so::density::GmmOptions go;
          if (!comps.empty()) go.components = comps;
          const int nrows = static_cast<int>(count - held_out_of(count, a.holdout));  // held-out ones are not fitted
          std::erase_if(go.components, [&](int k) { return k > nrows; });
          if (go.components.empty())
            fail(c, "--components: every count exceeds the " + std::to_string(nrows) + " images fitted");
          density = Density(go);
        }
        using Det = so::ScoreOOD<Net, Aug, Density>;
        typename Det::Options o;
        o.seed = h.seed;
        o.features = features;
        o.draws = draws;
        o.progress = &std::cout;
        Det det(so::schedule::ExplicitList{h.sigmas}, o, Aug{}, std::move(density));
        so::io::ByteReader r(net_bytes.bytes(), model);
        det.net().load(r);
        det.fit_density(data.images, {.holdout = a.holdout, .keep = a.keep});
        det.save(out);
        const auto& t = det.threshold();
        const std::size_t held = t ? t->held_out : 0;
        std::cout << "fitted " << density_name << " on " << count - held << (held ? " of " + std::to_string(count) : "")
                  << " images, features " << features.str() << ", saved " << out << '\n';
        if (t)
          std::cout << threshold_text(*t) << '\n';
        else if (a.holdout > 0)
          std::cout << "no threshold: --holdout " << num(a.holdout) << " of " << count << " images is "
                    << std::llround(a.holdout * double(count)) << " images, and a threshold needs 10 or more and"
                    << " some left to fit\n";
        else
          std::cout << "no threshold (--holdout 0)\n";
      });
    });
  });
  return 0;
}

// ------------------------------------------------------------ score
const char* kScoreHelp =
    "usage: scoreood score --model DETECTOR --data PATH --out FILE [options]\n"
    "  Writes one line per image, in input order: PATH<TAB>SCORE (full precision; higher = more\n"
    "  OOD), and <TAB>1 (OOD) or <TAB>0 when the detector has a threshold (see fit --holdout).\n"
    "  PATH is the image's file, or NAME[i] for image i (from 0) of an IDX or CIFAR file NAME;\n"
    "  a tab, newline, carriage return or backslash in it is written \\t, \\n, \\r, \\\\.\n"
    "  `scoreood metrics` reads the file as it reads plain score files.\n"
    "  --json FILE         also write [{\"path\": ..., \"score\": ..., \"is_ood\": true|false}, ...]\n"
    "                      (is_ood only with a threshold)\n"
    "  --batch B           images read and scored at a time (default 256): memory is one batch,\n"
    "                      whatever the size of the set; the scores do not depend on B.\n"
    "  --skip-bad          leave out image files that cannot be read, and list them (else: an error,\n"
    "                      and no file written)\n"
    "  Images are converted to the model's channels and size.\n";

struct ScoreArgs {
  std::string model, data, out, json;
  std::size_t batch = 256;
  bool skip_bad = false;
};

CLI::App* declare_score(CLI::App& root, ScoreArgs& a) {
  CLI::App* c = root.add_subcommand("score", "OOD scores of images, one per line");
  cli::configure(*c, kScoreHelp);
  c->add_option("--model", a.model)->required();
  c->add_option("--data", a.data)->required();
  c->add_option("--out", a.out)->required();
  c->add_option("--json", a.json);
  cli::add_count(*c, "--batch", a.batch, true);
  cli::add_switch(*c, "--skip-bad", a.skip_bad);
  return c;
}

int run_score(const CLI::App& c, const ScoreArgs& a) {
  const std::string &model = a.model, &out = a.out;
  const bool json = given(c, "--json");
  cli::check_writable(out, "--out");
  if (json) cli::check_writable(a.json, "--json");
  const so::DetectorInfo h = so::read_detector_info(model);
  const auto src = so::data::open(a.data, model_input(h, a.skip_bad));
  with_detector_of(h, [&](auto t) {
    const auto det = load_fitted<typename decltype(t)::type>(c, model);
    const auto& thr = det.threshold();
    // Both files appear only once every image is scored.
    cli::OutputFile tsv(out);
    std::optional<cli::OutputFile> js;
    if (json) js.emplace(a.json);
    std::size_t flagged = 0, rows = 0, seen = 0;
    const std::size_t n = for_each_batch(src, a.batch, 0, "--data", "score", [&](const auto& b, const auto& names, auto) {
      // `seen` images came before: each image gets the noise of its place in the whole set,
      // so the scores do not depend on --batch.
      const std::vector<double> s = det.score(b.images, "", seen);
      seen += s.size();
      const std::vector<bool> ood = thr ? det.is_ood_scores(s) : std::vector<bool>{};
      for (std::size_t k = 0; k < s.size(); ++k) {
        tsv.stream() << cli::tsv_escape(names[k]) << '\t' << num(s[k]);
        if (thr) tsv.stream() << '\t' << (ood[k] ? 1 : 0);
        tsv.stream() << '\n';
        flagged += thr && ood[k];
        if (!js) continue;
        cli::Json row{{"path", names[k]}, {"score", s[k]}};
        if (thr) row["is_ood"] = bool(ood[k]);
        js->stream() << (rows++ ? ",\n  " : "[\n  ") << cli::dump_line(row);  // one object a line
      }
    });
    if (js) js->stream() << "\n]\n";
    tsv.commit();
    if (js) js->commit();
    std::cout << "wrote " << n << " scores of " << a.data << " (as " << h.sizes.channels << "x" << h.sizes.image_size
              << "x" << h.sizes.image_size << ", the model's input) to " << out << (json ? " and " + a.json : "")
              << '\n';
    if (thr)
      std::cout << flagged << " of " << n << " above the " << threshold_text(*thr) << '\n';
    else
      std::cout << "no threshold in " << model << " (fit with --holdout to flag OOD images)\n";
  });
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
    "  --title TEXT        table title\n"
    "  --skip-bad          leave out image files that cannot be read, and list them (else: an error)\n"
    "  Every set is converted to the model's channels and size.\n";

struct EvalArgs {
  std::string model, in, transforms, json, title;
  std::vector<std::string> ood;
  std::size_t limit = 0;
  std::uint64_t seed = 0;
  bool skip_bad = false;
};

CLI::App* declare_eval(CLI::App& root, EvalArgs& a) {
  CLI::App* c = root.add_subcommand("eval", "evaluation table against OOD sets and transforms");
  cli::configure(*c, kEvalHelp);
  c->add_option("--model", a.model)->required();
  c->add_option("--in", a.in)->required();
  cli::add_repeated(*c, "--ood", a.ood);
  c->add_option("--transforms", a.transforms);
  cli::add_count(*c, "--limit", a.limit);
  cli::add_count(*c, "--seed", a.seed);
  c->add_option("--json", a.json);
  c->add_option("--title", a.title);
  cli::add_switch(*c, "--skip-bad", a.skip_bad);
  return c;
}

int run_eval(const CLI::App& c, const EvalArgs& a) {
  const std::string &model = a.model, &in_spec = a.in;
  const bool json = given(c, "--json");
  if (json) cli::check_writable(a.json, "--json");
  const std::size_t limit = a.limit;
  const std::uint64_t seed = a.seed;
  std::vector<std::pair<std::string, std::string>> oods;
  for (const auto& o : a.ood) {
    const auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == o.size()) fail(c, "--ood: expected NAME=PATH, got '" + o + "'");
    oods.emplace_back(o.substr(0, eq), o.substr(eq + 1));
  }
  const auto transforms = cli::split_list(a.transforms);
  for (const auto& t : transforms)
    if (std::find(so::augment::transform_names.begin(), so::augment::transform_names.end(), t) ==
        so::augment::transform_names.end())
      fail(c, "--transforms: unknown transform '" + t + "' (valid: rot90, rot180, rot270, patch_shuffle, hflip)");
  if (oods.empty() && transforms.empty()) fail(c, "give at least one --ood NAME=PATH or --transforms LIST");
  {  // set names key the table and the JSON: one must not hide another
    std::vector<std::string> names(transforms);
    for (const auto& o : oods) names.push_back(o.first);
    std::sort(names.begin(), names.end());
    if (const auto dup = std::adjacent_find(names.begin(), names.end()); dup != names.end())
      fail(c, "two sets are named '" + *dup + "' (each --ood NAME and transform names one row)");
  }
  const so::DetectorInfo h = so::read_detector_info(model);
  const auto input = model_input(h, a.skip_bad);
  const auto in = read_set(in_spec, input, limit, "--in");
  // Load every set before the slow scoring so a bad path fails at once.
  std::vector<so::data::Dataset> ood_sets;
  for (const auto& [name, spec] : oods) ood_sets.push_back(read_set(spec, input, limit, "--ood"));

  std::vector<so::metrics::EvalRow> rows;
  with_detector_of(h, [&](auto t) {
    using Det = typename decltype(t)::type;
    auto det = load_fitted<Det>(c, model);
    det.set_progress(&std::cout);
    const auto s_in = det.score(in.images, "in");
    for (std::size_t i = 0; i < oods.size(); ++i)
      rows.push_back({oods[i].first, so::metrics::evaluate(s_in, det.score(ood_sets[i].images, oods[i].first))});
    for (const auto& tname : transforms) {
      const auto x = so::augment::apply_transform(in.images, tname, seed);
      rows.push_back({tname, so::metrics::evaluate(s_in, det.score(x, tname))});
    }
  });
  const std::string title = given(c, "--title") ? a.title
                                                 : "in-distribution: " + in_spec + " (" + std::to_string(in.size()) +
                                                       " images); OOD is positive";
  std::cout << so::metrics::format_table(rows, title);
  if (json) so::io::write_file_atomic(a.json, cli::dump_file(cli::rows_to_json(rows)));
  return 0;
}

// ------------------------------------------------------------ explain
const char* kExplainHelp =
    "usage: scoreood explain --model DETECTOR --data PATH --out DIR [options]\n"
    "  Per image, DIR/NAME.png: the image as the model sees it beside its anomaly map (black -\n"
    "  red - yellow - white up to the map's own maximum), each 4x enlarged: (2W+2)*4 x H*4 pixels\n"
    "  for a model of W x H images. NAME is the file's stem (then -2, -3, ... where two files\n"
    "  share one), or the image's index in an IDX or CIFAR file. And DIR/maps.tsv: a header, then\n"
    "  per image PATH, SCORE, MAP_MAX, MAX_X, MAX_Y (column and row of the map's maximum, in\n"
    "  the model's pixels) and the PNG's name. DIR is created if needed; files appear only\n"
    "  once every image is done.\n"
    "  --limit N           the first N images (files of a folder or list, readable or not; 0 = all)\n"
    "  --terms clean|features   what a map adds up: the clean image's scores (default; localises\n"
    "                      best, L network passes), or every term of the detector's features\n"
    "  --batch B           images read and mapped at a time (default 64)\n"
    "  --skip-bad          leave out image files that cannot be read, and list them (else: an error)\n";

struct ExplainArgs {
  std::string model, data, out, terms = "clean";
  std::size_t limit = 0, batch = 64;
  bool skip_bad = false;
};

CLI::App* declare_explain(CLI::App& root, ExplainArgs& a) {
  CLI::App* c = root.add_subcommand("explain", "each image beside its anomaly map, as PNG files");
  cli::configure(*c, kExplainHelp);
  c->add_option("--model", a.model)->required();
  c->add_option("--data", a.data)->required();
  c->add_option("--out", a.out)->required();
  cli::add_count(*c, "--limit", a.limit);
  c->add_option("--terms", a.terms);
  cli::add_count(*c, "--batch", a.batch, true);
  cli::add_switch(*c, "--skip-bad", a.skip_bad);
  return c;
}

/// "0042" for image 42 of a set of `n` (as many digits as the largest index).
std::string padded_index(std::size_t i, std::size_t n) {
  std::string s = std::to_string(i);
  const std::size_t width = std::to_string(n ? n - 1 : 0).size();
  return std::string(width > s.size() ? width - s.size() : 0, '0') + s;
}

int run_explain(const CLI::App& c, const ExplainArgs& a) {
  const std::string& model = a.model;
  cli::check_writable_folder(a.out, "--out");
  if (a.terms != "clean" && a.terms != "features")
    fail(c, "--terms: unknown '" + a.terms + "' (valid: clean, features)");
  const so::DetectorInfo h = so::read_detector_info(model);
  const auto src = so::data::open(a.data, model_input(h, a.skip_bad));
  with_detector_of(h, [&](auto t) {
    using Det = typename decltype(t)::type;
    const auto det = load_fitted<Det>(c, model);
    typename Det::MapOptions mo;
    mo.terms = a.terms == "clean" ? Det::MapOptions::Terms::clean : Det::MapOptions::Terms::features;
    cli::OutputFolder dir(a.out);
    std::ofstream tsv(dir.file("maps.tsv"));
    tsv << "path\tscore\tmap_max\tmax_x\tmax_y\timage\n";
    std::set<std::string> used;  // PNG names taken
    std::size_t seen = 0;        // images mapped so far (their place in the whole set: see score)
    const std::size_t n = for_each_batch(src, a.batch, a.limit, "--data", "explain", [&](const auto& b, const auto& names,
                                                                                       std::size_t first) {
      const std::vector<double> s = det.score(b.images, "", seen);
      const so::Images maps = det.anomaly_map(b.images, mo, "", seen);
      seen += s.size();
      const std::size_t H = maps.shape()[2], W = maps.shape()[3];
      for (std::size_t k = 0; k < s.size(); ++k) {
        // IDX and CIFAR images have no paths (and no skipped files): k is the place in the batch.
        const std::string stem = src.has_paths() ? std::filesystem::path(b.paths[k]).stem().string()
                                                 : padded_index(first + k, src.size());
        std::string name = stem + ".png";
        for (std::size_t j = 2; used.count(name); ++j) name = stem + "-" + std::to_string(j) + ".png";
        used.insert(name);
        so::data::write_heatmap_png(dir.file(name), b.images, maps, k);
        const float* m = maps.data() + k * H * W;
        const std::size_t at = std::size_t(std::max_element(m, m + H * W) - m);
        tsv << cli::tsv_escape(names[k]) << '\t' << num(s[k]) << '\t' << num(m[at]) << '\t' << at % W << '\t'
            << at / W << '\t' << cli::tsv_escape(name) << '\n';
      }
    });
    tsv.close();
    if (!tsv) throw so::Error((dir.dir() / "maps.tsv").string() + ": write failed (disk full?)");
    dir.commit();
    std::cout << "wrote " << n << " anomaly maps of " << a.data << " (" << a.terms << " terms) and maps.tsv to "
              << a.out << '\n';
  });
  return 0;
}

const char* kUsage =
    "usage: scoreood [--data-root DIR] [--device cpu|cuda] COMMAND [options]   (COMMAND --help for details)\n"
    "  metrics   metrics of two score files\n"
    "  inspect   describe a dataset: a file, folder or list\n"
    "  train     train a score network (RotNCSN / NCSN) on images\n"
    "  fit       fit a density on the normality vectors of training images\n"
    "  score     OOD scores of images, one per line\n"
    "  eval      evaluation table against OOD sets and transforms\n"
    "  explain   each image beside its anomaly map, as PNG files\n"
    "Data paths: PATH[:gray28][:gray|:rgb][:size=N][:skip=N][:first=N][:recursive], PATH an IDX or\n"
    "CIFAR file, a folder of PNG/JPEG/BMP images (sorted by path), a text file listing image paths,\n"
    "or one image; looked up in --data-root, $SCOREOOD_DATA, ../shared/data and /usr/share/datasets.\n"
    "fit, score, eval and explain convert every image to the model's channels and size.\n"
    "--device cuda runs the networks on the GPU (a build with -DSCOREOOD_CUDA_CLI=ON); model files\n"
    "are the same on either device.\n";

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
    CLI::App app{"OOD detection with score-based generative models", "scoreood"};
    cli::configure(app, kUsage);
    // The global options, before the command: --data-root (data::load searches $SCOREOOD_DATA
    // first) and --device.
    std::string data_root;
    app.add_option("--data-root", data_root)
        ->check(CLI::Validator(
            [](std::string& v) { return std::filesystem::is_directory(v) ? std::string() : v + ": not a directory"; },
            "DIR"));
    app.add_option("--device", g_device)->check(CLI::IsMember({"cpu", "cuda"}));
    app.require_subcommand(0, 1);
    CLI::App* help = app.add_subcommand("help", "print the usage");
    help->group("");  // not listed among the commands
    MetricsArgs metrics_args;
    InspectArgs inspect_args;
    TrainArgs train_args;
    FitArgs fit_args;
    ScoreArgs score_args;
    EvalArgs eval_args;
    ExplainArgs explain_args;
    CLI::App* metrics = declare_metrics(app, metrics_args);
    CLI::App* inspect = declare_inspect(app, inspect_args);
    CLI::App* train = declare_train(app, train_args);
    CLI::App* fit = declare_fit(app, fit_args);
    CLI::App* score = declare_score(app, score_args);
    CLI::App* eval = declare_eval(app, eval_args);
    CLI::App* explain = declare_explain(app, explain_args);

    if (!cli::parse(app, argc, argv)) return 0;  // --help
    if (!data_root.empty()) ::setenv("SCOREOOD_DATA", data_root.c_str(), 1);
    if (help->parsed()) {
      std::cout << kUsage;
      return 0;
    }
    if (metrics->parsed()) return run_metrics(*metrics, metrics_args);
    if (inspect->parsed()) return run_inspect(*inspect, inspect_args);
    if (train->parsed()) return run_train(*train, train_args);
    if (fit->parsed()) return run_fit(*fit, fit_args);
    if (score->parsed()) return run_score(*score, score_args);
    if (eval->parsed()) return run_eval(*eval, eval_args);
    if (explain->parsed()) return run_explain(*explain, explain_args);
    std::cerr << "scoreood: no command given (commands: metrics, inspect, train, fit, score, eval, explain; try --help)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "scoreood: " << one_line(e.what()) << std::endl;
    return 1;
  }
}
