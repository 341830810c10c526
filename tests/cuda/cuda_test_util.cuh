// Helpers shared by the CUDA tests: random host data from the library's RNG,
// device round trips, and the norm-wise relative error ||a - b|| / ||b||.
#pragma once
#include <scoreood/core/rng.hpp>
#include <scoreood/cuda.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace sot {

namespace gpu = scoreood::gpu;

/// Tolerance of every float32 kernel against its double reference.
inline constexpr double kTol = 1e-4;

/// n normals (times scale, plus shift) from a fixed stream: different per seed, same every run.
inline std::vector<float> randn(std::size_t n, std::uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  const scoreood::CounterRng rng(seed, 12345);
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = shift + scale * rng.normal(i);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

/// ||a - b|| / ||b|| in double; NaN anywhere in a gives NaN (which fails `< tol`).
inline double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::quiet_NaN();
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += b[i] * b[i];
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

/// A device buffer filled with NaN, so an unwritten output element fails the check.
inline gpu::DeviceBuffer<float> poisoned(std::size_t n) {
  gpu::DeviceBuffer<float> b(n);
  gpu::fill(b.data(), n, std::numeric_limits<float>::quiet_NaN());
  return b;
}

template <typename T>
std::vector<T> download(const gpu::DeviceBuffer<T>& b) {
  SCOREOOD_CUDA_CHECK(cudaDeviceSynchronize());
  return b.to_host();
}

}  // namespace sot

// ------------------------------------------------------------ backend helpers (ops<backend::cuda>)
#if SCOREOOD_HAVE_CUDNN
#include <scoreood/core/tensor.hpp>

#include <string>

namespace sot {

using Ops = scoreood::backend::ops<scoreood::backend::cuda>;
using DTensor = gpu::DeviceTensor4<float>;
using scoreood::Images;
using scoreood::Shape4;

/// Host images of shape s, normal(shift, scale) from a fixed stream of `seed`.
inline Images random_images(const Shape4& s, std::uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  Images t = xt::zeros<float>({s[0], s[1], s[2], s[3]});
  const scoreood::CounterRng rng(seed, 777);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = shift + scale * rng.normal(i);
  return t;
}

/// The values of a host tensor, or of a device tensor (downloaded on ctx's stream).
inline std::vector<float> values(const Images& t) { return {t.data(), t.data() + t.size()}; }
inline std::vector<float> values(gpu::Context& ctx, const DTensor& t) {
  Images h;
  Ops::to_host(ctx, t, h);
  return values(h);
}
inline std::vector<float> values(gpu::Context& ctx, const gpu::DeviceBuffer<float>& b) {
  std::vector<float> h(b.size());
  Ops::download(ctx, b, std::span<float>(h));
  return h;
}

/// A device copy of host images.
inline DTensor upload(gpu::Context& ctx, const Images& h) {
  DTensor t;
  Ops::to_backend(ctx, h, t);
  return t;
}
inline gpu::DeviceBuffer<float> upload(gpu::Context& ctx, std::span<const float> h) {
  gpu::DeviceBuffer<float> b;
  Ops::upload(ctx, h, b);
  return b;
}

/// A device tensor of shape s holding NaN (an element an op forgets to write fails the check).
inline DTensor poisoned(gpu::Context& ctx, const Shape4& s) {
  DTensor t(s);
  Ops::fill(ctx, t.data(), t.size(), std::numeric_limits<float>::quiet_NaN());
  return t;
}

/// ||got - want|| / ||want|| (want in float, as the CPU path computes it).
inline double rel(const std::vector<float>& got, const std::vector<float>& want) {
  return rel_err(got, to_double(want));
}

}  // namespace sot
#endif
