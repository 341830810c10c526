// Layer throughput at the shapes the networks use (batch 128, 28x28 inputs).
//
//   bench_layers --benchmark_filter=Conv     # convolutions only
//
// Counters: GFLOPS (2 flops per multiply-accumulate; backward = data + filter
// = twice the forward flops), items_per_second = images. BM_EigenGemm gives
// the machine's GEMM rate the convolutions are measured against;
// BM_GemmConvShape the rate of the per-image GEMM of a 32->32 conv run the way
// Conv2d runs it (one single-threaded product per image, batch split across threads).
#include <benchmark/benchmark.h>

#include "benchmark_main.hpp"
#include <scoreood/cpu/gemm.hpp>
#include <scoreood/cpu/threading.hpp>
#include <scoreood/nn/layers.hpp>

#include <string>
#include <vector>

using namespace scoreood;

namespace {

void fill_normal(Tensor4<float>& t, CounterRng r) {
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = r.normal(i);
}

struct ConvShape {
  const char* name;
  std::size_t n, cin, cout, h, w, k, stride, dilation;
  bool direct = false;  ///< force the direct path where Winograd would run (the "/direct" twins)
};

// SmallUNet (width 32) and NcsnRefineNet (ngf 64) convolutions at batch 128.
const std::vector<ConvShape> kShapes = {
    {"unet_1to32_k3_28", 128, 1, 32, 28, 28, 3, 1, 1},
    {"unet_32to32_k3_28", 128, 32, 32, 28, 28, 3, 1, 1},
    {"unet_32to64_k3s2_28", 128, 32, 64, 28, 28, 3, 2, 1},
    {"unet_64to64_k3_14", 128, 64, 64, 14, 14, 3, 1, 1},
    {"unet_64to64_k3_7", 128, 64, 64, 7, 7, 3, 1, 1},
    {"unet_96to32_k1_28", 128, 96, 32, 28, 28, 1, 1, 1},
    {"unet_32to64_k1s2_28", 128, 32, 64, 28, 28, 1, 2, 1},
    {"unet_64to64_k3s2_14", 128, 64, 64, 14, 14, 3, 2, 1},
    {"unet_64to64_k1s2_14", 128, 64, 64, 14, 14, 1, 2, 1},
    {"unet_64to32_k1_14", 128, 64, 32, 14, 14, 1, 1, 1},
    {"ncsn_64to64_k3_28", 128, 64, 64, 28, 28, 3, 1, 1},
    {"ncsn_128to128_k3d2_14", 128, 128, 128, 14, 14, 3, 1, 2},
    {"ncsn_128to128_k3d4_14", 128, 128, 128, 14, 14, 3, 1, 4},
};

struct ConvFixture {
  nn::ParameterStore<float> store;
  nn::Conv2d<float> conv;
  Tensor4<float> x, y, dy, dx;
  explicit ConvFixture(const ConvShape& s)
      : conv(store, "c", {s.cin, s.cout, s.k, s.stride, -1, s.dilation, true}, CounterRng(1)) {
    x = xt::empty<float>({s.n, s.cin, s.h, s.w});
    fill_normal(x, CounterRng(2));
    if (s.direct) conv.set_algorithm(nn::Conv2d<float>::Algorithm::direct);
    conv.forward(x, y);
    dy = xt::empty<float>(shape_of(y));
    fill_normal(dy, CounterRng(3));
  }
};

void BM_ConvForward(benchmark::State& state, ConvShape s) {
  ConvFixture f(s);
  for (auto _ : state) {
    f.conv.infer(f.x, f.y);
    benchmark::DoNotOptimize(f.y.data());
  }
  const double flops = 2.0 * double(f.conv.macs(shape_of(f.x)));
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(std::int64_t(state.iterations() * s.n));
}

void BM_ConvBackward(benchmark::State& state, ConvShape s) {
  ConvFixture f(s);
  for (auto _ : state) {
    f.conv.backward(f.dy, f.dx);  // backward-data + backward-filter
    benchmark::DoNotOptimize(f.dx.data());
  }
  const double flops = 4.0 * double(f.conv.macs(shape_of(f.x)));
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(std::int64_t(state.iterations() * s.n));
}

void BM_ConvTrainStep(benchmark::State& state, ConvShape s) {
  ConvFixture f(s);
  for (auto _ : state) {
    f.conv.forward(f.x, f.y);
    f.conv.backward(f.dy, f.dx);
    benchmark::DoNotOptimize(f.dx.data());
  }
  const double flops = 6.0 * double(f.conv.macs(shape_of(f.x)));
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(std::int64_t(state.iterations() * s.n));
}

/// The machine's GEMM rate: one large float product, Eigen threaded over all cores.
void BM_EigenGemm(benchmark::State& state) {
  const std::size_t m = std::size_t(state.range(0)), k = std::size_t(state.range(1)), n = std::size_t(state.range(2));
  std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
  for (auto _ : state) {
    cpu::gemm<float>(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(2.0 * double(m * k * n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// The per-image GEMM of the 32->32 3x3 conv at 28x28 (32 x 288 x 784), one
/// independent product per thread: the ceiling for that convolution.
void BM_GemmConvShape(benchmark::State& state) {
  const std::size_t m = 32, k = 288, n = 784, per_thread = 64;
  const int nt = cpu::max_threads();
  for (auto _ : state) {
    cpu::parallel_region(nt, [&](int, int) {
      thread_local std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
      for (std::size_t r = 0; r < per_thread; ++r)
        cpu::gemm<float>(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);
    });
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * double(m * k * n * per_thread * std::size_t(nt)) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

template <class Layer>
void run_layer(benchmark::State& state, Layer& layer, Shape4 in, bool backward) {
  Tensor4<float> x = xt::empty<float>(in), y, dx;
  fill_normal(x, CounterRng(4));
  layer.forward(x, y);
  Tensor4<float> dy = xt::empty<float>(shape_of(y));
  fill_normal(dy, CounterRng(5));
  for (auto _ : state) {
    if (backward) layer.backward(dy, dx);
    else layer.forward(x, y);
    benchmark::ClobberMemory();
  }
  const double bytes = double(x.size() + y.size()) * sizeof(float) * (backward ? 1.5 : 1.0);
  state.SetBytesProcessed(std::int64_t(double(state.iterations()) * bytes));
  state.SetItemsProcessed(std::int64_t(state.iterations() * in[0]));
}

void BM_EluForward(benchmark::State& s) { nn::Elu<float> l; run_layer(s, l, {128, 64, 28, 28}, false); }
void BM_EluBackward(benchmark::State& s) { nn::Elu<float> l; run_layer(s, l, {128, 64, 28, 28}, true); }
void BM_AvgPool5Forward(benchmark::State& s) { nn::AvgPool2d<float> l(5, 1, 2); run_layer(s, l, {128, 128, 14, 14}, false); }
void BM_AvgPool5Backward(benchmark::State& s) { nn::AvgPool2d<float> l(5, 1, 2); run_layer(s, l, {128, 128, 14, 14}, true); }
void BM_MeanPoolForward(benchmark::State& s) { nn::MeanPool2x2<float> l; run_layer(s, l, {128, 64, 28, 28}, false); }
void BM_MeanPoolBackward(benchmark::State& s) { nn::MeanPool2x2<float> l; run_layer(s, l, {128, 64, 28, 28}, true); }
void BM_BilinearForward(benchmark::State& s) { nn::UpsampleBilinear<float> l(28, 28, true); run_layer(s, l, {128, 64, 14, 14}, false); }
void BM_BilinearBackward(benchmark::State& s) { nn::UpsampleBilinear<float> l(28, 28, true); run_layer(s, l, {128, 64, 14, 14}, true); }

const bool registered = [] {
  std::vector<ConvShape> shapes;
  for (const auto& s : kShapes) {
    shapes.push_back(s);
    // Where Winograd F(4x4, 3x3) runs (all passes, or the forward of a dilated layer on the
    // AVX2 tier), the direct path too, side by side.
    nn::ParameterStore<float> store;
    const nn::Conv2d<float> probe(store, "p", {s.cin, s.cout, s.k, s.stride, -1, s.dilation, true}, CounterRng(1));
    if (probe.forward_uses_winograd({s.n, s.cin, s.h, s.w})) {
      shapes.push_back(s);
      shapes.back().direct = true;
    }
  }
  for (const auto& s : shapes) {
    const std::string suffix = std::string(s.name) + (s.direct ? "/direct" : "");
    benchmark::RegisterBenchmark(("BM_ConvForward/" + suffix).c_str(), BM_ConvForward, s)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("BM_ConvBackward/" + suffix).c_str(), BM_ConvBackward, s)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("BM_ConvTrainStep/" + suffix).c_str(), BM_ConvTrainStep, s)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  return true;
}();

}  // namespace

BENCHMARK(BM_EigenGemm)->Args({256, 4096, 4096})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GemmConvShape)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EluForward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_EluBackward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AvgPool5Forward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AvgPool5Backward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MeanPoolForward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MeanPoolBackward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_BilinearForward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_BilinearBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

SCOREOOD_BENCHMARK_MAIN();
