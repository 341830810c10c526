// cuDNN convolutions (forward, backward-data, backward-filter, bias; padding,
// stride, dilation) and the cuBLAS GEMM against direct double-precision loops.
#include "cuda_test_util.cuh"

using namespace sot;

namespace {

/// y, dx, dw by the definition (cross-correlation, zero padding).
struct RefConv {
  gpu::ConvShape s;
  template <typename F>
  void each(F&& f) const {  // f(x index, w index, y index)
    const int Ho = s.out_height(), Wo = s.out_width();
    for (int n = 0; n < s.batch; ++n)
      for (int k = 0; k < s.out_channels; ++k)
        for (int oy = 0; oy < Ho; ++oy)
          for (int ox = 0; ox < Wo; ++ox)
            for (int c = 0; c < s.in_channels; ++c)
              for (int r = 0; r < s.kernel_h; ++r)
                for (int q = 0; q < s.kernel_w; ++q) {
                  const int iy = oy * s.stride_h - s.pad_h + r * s.dilation_h;
                  const int ix = ox * s.stride_w - s.pad_w + q * s.dilation_w;
                  if (iy < 0 || iy >= s.height || ix < 0 || ix >= s.width) continue;
                  f((((std::size_t(n) * s.in_channels + c) * s.height + iy) * s.width + ix),
                    (((std::size_t(k) * s.in_channels + c) * s.kernel_h + r) * s.kernel_w + q),
                    (((std::size_t(n) * s.out_channels + k) * Ho + oy) * Wo + ox));
                }
  }
};

}  // namespace

TEST_CASE("cuDNN convolution matches the definition", "[cuda][conv]") {
  const gpu::ConvShape shapes[] = {
      {2, 3, 9, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1},      // 3x3 same
      {2, 5, 28, 28, 6, 3, 3, 2, 2, 1, 1, 2, 2},    // dilation 2 (res3)
      {1, 4, 7, 7, 3, 3, 3, 4, 4, 1, 1, 4, 4},      // dilation 4 on a small map (res4)
      {3, 4, 14, 12, 5, 3, 3, 1, 1, 2, 2, 1, 1},    // stride 2, non-square
      {2, 6, 8, 8, 7, 1, 1, 0, 0, 1, 1, 1, 1},      // 1x1
      {2, 3, 10, 10, 2, 3, 5, 0, 2, 1, 1, 1, 1},    // rectangular kernel, no vertical padding
  };
  gpu::Convolution conv;  // FMA only: float32 accuracy
  std::size_t expected_cached = 0;
  for (const auto& s : shapes) {
    CAPTURE(s.str());
    const auto x = randn(s.x_size(), 1), w = randn(s.w_size(), 2, 0.3f), b = randn(s.out_channels, 3);
    const auto dy = randn(s.y_size(), 4);
    gpu::DeviceBuffer<float> dx_(x), dw_(w), db_(b), ddy(dy);
    auto y = poisoned(s.y_size()), gx = poisoned(s.x_size());
    const auto gw0 = randn(s.w_size(), 5), gb0 = randn(s.out_channels, 6);
    gpu::DeviceBuffer<float> gw(gw0), gb(gb0);  // weight/bias gradients accumulate onto these

    conv.forward(s, dx_.data(), dw_.data(), db_.data(), y.data());
    conv.backward_data(s, dw_.data(), ddy.data(), gx.data());
    conv.backward_filter(s, dx_.data(), ddy.data(), gw.data());
    conv.backward_bias(s, ddy.data(), gb.data());
    CHECK(conv.cached_shapes() == ++expected_cached);

    std::vector<double> ry(s.y_size()), rgx(s.x_size(), 0.0), rgw = to_double(gw0), rgb = to_double(gb0);
    const int plane = s.out_height() * s.out_width();
    for (std::size_t i = 0; i < ry.size(); ++i) ry[i] = b[(i / plane) % s.out_channels];
    RefConv{s}.each([&](std::size_t xi, std::size_t wi, std::size_t yi) {
      ry[yi] += double(w[wi]) * x[xi];
      rgx[xi] += double(w[wi]) * dy[yi];
      rgw[wi] += double(x[xi]) * dy[yi];
    });
    for (std::size_t i = 0; i < dy.size(); ++i) rgb[(i / plane) % s.out_channels] += dy[i];
    CHECK(rel_err(download(y), ry) < kTol);
    CHECK(rel_err(download(gx), rgx) < kTol);
    CHECK(rel_err(download(gw), rgw) < kTol);
    CHECK(rel_err(download(gb), rgb) < kTol);

    // Same shape again: cached plan, and backward-data accumulates when asked.
    conv.backward_data(s, dw_.data(), ddy.data(), gx.data(), /*accumulate=*/true);
    for (auto& v : rgx) v *= 2;
    CHECK(rel_err(download(gx), rgx) < kTol);
    CHECK(conv.cached_shapes() == expected_cached);
  }
  CHECK(conv.workspace_bytes() < conv.options().workspace_limit + 1);
  SECTION("invalid shapes are rejected with the shape in the message") {
    gpu::ConvShape bad{1, 1, 2, 2, 1, 5, 5, 0, 0, 1, 1, 1, 1};  // kernel larger than the padded input
    CHECK_THROWS_WITH(conv.forward(bad, nullptr, nullptr, nullptr, nullptr), Catch::Contains("x 1x1x2x2"));
  }
  SECTION("heuristic algorithm choice gives the same results") {
    gpu::Convolution heur(gpu::ConvOptions{false, gpu::ConvAlgoSearch::heuristic});
    const auto& s = shapes[1];
    const auto x = randn(s.x_size(), 1), w = randn(s.w_size(), 2, 0.3f);
    gpu::DeviceBuffer<float> dx_(x), dw_(w);
    auto y1 = poisoned(s.y_size()), y2 = poisoned(s.y_size());
    heur.forward(s, dx_.data(), dw_.data(), nullptr, y1.data());
    conv.forward(s, dx_.data(), dw_.data(), nullptr, y2.data());
    const auto a = download(y1), b = download(y2);
    CHECK(rel_err(a, to_double(b)) < kTol);
  }
}

#if SCOREOOD_HAVE_CUBLAS
TEST_CASE("cuBLAS row-major GEMM", "[cuda][blas]") {
  gpu::CublasHandle h;
  const int m = 37, n = 53, k = 129;
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    CAPTURE(ta, tb);
    const auto a = randn(std::size_t(m) * k, 10 + t), b = randn(std::size_t(k) * n, 20 + t),
               c0 = randn(std::size_t(m) * n, 30 + t);
    gpu::DeviceBuffer<float> da(a), db(b), dc(c0);
    gpu::gemm(h, ta, tb, m, n, k, 0.5f, da.data(), db.data(), 2.0f, dc.data());
    std::vector<double> r(std::size_t(m) * n);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double acc = 0;
        for (int p = 0; p < k; ++p) {
          const double av = ta ? a[std::size_t(p) * m + i] : a[std::size_t(i) * k + p];
          const double bv = tb ? b[std::size_t(j) * k + p] : b[std::size_t(p) * n + j];
          acc += av * bv;
        }
        r[std::size_t(i) * n + j] = 0.5 * acc + 2.0 * c0[std::size_t(i) * n + j];
      }
    CHECK(rel_err(download(dc), r) < kTol);
  }
}
#endif
