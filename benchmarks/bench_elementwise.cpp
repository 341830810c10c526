// The element-wise layers of SmallUNet at its shapes (batch 128, width 32):
// the fused CIN++ -> ELU forward (inference and training), its fused backward,
// the ELU alone, and the nearest upsampling with its skip add.
// Run one core: OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive bench_elementwise
#include <benchmark/benchmark.h>

#include "benchmark_main.hpp"
#include <scoreood/core/rng.hpp>
#include <scoreood/nn/layers/elu.hpp>
#include <scoreood/nn/layers/instance_norm.hpp>
#include <scoreood/nn/layers/upsample.hpp>

#include <vector>

using namespace scoreood;

namespace {

void fill_normal(Tensor4<float>& t, CounterRng r) {
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = r.normal(i);
}

struct NormCase {
  Shape4 shape;
  nn::ParameterStore<float> store;
  nn::CondInstanceNormPlusPlus<float> norm;
  nn::Elu<float> elu;
  std::vector<int> levels;
  Tensor4<float> x, y, dy, dx;
  explicit NormCase(Shape4 s) : shape(s), norm(store, "n", s[1], 10, CounterRng(1)), levels(s[0]) {
    for (std::size_t n = 0; n < s[0]; ++n) levels[n] = int(n % 10);
    x = xt::empty<float>(s);
    dy = xt::empty<float>(s);
    fill_normal(x, CounterRng(2));
    fill_normal(dy, CounterRng(3));
  }
};

Shape4 shape_arg(const benchmark::State& st) {
  return {128, std::size_t(st.range(0)), std::size_t(st.range(1)), std::size_t(st.range(1))};
}

void set_items(benchmark::State& st, const Shape4& s) {
  st.SetItemsProcessed(std::int64_t(st.iterations() * s[0]));
  st.SetBytesProcessed(std::int64_t(double(st.iterations()) * double(s[0] * s[1] * s[2] * s[3]) * 8.0));
}

void BM_CinEluInfer(benchmark::State& st) {
  NormCase c(shape_arg(st));
  for (auto _ : st) {
    c.norm.infer_elu(c.x, c.levels, c.y, c.elu);
    benchmark::ClobberMemory();
  }
  set_items(st, c.shape);
}

void BM_CinInfer(benchmark::State& st) {  // the norm alone, for the ELU's share
  NormCase c(shape_arg(st));
  for (auto _ : st) {
    c.norm.infer(c.x, c.levels, c.y);
    benchmark::ClobberMemory();
  }
  set_items(st, c.shape);
}

void BM_CinEluForward(benchmark::State& st) {
  NormCase c(shape_arg(st));
  for (auto _ : st) {
    c.norm.forward_elu(c.x, c.levels, c.y, c.elu, true);
    benchmark::ClobberMemory();
  }
  set_items(st, c.shape);
}

void BM_CinEluBackward(benchmark::State& st) {
  NormCase c(shape_arg(st));
  c.norm.forward_elu(c.x, c.levels, c.y, c.elu, true);
  for (auto _ : st) {
    c.norm.backward_elu(c.dy, c.dx, c.elu);
    benchmark::ClobberMemory();
  }
  set_items(st, c.shape);
}

void BM_Elu(benchmark::State& st) {
  const Shape4 s = shape_arg(st);
  Tensor4<float> x = xt::empty<float>(s), y;
  fill_normal(x, CounterRng(4));
  nn::Elu<float> elu;
  for (auto _ : st) {
    elu.infer(x, y);
    benchmark::ClobberMemory();
  }
  set_items(st, s);
}

void BM_UpNearestSkip(benchmark::State& st) {  // args: channels, input size (output = 2x)
  const Shape4 s = shape_arg(st), so{s[0], s[1], 2 * s[2], 2 * s[3]};
  Tensor4<float> x = xt::empty<float>(s), r = xt::empty<float>(so), y;
  fill_normal(x, CounterRng(5));
  fill_normal(r, CounterRng(6));
  nn::UpsampleNearest<float> up(so[2], so[3]);
  for (auto _ : st) {
    up.infer(x, y, &r);
    benchmark::ClobberMemory();
  }
  set_items(st, so);
}

void BM_UpNearestBackward(benchmark::State& st) {
  const Shape4 s = shape_arg(st), so{s[0], s[1], 2 * s[2], 2 * s[3]};
  Tensor4<float> x = xt::empty<float>(s), y, dy = xt::empty<float>(so), dx;
  fill_normal(x, CounterRng(7));
  fill_normal(dy, CounterRng(8));
  nn::UpsampleNearest<float> up(so[2], so[3]);
  up.forward(x, y);
  for (auto _ : st) {
    up.backward(dy, dx);
    benchmark::ClobberMemory();
  }
  set_items(st, so);
}

}  // namespace

// SmallUNet's norm shapes: C@28, 2C@14, 2C@7 (width C = 32).
#define NORM_SHAPES ->Args({32, 28})->Args({64, 14})->Args({64, 7})->Unit(benchmark::kMillisecond)
BENCHMARK(BM_CinEluInfer) NORM_SHAPES;
BENCHMARK(BM_CinInfer) NORM_SHAPES;
BENCHMARK(BM_CinEluForward) NORM_SHAPES;
BENCHMARK(BM_CinEluBackward) NORM_SHAPES;
BENCHMARK(BM_Elu)->Args({32, 28})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UpNearestSkip)->Args({32, 14})->Args({64, 7})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UpNearestBackward)->Args({32, 14})->Args({64, 7})->Unit(benchmark::kMillisecond);

SCOREOOD_BENCHMARK_MAIN();
