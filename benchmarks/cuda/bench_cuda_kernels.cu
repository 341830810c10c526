// Times the hand-written kernels and the cuDNN convolutions at NCSN sizes
// (batch 128, 28x28, ngf 64) with CUDA events: warm-up, then the median of
// repeated runs. Prints one table row per kernel: time and achieved bandwidth
// (bytes each kernel must at least read + write, over the median time).
// Usage: bench_cuda_kernels [--quick]
#include <scoreood/cuda.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace gpu = scoreood::gpu;

namespace {

int g_reps = 50;

float median_ms(const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();  // warm-up: module load, algorithm search, caches
  SCOREOOD_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> t;
  gpu::Event a, b;
  for (int i = 0; i < g_reps; ++i) {
    a.record();
    fn();
    b.record();
    b.synchronize();
    t.push_back(b.elapsed_ms_since(a));
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

void row(const char* name, const std::string& shape, double bytes, const std::function<void()>& fn) {
  const float ms = median_ms(fn);
  std::printf("| %-28s | %-26s | %9.4f | %8.1f |\n", name, shape.c_str(), ms, bytes / (ms * 1e-3) / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  if (gpu::device_count() == 0) {
    std::puts("skipped: no GPU");
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--quick") == 0) g_reps = 10;
  cudaDeviceProp prop{};
  SCOREOOD_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  std::printf("| %-28s | %-26s | %9s | %8s |\n", "kernel", "shape", "ms", "GB/s");
  std::printf("|------------------------------|----------------------------|-----------|----------|\n");

  const int N = 128, C = 64, H = 28, W = 28, L = 10;
  const std::size_t S = std::size_t(H) * W, n = std::size_t(N) * C * S;
  const double fb = sizeof(float);
  gpu::DeviceBuffer<float> x(n), y(n), g(n), dx(n);
  const scoreood::CounterRng rng(1);
  gpu::fill_normal(x.data(), n, rng, 0);
  gpu::fill_normal(g.data(), n, rng, n);
  const std::string act = "128x64x28x28";

  row("axpy", act, 3 * n * fb, [&] { gpu::axpy(0.5f, x.data(), y.data(), n); });
  row("elu_forward", act, 2 * n * fb, [&] { gpu::elu_forward(x.data(), y.data(), n); });
  row("elu_backward", act, 3 * n * fb, [&] { gpu::elu_backward(x.data(), g.data(), dx.data(), n); });

  gpu::DeviceBuffer<float> embed(std::size_t(L) * 3 * C), dembed(std::size_t(L) * 3 * C), mean(N * C), rstd(N * C),
      s1(N * C), s2(N * C);
  gpu::fill(embed.data(), embed.size(), 1.0f);
  gpu::DeviceBuffer<int> labels(N);
  gpu::fill_uniform_int(labels.data(), N, L, rng);
  const gpu::CinShape cs{N, C, int(S), L};
  row("cin_forward", act, 2 * n * fb, [&] {
    gpu::cin_forward(x.data(), labels.data(), embed.data(), y.data(), mean.data(), rstd.data(), cs);
  });
  row("cin_backward", act, 3 * n * fb, [&] {
    gpu::cin_backward(x.data(), g.data(), labels.data(), embed.data(), mean.data(), rstd.data(), dx.data(),
                      dembed.data(), s1.data(), s2.data(), cs);
  });
  const gpu::PoolShape ps{N * C, H, W, 5, 1, 2};
  row("avg_pool5 forward", act, 2 * n * fb, [&] { gpu::avg_pool_forward(x.data(), y.data(), ps); });
  row("avg_pool5 backward", act, 2 * n * fb, [&] { gpu::avg_pool_backward(g.data(), dx.data(), ps); });
  const gpu::ResizeShape rs{N * C, 14, 14, 28, 28};
  row("bilinear 14->28 forward", "128x64", (n / 4 + n) * fb, [&] { gpu::bilinear_forward(x.data(), y.data(), rs, true); });
  row("bilinear 14->28 backward", "128x64", (n + n / 4) * fb,
      [&] { gpu::bilinear_backward(g.data(), dx.data(), rs, true); });

  const std::size_t D = 784;  // one channel images for the loss-side kernels
  const int B = 128;
  gpu::DeviceBuffer<float> sig(B), per(B), lm(1);
  gpu::fill(sig.data(), B, 0.5f);
  row("add_noise (Philox)", "128x1x28x28", 2 * B * D * fb,
      [&] { gpu::add_noise(x.data(), y.data(), nullptr, sig.data(), B, D, rng); });
  row("dsm_loss + grad", "128x1x28x28", 4 * B * D * fb, [&] {
    gpu::dsm_loss(x.data(), y.data(), g.data(), sig.data(), B, D, per.data(), lm.data(), dx.data());
  });
  const gpu::ImageShape is{N, C, H, W};
  row("dihedral (per-sample g)", act, 2 * n * fb, [&] { gpu::dihedral(x.data(), y.data(), is, labels.data()); });

  const std::size_t P = 7'600'000;  // CondRefineNetDilated, ngf 64
  gpu::DeviceBuffer<float> p(P), pg(P), m(P), v(P), sh(P);
  gpu::fill(p.data(), P, 0.1f);
  gpu::fill(pg.data(), P, 0.01f);
  m.zero();
  v.zero();
  long step = 0;
  row("adam_step", "7.6M params", 7 * P * fb, [&] { gpu::adam_step(p.data(), pg.data(), m.data(), v.data(), P, {}, ++step); });
  row("ema_update", "7.6M params", 3 * P * fb, [&] { gpu::ema_update(sh.data(), p.data(), P, 0.999f); });

#if SCOREOOD_HAVE_CUDNN
  for (const bool tf32 : {false, true}) {
    gpu::Convolution conv(gpu::ConvOptions{tf32});
    for (const int dil : {1, 2}) {
      const gpu::ConvShape s{N, C, H, W, C, 3, 3, dil, dil, 1, 1, dil, dil};
      gpu::DeviceBuffer<float> w(s.w_size()), dw(s.w_size());
      gpu::fill_normal(w.data(), w.size(), rng, 7);
      const double flops = 2.0 * double(s.y_size()) * C * 9;
      const std::string tag = std::string(tf32 ? "tf32" : "fp32") + " dil " + std::to_string(dil);
      const float f = median_ms([&] { conv.forward(s, x.data(), w.data(), nullptr, y.data()); });
      const float bd = median_ms([&] { conv.backward_data(s, w.data(), g.data(), dx.data()); });
      const float bf = median_ms([&] { conv.backward_filter(s, x.data(), g.data(), dw.data()); });
      std::printf("| conv3x3 %-20s | %-26s | %9.4f | %5.1f TF |\n", ("fwd " + tag).c_str(), act.c_str(), f, flops / (f * 1e-3) / 1e12);
      std::printf("| conv3x3 %-20s | %-26s | %9.4f | %5.1f TF |\n", ("bwd-data " + tag).c_str(), act.c_str(), bd, flops / (bd * 1e-3) / 1e12);
      std::printf("| conv3x3 %-20s | %-26s | %9.4f | %5.1f TF |\n", ("bwd-filter " + tag).c_str(), act.c_str(), bf, flops / (bf * 1e-3) / 1e12);
    }
  }
#endif
  SCOREOOD_CUDA_CHECK(cudaDeviceSynchronize());
  return 0;
}
