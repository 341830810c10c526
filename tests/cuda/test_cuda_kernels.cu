// Every hand-written kernel against a straightforward double-precision CPU
// reference written here (loops that follow the documented formulas), plus
// properties (adjoints, inverses) and the bit-identical Philox noise.
// Tests tagged [host] check the references themselves and also run without a GPU.
#include "cuda_test_util.cuh"

#include <algorithm>
#include <numeric>

using namespace sot;
using scoreood::CounterRng;

// ------------------------------------------------------------ references (double)
namespace ref {

struct Cin {
  int N, C, S, L;
};

/// NCSN ConditionalInstanceNorm2dPlus forward.
inline std::vector<double> cin_forward(const std::vector<double>& x, const std::vector<int>& y,
                                       const std::vector<double>& e, Cin s) {
  std::vector<double> out(x.size());
  for (int n = 0; n < s.N; ++n) {
    std::vector<double> mu(s.C), var(s.C);
    for (int c = 0; c < s.C; ++c) {
      const double* p = &x[(std::size_t(n) * s.C + c) * s.S];
      double m = 0;
      for (int i = 0; i < s.S; ++i) m += p[i];
      m /= s.S;
      double v = 0;
      for (int i = 0; i < s.S; ++i) v += (p[i] - m) * (p[i] - m);
      mu[c] = m;
      var[c] = v / s.S;
    }
    const double mm = std::accumulate(mu.begin(), mu.end(), 0.0) / s.C;
    double vv = 0;
    for (double m : mu) vv += (m - mm) * (m - mm);
    vv /= (s.C - 1);  // torch.var: unbiased
    const double* row = &e[std::size_t(y[n]) * 3 * s.C];
    for (int c = 0; c < s.C; ++c) {
      const double z = (mu[c] - mm) / std::sqrt(vv + 1e-5);
      for (int i = 0; i < s.S; ++i) {
        const std::size_t k = (std::size_t(n) * s.C + c) * s.S + i;
        const double xhat = (x[k] - mu[c]) / std::sqrt(var[c] + 1e-5);
        out[k] = row[c] * (xhat + row[s.C + c] * z) + row[2 * s.C + c];
      }
    }
  }
  return out;
}

/// Analytic CIN++ backward (checked against finite differences in a [host] test).
inline void cin_backward(const std::vector<double>& x, const std::vector<double>& g, const std::vector<int>& y,
                         const std::vector<double>& e, Cin s, std::vector<double>& dx, std::vector<double>& de) {
  dx.assign(x.size(), 0.0);
  de.assign(e.size(), 0.0);
  for (int n = 0; n < s.N; ++n) {
    std::vector<double> mu(s.C), r(s.C), sg(s.C), sgx(s.C);
    for (int c = 0; c < s.C; ++c) {
      const std::size_t o = (std::size_t(n) * s.C + c) * s.S;
      double m = 0, v = 0;
      for (int i = 0; i < s.S; ++i) m += x[o + i];
      m /= s.S;
      for (int i = 0; i < s.S; ++i) v += (x[o + i] - m) * (x[o + i] - m);
      mu[c] = m;
      r[c] = 1 / std::sqrt(v / s.S + 1e-5);
      for (int i = 0; i < s.S; ++i) {
        sg[c] += g[o + i];
        sgx[c] += g[o + i] * (x[o + i] - m) * r[c];
      }
    }
    const double mm = std::accumulate(mu.begin(), mu.end(), 0.0) / s.C;
    double vv = 0;
    for (double m : mu) vv += (m - mm) * (m - mm);
    vv /= (s.C - 1);
    const double is = 1 / std::sqrt(vv + 1e-5);
    const std::size_t l = std::size_t(y[n]);
    const double* row = &e[l * 3 * s.C];
    double* drow = &de[l * 3 * s.C];
    std::vector<double> G(s.C);
    double sumG = 0, sumGd = 0;
    for (int c = 0; c < s.C; ++c) {
      const double z = (mu[c] - mm) * is;
      drow[c] += sgx[c] + row[s.C + c] * z * sg[c];
      drow[s.C + c] += row[c] * z * sg[c];
      drow[2 * s.C + c] += sg[c];
      G[c] = row[c] * row[s.C + c] * sg[c];
      sumG += G[c];
      sumGd += G[c] * (mu[c] - mm);
    }
    for (int c = 0; c < s.C; ++c) {
      const double d = mu[c] - mm;
      const double dmu = is * (G[c] - sumG / s.C) - is * is * is * d * sumGd / (s.C - 1);
      const std::size_t o = (std::size_t(n) * s.C + c) * s.S;
      for (int i = 0; i < s.S; ++i) {
        const double xhat = (x[o + i] - mu[c]) * r[c];
        dx[o + i] = r[c] * row[c] * (g[o + i] - sg[c] / s.S - xhat * sgx[c] / s.S) + dmu / s.S;
      }
    }
  }
}

/// Average pooling, count_include_pad.
inline std::vector<double> avg_pool(const std::vector<double>& x, const gpu::PoolShape& s) {
  const int Ho = s.out_height(), Wo = s.out_width();
  std::vector<double> y(std::size_t(s.planes) * Ho * Wo);
  for (int p = 0; p < s.planes; ++p)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox) {
        double acc = 0;
        for (int ky = 0; ky < s.kernel; ++ky)
          for (int kx = 0; kx < s.kernel; ++kx) {
            const int iy = oy * s.stride - s.pad + ky, ix = ox * s.stride - s.pad + kx;
            if (iy >= 0 && iy < s.height && ix >= 0 && ix < s.width) acc += x[(std::size_t(p) * s.height + iy) * s.width + ix];
          }
        y[(std::size_t(p) * Ho + oy) * Wo + ox] = acc / (s.kernel * s.kernel);
      }
  return y;
}

/// Adjoint of avg_pool by scattering (a different loop order than the kernel's gather).
inline std::vector<double> avg_pool_adjoint(const std::vector<double>& dy, const gpu::PoolShape& s) {
  const int Ho = s.out_height(), Wo = s.out_width();
  std::vector<double> dx(std::size_t(s.planes) * s.height * s.width, 0.0);
  for (int p = 0; p < s.planes; ++p)
    for (int oy = 0; oy < Ho; ++oy)
      for (int ox = 0; ox < Wo; ++ox)
        for (int ky = 0; ky < s.kernel; ++ky)
          for (int kx = 0; kx < s.kernel; ++kx) {
            const int iy = oy * s.stride - s.pad + ky, ix = ox * s.stride - s.pad + kx;
            if (iy >= 0 && iy < s.height && ix >= 0 && ix < s.width)
              dx[(std::size_t(p) * s.height + iy) * s.width + ix] +=
                  dy[(std::size_t(p) * Ho + oy) * Wo + ox] / (s.kernel * s.kernel);
          }
  return dx;
}

/// One output sample of a resize as a list of (input index, weight) taps.
struct Tap {
  std::size_t in;
  double w;
};
inline std::vector<std::vector<Tap>> resize_taps(const gpu::ResizeShape& s, bool bilinear, bool align) {
  std::vector<std::vector<Tap>> taps(std::size_t(s.planes) * s.out_height * s.out_width);
  auto src = [&](int dst, int in, int out) -> double {
    if (align) return out > 1 ? double(dst) * (in - 1) / (out - 1) : 0.0;
    return std::max(0.0, (dst + 0.5) * in / out - 0.5);
  };
  for (int p = 0; p < s.planes; ++p)
    for (int oy = 0; oy < s.out_height; ++oy)
      for (int ox = 0; ox < s.out_width; ++ox) {
        auto& t = taps[(std::size_t(p) * s.out_height + oy) * s.out_width + ox];
        const std::size_t base = std::size_t(p) * s.height * s.width;
        if (!bilinear) {
          // PyTorch: the scale is rounded to float before the multiply.
          const int iy = std::min(int(std::floor(float(oy) * (float(s.height) / float(s.out_height)))), s.height - 1);
          const int ix = std::min(int(std::floor(float(ox) * (float(s.width) / float(s.out_width)))), s.width - 1);
          t.push_back({base + std::size_t(iy) * s.width + ix, 1.0});
          continue;
        }
        const double sy = src(oy, s.height, s.out_height), sx = src(ox, s.width, s.out_width);
        const int y0 = std::min(int(sy), s.height - 1), x0 = std::min(int(sx), s.width - 1);
        const int y1 = std::min(y0 + 1, s.height - 1), x1 = std::min(x0 + 1, s.width - 1);
        const double wy = sy - y0, wx = sx - x0;
        t.push_back({base + std::size_t(y0) * s.width + x0, (1 - wy) * (1 - wx)});
        t.push_back({base + std::size_t(y0) * s.width + x1, (1 - wy) * wx});
        t.push_back({base + std::size_t(y1) * s.width + x0, wy * (1 - wx)});
        t.push_back({base + std::size_t(y1) * s.width + x1, wy * wx});
      }
  return taps;
}

/// Source pixel (si, sj) of output pixel (i, j) under dihedral element g (square or even g):
/// rotation by g % 4 quarter turns of the image flipped horizontally when g >= 4
/// (augment::Dihedral8: flip first, then rotate).
inline void dihedral_src(int g, int H, int W, int i, int j, int& si, int& sj) {
  switch (g & 3) {
    case 0: si = i; sj = j; break;
    case 1: si = j; sj = W - 1 - i; break;
    case 2: si = H - 1 - i; sj = W - 1 - j; break;
    default: si = H - 1 - j; sj = i; break;
  }
  if (g >= 4) sj = W - 1 - sj;  // the flip acts on the image before it is turned
}

}  // namespace ref

// ------------------------------------------------------------ host-side checks of the references

TEST_CASE("reference CIN++ backward matches central finite differences", "[host][cin]") {
  const ref::Cin s{2, 3, 6, 2};
  const auto xf = randn(std::size_t(s.N) * s.C * s.S, 1);
  const auto gf = randn(xf.size(), 2);
  auto ef = randn(std::size_t(s.L) * 3 * s.C, 3, 0.3f, 1.0f);
  std::vector<double> x = to_double(xf), g = to_double(gf), e = to_double(ef);
  const std::vector<int> y = {1, 0};
  std::vector<double> dx, de;
  ref::cin_backward(x, g, y, e, s, dx, de);
  auto loss = [&](const std::vector<double>& xx, const std::vector<double>& ee) {
    const auto out = ref::cin_forward(xx, y, ee, s);
    double l = 0;
    for (std::size_t i = 0; i < out.size(); ++i) l += out[i] * g[i];
    return l;
  };
  const double h = 1e-6;
  for (std::size_t i = 0; i < x.size(); ++i) {
    auto xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    CHECK((loss(xp, e) - loss(xm, e)) / (2 * h) == Approx(dx[i]).margin(1e-6).epsilon(1e-5));
  }
  for (std::size_t i = 0; i < e.size(); ++i) {
    auto ep = e, em = e;
    ep[i] += h;
    em[i] -= h;
    CHECK((loss(x, ep) - loss(x, em)) / (2 * h) == Approx(de[i]).margin(1e-6).epsilon(1e-5));
  }
}

TEST_CASE("reference rotations follow torch.rot90 and compose to the identity", "[host][group]") {
  // torch.rot90([[1, 2], [3, 4]], 1) == [[2, 4], [1, 3]]
  const int in[2][2] = {{1, 2}, {3, 4}};
  const int expect[2][2] = {{2, 4}, {1, 3}};
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) {
      int si, sj;
      ref::dihedral_src(1, 2, 2, i, j, si, sj);
      CHECK(in[si][sj] == expect[i][j]);
    }
  for (int g = 0; g < 8; ++g) CHECK(gpu::dihedral_inverse(gpu::dihedral_inverse(g)) == g);
}

// ------------------------------------------------------------ device tests

TEST_CASE("device memory round trip, errors name the call", "[cuda][memory]") {
  REQUIRE(gpu::device_count() >= 1);
  const auto h = randn(1000, 7);
  gpu::DeviceBuffer<float> d(h);
  CHECK(d.size() == 1000);
  CHECK(download(d) == h);
  std::vector<float> wrong(10);
  CHECK_THROWS_AS(d.copy_to_host(wrong), scoreood::ShapeError);
  gpu::DeviceBuffer<float> moved = std::move(d);
  CHECK(d.empty());
  CHECK(moved.size() == 1000);
  try {
    SCOREOOD_CUDA_CHECK(cudaSetDevice(9999));
    FAIL("cudaSetDevice(9999) should fail");
  } catch (const gpu::CudaError& err) {
    const std::string what = err.what();
    CHECK(what.find("cudaSetDevice(9999)") != std::string::npos);
    CHECK(what.find("test_cuda_kernels.cu") != std::string::npos);
    CHECK(what.find("cudaErrorInvalidDevice") != std::string::npos);
  }
  (void)cudaGetLastError();
  gpu::Stream stream;
  gpu::DeviceBuffer<float> z(777);
  z.zero(stream);
  stream.synchronize();
  for (float v : z.to_host()) REQUIRE(v == 0.0f);
}

TEST_CASE("elementwise kernels", "[cuda][elementwise]") {
  for (std::size_t n : {1u, 255u, 256u, 1000u, 1u << 20}) {
    const auto a = randn(n, 1), b = randn(n, 2);
    gpu::DeviceBuffer<float> da(a), db(b);
    auto out = poisoned(n);
    gpu::add(da.data(), db.data(), out.data(), n);
    std::vector<double> r(n);
    for (std::size_t i = 0; i < n; ++i) r[i] = double(a[i]) + b[i];
    CHECK(rel_err(download(out), r) < kTol);
    gpu::axpy(0.5f, da.data(), db.data(), n);  // b += 0.5 a
    for (std::size_t i = 0; i < n; ++i) r[i] = b[i] + 0.5 * a[i];
    CHECK(rel_err(download(db), r) < kTol);
    gpu::scale(db.data(), n, -3.0f);
    for (auto& v : r) v *= -3.0;
    CHECK(rel_err(download(db), r) < kTol);
    gpu::fill(db.data(), n, 2.5f);
    for (float v : download(db)) REQUIRE(v == 2.5f);
  }
  SECTION("per-channel bias and its gradient") {
    const int N = 3, C = 5;
    const std::size_t P = 49;
    const auto y = randn(N * C * P, 3), bias = randn(C, 4);
    gpu::DeviceBuffer<float> dy(y), db(bias);
    gpu::add_channel_bias(dy.data(), db.data(), N, C, P);
    std::vector<double> r(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) r[i] = double(y[i]) + bias[(i / P) % C];
    CHECK(rel_err(download(dy), r) < kTol);
    gpu::DeviceBuffer<float> g(y);
    auto sum = poisoned(C);
    gpu::channel_sum(g.data(), sum.data(), N, C, P, false);
    std::vector<double> rs(C, 0.0);
    for (std::size_t i = 0; i < y.size(); ++i) rs[(i / P) % C] += y[i];
    CHECK(rel_err(download(sum), rs) < kTol);
    gpu::channel_sum(g.data(), sum.data(), N, C, P, true);  // accumulate: twice the sum
    for (auto& v : rs) v *= 2;
    CHECK(rel_err(download(sum), rs) < kTol);
  }
}

TEST_CASE("ELU forward and backward", "[cuda][elu]") {
  const std::size_t n = 100003;
  const auto x = randn(n, 5, 2.0f), g = randn(n, 6);
  gpu::DeviceBuffer<float> dx(x), dg(g);
  auto y = poisoned(n), gx = poisoned(n);
  gpu::elu_forward(dx.data(), y.data(), n, 1.0f);
  gpu::elu_backward(dx.data(), dg.data(), gx.data(), n, 1.0f);
  std::vector<double> ry(n), rg(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double v = x[i];
    ry[i] = v > 0 ? v : std::expm1(v);
    rg[i] = g[i] * (v > 0 ? 1.0 : std::exp(v));
  }
  CHECK(rel_err(download(y), ry) < kTol);
  CHECK(rel_err(download(gx), rg) < kTol);
  gpu::elu_backward(dx.data(), dg.data(), gx.data(), n, 1.0f, /*accumulate=*/true);
  for (auto& v : rg) v *= 2;
  CHECK(rel_err(download(gx), rg) < kTol);
}

TEST_CASE("conditional instance norm++ forward and backward", "[cuda][cin]") {
  for (const ref::Cin s : {ref::Cin{2, 3, 25, 4}, ref::Cin{4, 16, 784, 10}, ref::Cin{3, 64, 49, 10},
                           ref::Cin{2, 300, 9, 3}, ref::Cin{1, 2, 1500, 1}}) {
    CAPTURE(s.N, s.C, s.S, s.L);
    const auto x = randn(std::size_t(s.N) * s.C * s.S, 11, 1.5f, 0.3f);
    const auto g = randn(x.size(), 12);
    const auto e = randn(std::size_t(s.L) * 3 * s.C, 13, 0.5f, 1.0f);
    std::vector<int> labels(s.N);
    for (int n = 0; n < s.N; ++n) labels[n] = (n * 7 + 1) % s.L;
    // The forward pass must add a per-channel offset from the embedding of this label.
    gpu::DeviceBuffer<float> dx_in(x), dg(g), de(e);
    gpu::DeviceBuffer<int> dl(labels);
    const std::size_t planes = std::size_t(s.N) * s.C;
    auto y = poisoned(x.size()), mean = poisoned(planes), rstd = poisoned(planes);
    const gpu::CinShape shape{s.N, s.C, s.S, s.L};
    gpu::cin_forward(dx_in.data(), dl.data(), de.data(), y.data(), mean.data(), rstd.data(), shape);
    const auto ry = ref::cin_forward(to_double(x), labels, to_double(e), s);
    CHECK(rel_err(download(y), ry) < kTol);

    auto gx = poisoned(x.size()), s1 = poisoned(planes), s2 = poisoned(planes);
    const auto de0 = randn(e.size(), 14);  // dembed accumulates onto what is there
    gpu::DeviceBuffer<float> dde(de0);
    gpu::cin_backward(dx_in.data(), dg.data(), dl.data(), de.data(), mean.data(), rstd.data(), gx.data(), dde.data(),
                      s1.data(), s2.data(), shape);
    std::vector<double> rdx, rde;
    ref::cin_backward(to_double(x), to_double(g), labels, to_double(e), s, rdx, rde);
    for (std::size_t i = 0; i < rde.size(); ++i) rde[i] += de0[i];
    CHECK(rel_err(download(gx), rdx) < kTol);
    CHECK(rel_err(download(dde), rde) < kTol);
  }
  SECTION("one channel is rejected (unbiased variance over channels)") {
    CHECK_THROWS_AS(gpu::cin_forward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                            gpu::CinShape{1, 1, 4, 1}),
                    scoreood::ShapeError);
  }
}

TEST_CASE("average pooling and 2x2 mean pooling", "[cuda][pool]") {
  for (const gpu::PoolShape s : {gpu::PoolShape{6, 28, 28, 5, 1, 2}, gpu::PoolShape{3, 7, 9, 5, 1, 2},
                                 gpu::PoolShape{4, 14, 14, 2, 2, 0}, gpu::PoolShape{2, 9, 8, 3, 2, 1}}) {
    CAPTURE(s.height, s.width, s.kernel, s.stride, s.pad);
    const std::size_t n_in = std::size_t(s.planes) * s.height * s.width;
    const std::size_t n_out = std::size_t(s.planes) * s.out_height() * s.out_width();
    const auto x = randn(n_in, 21), g = randn(n_out, 22);
    gpu::DeviceBuffer<float> dx(x), dg(g);
    auto y = poisoned(n_out), gx = poisoned(n_in);
    gpu::avg_pool_forward(dx.data(), y.data(), s);
    gpu::avg_pool_backward(dg.data(), gx.data(), s);
    CHECK(rel_err(download(y), ref::avg_pool(to_double(x), s)) < kTol);
    CHECK(rel_err(download(gx), ref::avg_pool_adjoint(to_double(g), s)) < kTol);
  }
  SECTION("mean_pool2 averages the four strided sub-grids (NCSN's MeanPoolConv)") {
    const int P = 5, H = 28, W = 28;
    const auto x = randn(std::size_t(P) * H * W, 23);
    gpu::DeviceBuffer<float> dx(x);
    auto y = poisoned(std::size_t(P) * 14 * 14);
    gpu::mean_pool2_forward(dx.data(), y.data(), P, H, W);
    std::vector<double> r(y.size());
    for (int p = 0; p < P; ++p)
      for (int i = 0; i < 14; ++i)
        for (int j = 0; j < 14; ++j) {
          auto at = [&](int a, int b) { return double(x[(std::size_t(p) * H + a) * W + b]); };
          r[(std::size_t(p) * 14 + i) * 14 + j] =
              (at(2 * i, 2 * j) + at(2 * i + 1, 2 * j) + at(2 * i, 2 * j + 1) + at(2 * i + 1, 2 * j + 1)) / 4;
        }
    CHECK(rel_err(download(y), r) < kTol);
  }
}

TEST_CASE("nearest and bilinear upsampling", "[cuda][upsample]") {
  for (const gpu::ResizeShape s : {gpu::ResizeShape{3, 7, 7, 14, 14}, gpu::ResizeShape{2, 14, 14, 28, 28},
                                   gpu::ResizeShape{2, 5, 6, 9, 13}, gpu::ResizeShape{1, 4, 4, 1, 1},
                                   gpu::ResizeShape{2, 8, 8, 5, 3}}) {
    for (int mode = 0; mode < 3; ++mode) {  // nearest, bilinear align true, bilinear align false
      CAPTURE(s.height, s.width, s.out_height, s.out_width, mode);
      const bool bilinear = mode > 0, align = mode == 1;
      const std::size_t n_in = std::size_t(s.planes) * s.height * s.width;
      const std::size_t n_out = std::size_t(s.planes) * s.out_height * s.out_width;
      const auto x = randn(n_in, 31), g = randn(n_out, 32);
      gpu::DeviceBuffer<float> dx(x), dg(g);
      auto y = poisoned(n_out), gx = poisoned(n_in);
      if (bilinear) {
        gpu::bilinear_forward(dx.data(), y.data(), s, align);
        gpu::bilinear_backward(dg.data(), gx.data(), s, align);
      } else {
        gpu::nearest_forward(dx.data(), y.data(), s);
        gpu::nearest_backward(dg.data(), gx.data(), s);
      }
      const auto taps = ref::resize_taps(s, bilinear, align);
      std::vector<double> ry(n_out, 0.0), rgx(n_in, 0.0);
      for (std::size_t o = 0; o < n_out; ++o)
        for (const auto& t : taps[o]) {
          ry[o] += t.w * x[t.in];
          rgx[t.in] += t.w * g[o];
        }
      CHECK(rel_err(download(y), ry) < kTol);
      CHECK(rel_err(download(gx), rgx) < kTol);
    }
  }
  SECTION("nearest 2x repeats each pixel in a 2x2 block") {
    const std::vector<float> x = {1, 2, 3, 4};
    gpu::DeviceBuffer<float> dx(x);
    auto y = poisoned(16);
    gpu::nearest_forward(dx.data(), y.data(), gpu::ResizeShape{1, 2, 2, 4, 4});
    CHECK(download(y) == std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  }
}

TEST_CASE("DSM loss, its gradient and the residual norms", "[cuda][dsm]") {
  const int N = 37;
  const std::size_t D = 784;
  const auto x = randn(N * D, 41, 0.5f, 0.5f);
  std::vector<float> sigma(N);
  for (int n = 0; n < N; ++n) sigma[n] = float(std::pow(0.01, double(n % 10) / 9.0));  // 1 .. 0.01
  std::vector<float> xt(x.size());
  const auto z = randn(x.size(), 42);
  for (std::size_t i = 0; i < x.size(); ++i) xt[i] = x[i] + sigma[i / D] * z[i];
  auto s = randn(x.size(), 43);
  for (std::size_t i = 0; i < x.size(); ++i) s[i] = s[i] * 0.3f - z[i] / sigma[i / D];  // near the target
  gpu::DeviceBuffer<float> ds(s), dxx(x), dxt(xt), dsig(sigma);
  auto per = poisoned(N), mean = poisoned(1), grad = poisoned(x.size()), norms = poisoned(N);
  gpu::dsm_loss(ds.data(), dxx.data(), dxt.data(), dsig.data(), N, D, per.data(), mean.data(), grad.data());
  gpu::residual_norms(ds.data(), dxx.data(), dxt.data(), dsig.data(), 0.0f, N, D, norms.data());
  std::vector<double> rper(N), rgrad(x.size()), rnorm(N);
  double rmean = 0;
  for (int n = 0; n < N; ++n) {
    const double sg = sigma[n];
    double acc = 0;
    for (std::size_t i = n * D; i < (n + 1) * D; ++i) {
      const double r = s[i] + (double(xt[i]) - x[i]) / (sg * sg);
      acc += r * r;
      rgrad[i] = sg * sg * r / N;
    }
    rper[n] = 0.5 * sg * sg * acc;
    rnorm[n] = std::sqrt(acc);
    rmean += rper[n] / N;
  }
  CHECK(rel_err(download(per), rper) < kTol);
  CHECK(rel_err(download(mean), {rmean}) < kTol);
  CHECK(rel_err(download(grad), rgrad) < kTol);
  CHECK(rel_err(download(norms), rnorm) < kTol);
  // One sigma for the whole batch, accumulated twice (as f_rot sums over the group).
  auto acc = poisoned(N);
  gpu::fill(acc.data(), N, 0.0f);
  gpu::residual_norms(ds.data(), dxx.data(), dxt.data(), nullptr, 0.5f, N, D, acc.data(), true);
  gpu::residual_norms(ds.data(), dxx.data(), dxt.data(), nullptr, 0.5f, N, D, acc.data(), true);
  for (int n = 0; n < N; ++n) {
    double a = 0;
    for (std::size_t i = n * D; i < (n + 1) * D; ++i) {
      const double r = s[i] + (double(xt[i]) - x[i]) / 0.25;
      a += r * r;
    }
    rnorm[n] = 2 * std::sqrt(a);
  }
  CHECK(rel_err(download(acc), rnorm) < kTol);
}

TEST_CASE("per-image norms fill a column of the normality matrix", "[cuda][norms]") {
  const int N = 50, L = 10;
  const std::size_t D = 3 * 32 * 32;
  const auto a = randn(N * D, 51);
  gpu::DeviceBuffer<float> da(a);
  auto m = poisoned(std::size_t(N) * L);
  gpu::fill(m.data(), std::size_t(N) * L, -1.0f);
  gpu::row_norms(da.data(), N, D, -0.25f, m.data() + 3, L);  // |scale| * ||a_n|| into column 3
  const auto h = download(m);
  for (int n = 0; n < N; ++n) {
    double acc = 0;
    for (std::size_t i = n * D; i < (n + 1) * D; ++i) acc += double(a[i]) * a[i];
    CHECK(h[n * L + 3] == Approx(0.25 * std::sqrt(acc)).epsilon(kTol));
    CHECK(h[n * L + 2] == -1.0f);  // the other columns are untouched
    CHECK(h[n * L + 4] == -1.0f);
  }
}

TEST_CASE("dihedral group actions and patch permutations", "[cuda][group]") {
  const gpu::ImageShape s{8, 3, 28, 28};
  const auto x = randn(s.size(), 61);
  gpu::DeviceBuffer<float> dx(x);
  std::vector<int> elements(s.batch);
  for (int n = 0; n < s.batch; ++n) elements[n] = n;  // every element of D4 once
  gpu::DeviceBuffer<int> del(elements);
  auto y = poisoned(s.size());
  gpu::dihedral(dx.data(), y.data(), s, del.data());
  const auto hy = download(y);
  std::size_t mismatches = 0;
  for (int n = 0; n < s.batch; ++n)
    for (int c = 0; c < s.channels; ++c)
      for (int i = 0; i < s.height; ++i)
        for (int j = 0; j < s.width; ++j) {
          int si, sj;
          ref::dihedral_src(elements[n], s.height, s.width, i, j, si, sj);
          const std::size_t base = (std::size_t(n) * s.channels + c) * s.height * s.width;
          mismatches += hy[base + i * s.width + j] != x[base + si * s.width + sj];
        }
  CHECK(mismatches == 0);
  SECTION("the inverse element undoes every action") {
    std::vector<int> inv(s.batch);
    for (int n = 0; n < s.batch; ++n) inv[n] = gpu::dihedral_inverse(elements[n]);
    gpu::DeviceBuffer<int> dinv(inv);
    auto back = poisoned(s.size());
    gpu::dihedral(y.data(), back.data(), s, dinv.data());
    CHECK(download(back) == x);
  }
  SECTION("four quarter turns are the identity; rot90 by 1 equals element 1") {
    auto a = poisoned(s.size()), b = poisoned(s.size());
    gpu::rot90(dx.data(), a.data(), s, 1);
    gpu::rot90(a.data(), b.data(), s, 1);
    gpu::rot90(b.data(), a.data(), s, 1);
    gpu::rot90(a.data(), b.data(), s, 1);
    CHECK(download(b) == x);
    gpu::hflip(dx.data(), a.data(), s);
    gpu::hflip(a.data(), b.data(), s);
    CHECK(download(b) == x);
  }
  SECTION("non-square images: flips and half turns only") {
    const gpu::ImageShape r{2, 1, 4, 6};
    CHECK_THROWS_AS(gpu::rot90<float>(nullptr, nullptr, r, 1), scoreood::ShapeError);
    const auto xr = randn(r.size(), 62);
    gpu::DeviceBuffer<float> d(xr);
    auto o = poisoned(r.size());
    gpu::rot90(d.data(), o.data(), r, 2);
    const auto h = download(o);
    for (int p = 0; p < 2; ++p)
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 6; ++j) CHECK(h[p * 24 + i * 6 + j] == xr[p * 24 + (3 - i) * 6 + (5 - j)]);
  }
  SECTION("patch permutation by a per-sample table, and its inverse") {
    const int ph = 7, pw = 14, patches = (28 / ph) * (28 / pw);  // 4 x 2 grid
    std::vector<int> table(std::size_t(s.batch) * patches);
    for (int n = 0; n < s.batch; ++n) {
      std::vector<int> perm(patches);
      std::iota(perm.begin(), perm.end(), 0);
      std::rotate(perm.begin(), perm.begin() + (n % patches), perm.end());
      if (n % 2) std::reverse(perm.begin(), perm.end());
      std::copy(perm.begin(), perm.end(), table.begin() + std::size_t(n) * patches);
    }
    gpu::DeviceBuffer<int> dt(table);
    auto o = poisoned(s.size()), back = poisoned(s.size());
    gpu::patch_permute(dx.data(), o.data(), s, ph, pw, dt.data(), patches);
    gpu::patch_permute(o.data(), back.data(), s, ph, pw, dt.data(), patches, /*inverse=*/true);
    const auto h = download(o);
    std::size_t bad = 0;
    for (int n = 0; n < s.batch; ++n)
      for (int c = 0; c < s.channels; ++c)
        for (int i = 0; i < 28; ++i)
          for (int j = 0; j < 28; ++j) {
            const int q = (i / ph) * 2 + j / pw;
            const int src = table[std::size_t(n) * patches + q];
            const int si = (src / 2) * ph + i % ph, sj = (src % 2) * pw + j % pw;
            const std::size_t base = (std::size_t(n) * s.channels + c) * 28 * 28;
            bad += h[base + i * 28 + j] != x[base + si * 28 + sj];
          }
    CHECK(bad == 0);
    CHECK(download(back) == x);
    CHECK_THROWS_AS(gpu::patch_permute<float>(nullptr, nullptr, s, 5, 7, nullptr, 0), scoreood::ShapeError);
  }
}

TEST_CASE("Philox noise on the device is bit-identical to the host's CounterRng", "[cuda][rng]") {
  const CounterRng rng = CounterRng(20240607, 3).substream(17);
  const std::size_t n = (1u << 20) + 3;
  const std::uint64_t offset = 5;  // odd: the sin/cos pairing must follow the index, not the thread
  gpu::DeviceBuffer<float> d(n);
  gpu::fill_normal(d.data(), n, rng, offset);
  const auto h = download(d);
  // Box-Muller runs in double and rounds to float; the device's double
  // log/sin/cos may differ from glibc's by an ulp of a double, which can flip
  // the float rounding about once in 1e8 draws. So: no difference larger than
  // one float ulp, and at most a handful of one-ulp ones (reported).
  std::size_t diff = 0, far = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float want = rng.normal(offset + i);
    if (h[i] == want) continue;
    ++diff;
    far += h[i] != std::nextafter(want, 1e30f) && h[i] != std::nextafter(want, -1e30f);
  }
  if (diff) WARN(diff << " of " << n << " device normals differ from the host's by one float ulp");
  CHECK(far == 0);
  CHECK(diff <= 4);

  gpu::fill_uniform(d.data(), n, rng, 0);
  const auto hu = download(d);
  diff = 0;
  for (std::size_t i = 0; i < n; ++i) diff += hu[i] != rng.uniform(i);
  CHECK(diff == 0);

  gpu::DeviceBuffer<int> levels(1000);
  gpu::fill_uniform_int(levels.data(), 1000, 10u, rng, 7);
  const auto hl = download(levels);
  for (std::size_t i = 0; i < 1000; ++i) REQUIRE(hl[i] == int(rng.uniform_int(7 + i, 10)));

  SECTION("x~ = x + sigma_n z, with sigma gathered per sample from the level index") {
    const int N = 16;
    const std::size_t D = 784;
    const auto x = randn(N * D, 71);
    std::vector<float> table(10);
    for (int l = 0; l < 10; ++l) table[l] = float(std::pow(0.01, l / 9.0));
    gpu::DeviceBuffer<float> dtab(table), dsig(N), dxx(x), dxt(N * D), dz(N * D);
    gpu::gather(dtab.data(), levels.data(), dsig.data(), N, 10);
    gpu::add_noise(dxx.data(), dxt.data(), dz.data(), dsig.data(), N, D, rng, 0);
    const auto hxt = download(dxt), hz = download(dz), hs = download(dsig);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < N * D; ++i) {
      const float z = rng.normal(i);
      bad += hz[i] != z && hz[i] != std::nextafter(z, 1e30f) && hz[i] != std::nextafter(z, -1e30f);
      bad += hs[i / D] != table[hl[i / D]];
      bad += std::abs(double(hxt[i]) - (double(x[i]) + double(table[hl[i / D]]) * z)) > 1e-5;
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("Adam (PyTorch semantics) and EMA over one flat buffer", "[cuda][optim]") {
  const std::size_t n = 123457;
  auto p = randn(n, 81);
  gpu::DeviceBuffer<float> dp(p), dg(n), dm(n), dv(n), dshadow(p);
  dm.zero();
  dv.zero();
  std::vector<double> rp = to_double(p), rm(n, 0.0), rv(n, 0.0), rshadow = to_double(p);
  const gpu::AdamConfig cfg{1e-3, 0.9, 0.999, 1e-8, 1e-4};
  const double mu = 0.9;
  for (long step = 1; step <= 5; ++step) {
    const auto g = randn(n, 100 + step);
    dg.copy_from_host(g);
    gpu::adam_step(dp.data(), dg.data(), dm.data(), dv.data(), n, cfg, step);
    gpu::ema_update(dshadow.data(), dp.data(), n, float(mu));
    const double bc1 = 1 - std::pow(cfg.beta1, step), bc2 = 1 - std::pow(cfg.beta2, step);
    for (std::size_t i = 0; i < n; ++i) {
      const double gi = g[i] + cfg.weight_decay * rp[i];
      rm[i] = cfg.beta1 * rm[i] + (1 - cfg.beta1) * gi;
      rv[i] = cfg.beta2 * rv[i] + (1 - cfg.beta2) * gi * gi;
      rp[i] -= cfg.lr / bc1 * rm[i] / (std::sqrt(rv[i]) / std::sqrt(bc2) + cfg.eps);
      rshadow[i] = (1 - mu) * rp[i] + mu * rshadow[i];
    }
  }
  // Compare the parameter *updates* (p - p0): they are ~1e-3 of p, so this is
  // the strict check; the parameters themselves would hide a wrong update.
  const auto hp = download(dp);
  std::vector<float> upd(n);
  std::vector<double> rupd(n);
  for (std::size_t i = 0; i < n; ++i) {
    upd[i] = hp[i] - p[i];
    rupd[i] = rp[i] - p[i];
  }
  CHECK(rel_err(upd, rupd) < 1e-3);  // float rounding of p itself is ~1e-4 of the update
  CHECK(rel_err(hp, rp) < kTol);
  CHECK(rel_err(download(dm), rm) < kTol);
  CHECK(rel_err(download(dv), rv) < kTol);
  CHECK(rel_err(download(dshadow), rshadow) < kTol);
  CHECK_THROWS_AS(gpu::adam_step(dp.data(), dg.data(), dm.data(), dv.data(), n, cfg, 0), scoreood::ValueError);
}
