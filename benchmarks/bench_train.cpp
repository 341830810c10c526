// Whole training steps and feature extraction of the score networks (images/s).
#include <benchmark/benchmark.h>

#include "benchmark_main.hpp"
#include <scoreood/augment/identity.hpp>
#include <scoreood/augment/rot4.hpp>
#include <scoreood/nn/nets/ncsn_refinenet.hpp>
#include <scoreood/nn/nets/small_unet.hpp>
#include <scoreood/schedule/geometric.hpp>
#include <scoreood/score/normality.hpp>
#include <scoreood/score/trainer.hpp>

using namespace scoreood;

namespace {

Images random_images(std::size_t n, std::size_t size) {
  Images x = xt::empty<float>({n, std::size_t(1), size, size});
  const CounterRng rng(3, 0);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform(i);
  return x;
}

template <class Aug>
void train_step_small_unet(benchmark::State& state) {
  const std::size_t width = std::size_t(state.range(0)), batch = std::size_t(state.range(1));
  nn::SmallUNet<> net({.channels = 1, .image_size = 28, .width = width, .num_levels = 10});
  const Images data = random_images(512, 28);
  score::Trainer trainer(net, Aug{}, schedule::Geometric{}.sigmas(), {.batch = batch});
  trainer.train_step(data);  // warm-up: buffers, thread pool
  for (auto _ : state) benchmark::DoNotOptimize(trainer.train_step(data));
  state.SetItemsProcessed(std::int64_t(state.iterations() * batch));
  const double flops = 3.0 * 2.0 * double(net.macs_per_image()) * double(batch);  // forward + 2x backward
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void features_small_unet(benchmark::State& state) {
  const std::size_t width = std::size_t(state.range(0)), batch = std::size_t(state.range(1));
  nn::SmallUNet<> net({.channels = 1, .image_size = 28, .width = width, .num_levels = 10});
  const Images x = random_images(batch, 28);
  std::vector<int> levels(batch, 3);
  Images s;
  net.infer(x, levels, s);
  for (auto _ : state) {
    net.infer(x, levels, s);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetItemsProcessed(std::int64_t(state.iterations() * batch));
  const double flops = 2.0 * double(net.macs_per_image()) * double(batch);
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// NCSN's CondRefineNetDilated (nn/nets/ncsn_refinenet.hpp): ~1.9 GMAC per image at ngf 64, so a
// batch of 128 is seconds per step on a CPU; few iterations keep the benchmark bounded.
void train_step_ncsn(benchmark::State& state) {
  const std::size_t ngf = std::size_t(state.range(0)), batch = std::size_t(state.range(1));
  nn::NcsnRefineNet<> net({.channels = 1, .image_size = 28, .ngf = ngf, .num_levels = 10});
  const Images data = random_images(512, 28);
  score::Trainer trainer(net, augment::Identity{}, schedule::Geometric{}.sigmas(), {.batch = batch});
  trainer.train_step(data);  // warm-up: buffers, thread pool
  for (auto _ : state) benchmark::DoNotOptimize(trainer.train_step(data));
  state.SetItemsProcessed(std::int64_t(state.iterations() * batch));
  const double flops = 3.0 * 2.0 * double(net.macs_per_image()) * double(batch);  // forward + 2x backward
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void features_ncsn(benchmark::State& state) {
  const std::size_t ngf = std::size_t(state.range(0)), batch = std::size_t(state.range(1));
  nn::NcsnRefineNet<> net({.channels = 1, .image_size = 28, .ngf = ngf, .num_levels = 10});
  const Images x = random_images(batch, 28);
  std::vector<int> levels(batch, 3);
  Images s;
  net.infer(x, levels, s);
  for (auto _ : state) {
    net.infer(x, levels, s);
    benchmark::DoNotOptimize(s.data());
  }
  state.SetItemsProcessed(std::int64_t(state.iterations() * batch));
  const double flops = 2.0 * double(net.macs_per_image()) * double(batch);
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(train_step_small_unet<augment::Identity>)
    ->Name("train_step/small_unet")->ArgNames({"width", "batch"})->Args({32, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(train_step_small_unet<augment::Rot4>)
    ->Name("train_step/small_unet_rot4")->ArgNames({"width", "batch"})->Args({32, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(features_small_unet)
    ->Name("features/small_unet")->ArgNames({"width", "batch"})->Args({32, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(train_step_ncsn)
    ->Name("train_step/ncsn")->ArgNames({"ngf", "batch"})->Args({64, 128})->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(features_ncsn)
    ->Name("features/ncsn")->ArgNames({"ngf", "batch"})->Args({64, 128})->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
SCOREOOD_BENCHMARK_MAIN();
