// Times ops<backend::cuda> at SmallUNet / NCSN sizes (CUDA events, median of
// repeats on the context's stream), then SmallUNet<cuda> and NcsnRefineNet<cuda>
// end to end: a training step (Rot4 DSM batch, forward, loss, backward, Adam)
// and inference, in images/s.
// Usage: bench_cuda_backend [--quick]
#include <scoreood/cuda.hpp>

#include <scoreood/augment.hpp>
#include <scoreood/nn.hpp>
#include <scoreood/schedule.hpp>
#include <scoreood/score.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace so = scoreood;
namespace gpu = scoreood::gpu;
namespace be = scoreood::backend;
using Ops = be::ops<be::cuda>;

namespace {

int g_reps = 30;

float median_ms(gpu::Context& ctx, const std::function<void()>& fn, int reps = g_reps) {
  for (int i = 0; i < 3; ++i) fn();  // warm-up: module load, cuDNN algorithm search, scratch growth
  ctx.synchronize();
  std::vector<float> t;
  gpu::Event a, b;
  for (int i = 0; i < reps; ++i) {
    a.record(ctx.stream());
    fn();
    b.record(ctx.stream());
    b.synchronize();
    t.push_back(b.elapsed_ms_since(a));
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

void row(const std::string& name, const std::string& shape, float ms, const std::string& extra) {
  std::printf("| %-34s | %-20s | %9.4f | %-16s |\n", name.c_str(), shape.c_str(), ms, extra.c_str());
}

std::string per_second(double items, float ms, const char* unit) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f %s/s", items / (ms * 1e-3), unit);
  return buf;
}

so::Images random_images(const so::Shape4& s, std::uint64_t seed) {
  so::Images t = xt::zeros<float>({s[0], s[1], s[2], s[3]});
  const so::CounterRng rng(seed, 5);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = 0.5f + 0.25f * rng.normal(i);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (gpu::device_count() == 0) {
    std::puts("skipped: no GPU");
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--quick") == 0) g_reps = 8;
  cudaDeviceProp prop{};
  SCOREOOD_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs (ops<backend::cuda>)\n", prop.name, prop.multiProcessorCount);
  std::printf("| %-34s | %-20s | %9s | %-16s |\n", "op", "shape", "ms", "");
  std::printf("|------------------------------------|----------------------|-----------|------------------|\n");

  gpu::Context ctx;
  const std::size_t N = 128, C = 64, H = 28, L = 10;
  const so::Shape4 act{N, C, H, H};
  gpu::DeviceTensor4<float> x, dy, y, dx, r;
  Ops::to_backend(ctx, random_images(act, 1), x);
  Ops::to_backend(ctx, random_images(act, 2), dy);
  Ops::to_backend(ctx, random_images(act, 3), r);
  const std::string as = "128x64x28x28";

  // Instance norm++ with per-sample rows, the fused ELU and the residual gradient.
  gpu::DeviceBuffer<float> embed(L * 3 * C), dembed(L * 3 * C);
  Ops::fill(ctx, embed.data(), embed.size(), 1.0f);
  Ops::fill(ctx, dembed.data(), dembed.size(), 0.0f);
  std::vector<int> levels(N);
  for (std::size_t n = 0; n < N; ++n) levels[n] = int(n % L);
  const be::NormParams<float> np{C, embed.data(), embed.data() + C, embed.data() + 2 * C, 3 * C, levels};
  const be::NormGrads<float> ng{dembed.data(), dembed.data() + C, dembed.data() + 2 * C};
  Ops::norm_cache<float> cache;
  const float alpha = 1.0f;
  row("norm_forward (+elu, cache)", as, median_ms(ctx, [&] { Ops::norm_forward(ctx, np, x, y, &cache, &alpha, true); }),
      "");
  row("norm_backward (+elu, +residual)", as,
      median_ms(ctx, [&] { Ops::norm_backward(ctx, np, cache, dy, dx, y.data(), alpha, &r, ng); }), "");
  row("elu_forward", as, median_ms(ctx, [&] { Ops::elu_forward(ctx, x, y, 1.0f); }), "");
  row("avg_pool 5x5 forward", as, median_ms(ctx, [&] { Ops::avg_pool_forward(ctx, {5, 1, 2, true}, x, y); }), "");

  // Convolutions through ops (cuDNN, FMA only).
  for (const std::size_t dil : {1u, 2u}) {
    const be::ConvParams cp{.in = C, .out = C, .kernel = 3, .stride = 1, .pad = dil, .dilation = dil, .bias = true};
    gpu::DeviceBuffer<float> w(C * C * 9), b(C), dw(C * C * 9), db(C);
    Ops::fill(ctx, w.data(), w.size(), 0.01f);
    Ops::fill(ctx, b.data(), b.size(), 0.0f);
    const double flops = 2.0 * double(N * C * H * H) * C * 9;
    const float f = median_ms(ctx, [&] { Ops::conv2d_forward(ctx, cp, w.data(), b.data(), x, y, &r); });
    row("conv3x3 forward (+bias, +res) d" + std::to_string(dil), as, f,
        std::to_string(int(flops / (f * 1e-3) / 1e9)) + " GFLOP/s");
    const float bw = median_ms(ctx, [&] { Ops::conv2d_backward(ctx, cp, w.data(), x, dy, &dx, dw.data(), db.data()); });
    row("conv3x3 backward (data+filter+bias) d" + std::to_string(dil), as, bw,
        std::to_string(int(2 * flops / (bw * 1e-3) / 1e9)) + " GFLOP/s");
  }

  // Training-side ops on 1-channel images.
  const so::Shape4 img{N, 1, 28, 28};
  gpu::DeviceTensor4<float> s, z, grad, data, in, zz;
  Ops::to_backend(ctx, random_images(img, 4), s);
  Ops::to_backend(ctx, random_images(img, 5), z);
  Ops::to_backend(ctx, random_images({6000, 1, 28, 28}, 6), data);
  std::vector<float> sig(N, 0.3f);
  row("dsm_loss (+grad, read back)", "128x1x28x28", median_ms(ctx, [&] { (void)Ops::dsm_loss(ctx, s, z, sig, grad); }),
      "");
  std::vector<std::uint32_t> image(N);
  std::vector<int> elements(N);
  for (std::size_t n = 0; n < N; ++n) {
    image[n] = std::uint32_t(n * 37 % 6000);
    elements[n] = int(n % 4);
  }
  row("dsm_inputs (Rot4)", "128x1x28x28", median_ms(ctx, [&] {
        Ops::dsm_inputs(ctx, data, std::span<const std::uint32_t>(image), std::span<const float>(sig),
                        std::span<const int>(elements), so::augment::Rot4{}, so::CounterRng(1), in, zz);
      }),
      "");
  row("noisy_copies (Dihedral8)", "128 -> 1024 images", median_ms(ctx, [&] {
        Ops::noisy_copies(ctx, s, 0, 0.3f, so::CounterRng(2), 8, so::augment::Dihedral8{}, in, zz);
      }),
      "");
  std::vector<double> norms(N * 8);
  gpu::DeviceTensor4<float> s8;
  Ops::to_backend(ctx, random_images({N * 8, 1, 28, 28}, 7), s8);
  row("residual_norms (8 copies, read back)", "1024x1x28x28",
      median_ms(ctx, [&] { Ops::residual_norms(ctx, s8, zz, 0.3f, 8, norms); }), "");
  const std::size_t P = 7'600'000;
  gpu::DeviceBuffer<float> p(P), g(P), m(P), v(P);
  for (auto* b : {&p, &g, &m, &v}) Ops::fill(ctx, b->data(), P, 0.01f);
  const be::AdamStep st{.bias1 = 0.1, .bias2 = 0.001};
  row("adam_step", "7.6M params", median_ms(ctx, [&] { Ops::adam_step(ctx, p.data(), g.data(), m.data(), v.data(), P, st); }),
      "");
  row("sum_squares (read back)", "7.6M params", median_ms(ctx, [&] { (void)Ops::sum_squares(ctx, g.data(), P); }), "");

  // Networks end to end (the training step reads the loss and the gradient norm back, as the Trainer does).
  const auto sigmas = so::schedule::Geometric{1.0f, 0.01f, 10}.sigmas();
  const so::Images train = random_images({4096, 1, 28, 28}, 8);
  auto bench_net = [&](auto& net, const char* name, std::size_t batch, int reps) {
    using Net = std::remove_reference_t<decltype(net)>;
    so::score::TrainOptions o;
    o.batch = batch;
    o.steps = 1u << 30;
    so::score::Trainer<Net, so::augment::Rot4> tr(net, {}, sigmas, o);
    const float ms = median_ms(net.context(), [&] { (void)tr.train_step(train); }, reps);
    row(std::string(name) + " train step (Rot4)", "batch " + std::to_string(batch), ms,
        per_second(double(batch), ms, "img"));
    typename Net::Workspace ws;
    gpu::DeviceTensor4<float> xin, out;
    Ops::to_backend(ws.ctx, random_images({batch, 1, 28, 28}, 9), xin);
    const std::vector<int> lv(batch, 3);
    const float mi = median_ms(ws.ctx, [&] { net.infer(ws, xin, lv, out); }, reps);
    row(std::string(name) + " infer", "batch " + std::to_string(batch), mi, per_second(double(batch), mi, "img"));
  };
  {
    so::nn::SmallUNet<be::cuda> net({.channels = 1, .image_size = 28, .width = 32, .num_levels = 10}, 1);
    bench_net(net, "SmallUNet w32", 128, g_reps);
  }
  {
    so::nn::NcsnRefineNet<be::cuda> net({.channels = 1, .image_size = 28, .ngf = 64, .num_levels = 10}, 1);
    bench_net(net, "NcsnRefineNet ngf64", 128, std::max(3, g_reps / 3));
  }
  ctx.synchronize();
  return 0;
}
