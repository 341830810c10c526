/** @file trainer.hpp
 *  @brief Trains a score network by (group) denoising score matching.
 *
 *  Budget by steps or wall-clock minutes; progress lines (step, loss,
 *  images/s, ETA); a CSV loss log; periodic checkpoints that hold the network,
 *  the Adam state and the step, so a resumed run continues exactly where it
 *  stopped (batches are counter-based functions of (seed, step)).
 *
 *  Learning rate: constant, or a cosine decay over the budget, after an
 *  optional linear warm-up (scheduled_lr). The share of the budget spent is
 *  step / steps for a step budget; for a minutes budget it grows with the
 *  wall clock from the share a resumed state had spent, so a resumed run
 *  finishes the decay within its own minutes.
 *
 *  Divergence: a step whose loss or gradients are not finite throws before the
 *  update, naming the step and the last checkpoint written; the network keeps
 *  the weights of the last good step and no checkpoint holds a diverged state. */
#pragma once
#include <scoreood/concepts.hpp>
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/nn/nets/net_file.hpp>
#include <scoreood/nn/optim.hpp>
#include <scoreood/schedule/validate.hpp>
#include <scoreood/score/dsm.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <numbers>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace scoreood::score {

/// How the learning rate falls over the budget after the warm-up.
enum class LrDecay { constant, cosine };

struct TrainOptions {
  std::size_t steps = 0;          ///< stop after this many steps (0: no step limit)
  double minutes = 0;             ///< stop after this much wall-clock time (0: no time limit)
  std::size_t batch = 128;
  double lr = 1e-3;
  std::size_t warmup = 0;         ///< linear warm-up over the first N steps (0: none)
  LrDecay decay = LrDecay::constant;
  double lr_end = 0;              ///< cosine: the learning rate at the end of the budget
  double max_grad_norm = 0;       ///< clip the global gradient norm (0: off)
  double ema = 0;                 ///< EMA rate of the weights (0: off); the EMA weights are kept at the end
  std::uint64_t seed = 0;
  std::size_t log_every = 50;     ///< progress line and loss-log row every N steps
  std::size_t checkpoint_every = 0;
  std::filesystem::path checkpoint{};  ///< where periodic checkpoints go (empty: none)
  std::filesystem::path loss_log{};    ///< CSV step,loss,seconds (empty: none)
  std::ostream* progress = nullptr;  ///< progress lines (nullptr: silent)
};

struct TrainResult {
  std::size_t steps = 0;       ///< steps done in this run
  std::size_t total_steps = 0; ///< including resumed ones
  double seconds = 0;
  double images_per_second = 0;
  double final_loss = 0;       ///< mean loss over the last logging window
};

/// The learning rate of step `step` (0-based) when a share `progress` of the budget is spent:
///   lr_end + (lr - lr_end) (1 + cos(pi progress)) / 2      (cosine; lr when constant)
/// times (step + 1) / warmup during the warm-up.
inline double scheduled_lr(const TrainOptions& o, std::size_t step, double progress) {
  double lr = o.lr;
  if (o.decay == LrDecay::cosine) {
    lr = o.lr_end + (o.lr - o.lr_end) * 0.5 * (1.0 + std::cos(std::numbers::pi * std::clamp(progress, 0.0, 1.0)));
  }
  if (step < o.warmup) lr *= double(step + 1) / double(o.warmup);
  return lr;
}

/// What a trainer state file holds, read without building a network (see Trainer::save).
struct TrainStateInfo {
  std::uint64_t step = 0, seed = 0;
  std::vector<float> sigmas;
  std::string augmentation, network;
  nn::detail::NetSizes sizes;
};

inline TrainStateInfo read_train_state_info(const std::filesystem::path& path) {
  const auto body = io::load_container(path, "scoreood-train-state");
  io::ByteReader r(body, path.string());
  TrainStateInfo t;
  t.step = r.get<std::uint64_t>();
  t.seed = r.get<std::uint64_t>();
  t.sigmas = r.get_vector<float>();
  t.augmentation = r.get_string(64);
  std::tie(t.network, t.sizes) = nn::detail::read_net_header_any(r);
  return t;
}

template <concepts::FloatScoreNetwork Net, concepts::AugmentationGroup Aug>
class Trainer {
 public:
  using T = typename Net::value_type;
  using B = typename Net::backend_type;
  static constexpr std::string_view kind = "scoreood-train-state";

  Trainer(Net& net, Aug aug, std::vector<float> sigmas, TrainOptions opt = {})
      : net_(&net), aug_(std::move(aug)), sigmas_(std::move(sigmas)), opt_(std::move(opt)),
        adam_(net.parameters(), make_adam_options(opt_)) {
    schedule::check_sigmas(sigmas_, "Trainer");  // what load() demands of a file
    if (sigmas_.size() != net.config().num_levels)
      throw ValueError("Trainer: " + std::to_string(sigmas_.size()) + " noise levels, the network has " +
                       std::to_string(net.config().num_levels));
    if (opt_.batch == 0) throw ValueError("Trainer: batch must be positive");
    if (!(opt_.lr_end >= 0 && opt_.lr_end <= opt_.lr))
      throw ValueError("Trainer: lr_end must be in [0, lr], got " + std::to_string(opt_.lr_end));
  }

  std::size_t step() const { return step_; }
  /// Share of the budget spent, in [0, 1] (what the cosine decay follows).
  double progress() const {
    const double by_steps = opt_.steps ? double(step_) / double(opt_.steps) : 0.0;
    return std::min(1.0, std::max(progress_, by_steps));
  }
  /// The learning rate the next step takes.
  double learning_rate() const { return scheduled_lr(opt_, step_, progress()); }
  const TrainOptions& options() const { return opt_; }

  /// One optimisation step on a batch drawn from `data`; returns the loss.
  double train_step(const Images& data) {
    auto& ctx = net_->context();
    make_dsm_batch<B>(ctx, on_backend(data), sigmas_, aug_, opt_.batch, DsmStreams::for_step(opt_.seed, step_),
                      batch_);
    net_->parameters().zero_grad();
    if (opt_.warmup || opt_.decay != LrDecay::constant) adam_.set_lr(learning_rate());
    const auto& s = net_->forward(batch_.input, batch_.levels);
    const double loss = dsm_loss<T, B>(ctx, s, batch_.noise, batch_.sigma, grad_);
    if (!std::isfinite(loss)) diverged("the loss is " + std::to_string(loss));
    net_->backward(grad_);
    // Checked before the update, so the weights stay those of the last good step.
    if (const double g = nn::grad_norm(ctx, net_->parameters()); !std::isfinite(g))
      diverged("the gradient norm is " + std::to_string(g) + " at a loss of " + std::to_string(loss));
    adam_.step(ctx);
    if (ema_) ema_->update(ctx, net_->parameters());
    ++step_;
    return loss;
  }

  /// Trains until the step or time budget is spent.
  TrainResult run(const Images& data) {
    check_data(data);
    if (opt_.steps == 0 && opt_.minutes <= 0) throw ValueError("Trainer: give a step or a minutes budget");
    if (opt_.steps && opt_.steps <= step_)
      throw ValueError("Trainer: the run is already at step " + std::to_string(step_) + " and the budget is " +
                       std::to_string(opt_.steps) + " steps in all (resumed steps count): ask for more");
    if (opt_.ema > 0 && !ema_) ema_.emplace(net_->parameters(), opt_.ema);
    std::ofstream log;
    if (!opt_.loss_log.empty()) {
      const bool fresh = step_ == 0 || !std::filesystem::exists(opt_.loss_log);
      log.open(opt_.loss_log, fresh ? std::ios::trunc : std::ios::app);
      if (!log) throw Error(opt_.loss_log.string() + ": cannot open the loss log for writing");
      if (fresh) log << "step,loss,seconds\n";
    }
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const std::size_t start = step_;
    const std::size_t target = opt_.steps ? opt_.steps : std::size_t(-1);  // total steps, resumes count
    double window = 0, last_window = 0;
    std::size_t in_window = 0;
    auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };
    const double progress0 = progress_;  // the share a resumed state had spent
    auto by_time = [&] { return progress0 + (1.0 - progress0) * std::min(1.0, elapsed() / (opt_.minutes * 60.0)); };
    while (step_ < target && !(opt_.minutes > 0 && elapsed() >= opt_.minutes * 60.0)) {
      if (opt_.minutes > 0) progress_ = by_time();
      window += train_step(data);
      ++in_window;
      const bool last = step_ >= target;
      if ((opt_.log_every && step_ % opt_.log_every == 0) || last) {
        last_window = window / double(in_window);
        const double secs = elapsed();
        const double ips = double(step_ - start) * double(opt_.batch) / std::max(secs, 1e-9);
        if (log) log << step_ << ',' << std::setprecision(8) << last_window << ',' << std::setprecision(6) << secs << '\n' << std::flush;
        if (opt_.progress) *opt_.progress << progress_line(last_window, secs, ips, start) << std::endl;
        window = 0;
        in_window = 0;
      }
      if (opt_.checkpoint_every && !opt_.checkpoint.empty() && step_ % opt_.checkpoint_every == 0) checkpoint();
    }
    if (in_window) last_window = window / double(in_window);
    progress_ = progress();
    if (opt_.minutes > 0) progress_ = std::max(progress_, by_time());
    // The state keeps the raw weights (what Adam's moments belong to) so a
    // resume is exact; only then does the network take the averaged weights.
    if (!opt_.checkpoint.empty()) checkpoint();
    if (ema_) ema_->copy_to(net_->context(), net_->parameters());
    TrainResult r;
    r.steps = step_ - start;
    r.total_steps = step_;
    r.seconds = elapsed();
    r.images_per_second = double(r.steps) * double(opt_.batch) / std::max(r.seconds, 1e-9);
    r.final_loss = last_window;
    return r;
  }

  /// Network, optimiser state, EMA and step, in one checked file.
  void save(const std::filesystem::path& path) const {
    io::ByteWriter w;
    w.put<std::uint64_t>(step_);
    w.put<std::uint64_t>(opt_.seed);
    w.put_vector(sigmas_);
    w.put_string(Aug::name);
    net_->save(w);
    adam_.save(w);
    w.put<std::uint8_t>(ema_ ? 1 : 0);
    if (ema_) ema_->save(w);
    w.put<double>(progress_);  // since format version 3
    io::save_container(path, kind, w);
  }

  /// Restores what save() wrote; the next run() continues from the saved step. The state must
  /// hold this trainer's network architecture, seed, schedule and augmentation (read_train_state_info
  /// tells a program what a state holds before it builds the network). Every stored size and value
  /// is checked; on error the trainer and its network are unchanged (the file is first read into
  /// scratch copies).
  void load(const std::filesystem::path& path) {
    const auto body = io::load_container(path, kind);
    {
      Net net(net_->config());
      nn::Adam<T, B> adam(net.parameters(), make_adam_options(opt_));
      std::optional<nn::Ema<T, B>> ema;
      io::ByteReader r(body, path.string());
      double progress = 0;
      read_state(r, net, adam, ema, progress);
    }
    io::ByteReader r(body, path.string());
    step_ = read_state(r, *net_, adam_, ema_, progress_);  // cannot fail now: the same bytes just passed
  }

 private:
  /// Parses a state body into `net`, `adam`, `ema` and the budget share spent; returns the step.
  std::size_t read_state(io::ByteReader& r, Net& net, nn::Adam<T, B>& adam, std::optional<nn::Ema<T, B>>& ema,
                         double& progress) const {
    const auto step = r.get<std::uint64_t>();
    const auto seed = r.get<std::uint64_t>();
    if (seed != opt_.seed) r.fail("was trained with seed " + std::to_string(seed) + ", this run uses " + std::to_string(opt_.seed));
    const auto sig = r.get_vector<float>("noise levels");
    if (const auto problem = schedule::sigma_problem(sig); !problem.empty()) r.fail(problem);
    if (sig != sigmas_) r.fail("was trained with another noise schedule");
    const auto aug = r.get_string(64, "augmentation");
    if (aug != Aug::name) r.fail("was trained with augmentation '" + aug + "', this run uses '" + std::string(Aug::name) + "'");
    {
      io::ByteReader ahead = r;  // the network's header, before load() would rebuild the network to match it
      const nn::detail::NetSizes saved = nn::detail::read_net_header(ahead, Net::name), own = net.sizes();
      if (!(saved == own))
        r.fail("holds a " + std::string(Net::name) + " of " + saved.str() + ", this run's network is " + own.str() +
               " (resume with the state's architecture)");
    }
    net.load(r);  // checks the network's sizes against the file before building it
    if (net.config().num_levels != sigmas_.size())
      r.fail("holds a network conditioned on " + std::to_string(net.config().num_levels) + " noise levels, but " +
             std::to_string(sigmas_.size()) + " sigmas");
    adam = nn::Adam<T, B>(net.parameters(), make_adam_options(opt_));
    adam.load(r);
    if (r.get<std::uint8_t>()) {
      ema.emplace(net.parameters(), opt_.ema > 0 ? opt_.ema : 0.999);
      ema->load(r);
    }
    progress = 0;  // states before format version 3 end here
    if (!r.at_end()) {
      progress = r.get<double>();
      if (!(progress >= 0 && progress <= 1)) r.fail("budget share spent " + std::to_string(progress) + " is not in [0, 1]");
    }
    if (!r.at_end()) r.fail("unexpected data after the training state");
    return step;
  }

  static nn::AdamOptions make_adam_options(const TrainOptions& o) {
    nn::AdamOptions a;
    a.lr = o.lr;
    a.max_grad_norm = o.max_grad_norm;
    return a;
  }

  /// Saves the state to opt_.checkpoint and remembers the step (for the divergence message).
  void checkpoint() {
    save(opt_.checkpoint);
    checkpoint_step_ = step_;
  }

  [[noreturn]] void diverged(const std::string& what) const {
    std::string kept = "no checkpoint was written";
    if (checkpoint_step_) kept = "the last checkpoint, " + opt_.checkpoint.string() + " at step " +
                                 std::to_string(*checkpoint_step_) + ", is intact";
    throw Error("training diverged at step " + std::to_string(step_ + 1) + ": " + what + "; " + kept +
                "; lower the learning rate or enable gradient clipping");
  }

  /// The training set in the backend's memory: the images themselves on the CPU; elsewhere
  /// uploaded once per set (the set must not change between steps of a run).
  const backend::tensor_t<B, float>& on_backend(const Images& data) {
    if constexpr (std::is_same_v<B, backend::cpu>) {
      return data;
    } else {
      if (uploaded_ != data.data() || uploaded_shape_ != shape_of(data)) {
        backend::ops<B>::to_backend(net_->context(), data, data_on_backend_);
        uploaded_ = data.data();
        uploaded_shape_ = shape_of(data);
      }
      return data_on_backend_;
    }
  }

  void check_data(const Images& data) const {
    const auto& c = net_->config();
    if (data.shape()[0] == 0) throw ValueError("Trainer: the training set is empty");
    if (data.shape()[1] != c.channels || data.shape()[2] != c.image_size || data.shape()[3] != c.image_size)
      throw ShapeError("Trainer: training images " + to_string(shape_of(data)) + " do not fit the network (" +
                       std::to_string(c.channels) + " x " + std::to_string(c.image_size) + " x " +
                       std::to_string(c.image_size) + ")");
  }

  std::string progress_line(double loss, double secs, double ips, std::size_t start) const {
    std::ostringstream os;
    os << "step " << step_;
    if (opt_.steps) os << '/' << opt_.steps;
    os << "  loss " << std::fixed << std::setprecision(4) << loss << "  " << std::setprecision(0) << ips << " img/s";
    if (opt_.warmup || opt_.decay != LrDecay::constant)
      os << "  lr " << std::scientific << std::setprecision(2) << learning_rate() << std::fixed;
    double eta = -1;
    const double per_step = secs / double(std::max<std::size_t>(step_ - start, 1));
    if (opt_.steps) eta = per_step * double(opt_.steps - step_);
    if (opt_.minutes > 0) eta = eta < 0 ? opt_.minutes * 60 - secs : std::min(eta, opt_.minutes * 60 - secs);
    if (eta >= 0) os << "  ETA " << int(eta) / 60 << 'm' << std::setw(2) << std::setfill('0') << int(eta) % 60 << 's';
    return os.str();
  }

  Net* net_;
  Aug aug_;
  std::vector<float> sigmas_;
  TrainOptions opt_;
  nn::Adam<T, B> adam_;
  std::optional<nn::Ema<T, B>> ema_;
  std::size_t step_ = 0;
  double progress_ = 0;  ///< share of a minutes budget spent (see progress())
  std::optional<std::size_t> checkpoint_step_;  ///< step of the last checkpoint this trainer wrote
  DsmBatchOn<B> batch_;
  backend::tensor_t<B, T> grad_;
  backend::tensor_t<B, float> data_on_backend_;  // unused on the CPU
  const float* uploaded_ = nullptr;
  Shape4 uploaded_shape_{};
};

}  // namespace scoreood::score
