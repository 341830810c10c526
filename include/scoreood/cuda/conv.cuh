/** @file conv.cuh
 *  @brief 2-D convolutions (NCHW float, PyTorch's cross-correlation with
 *  padding, stride and dilation) through cuDNN: forward, backward-data,
 *  backward-filter and the bias terms. The algorithm for each direction is
 *  chosen once per shape, when that direction first runs (cudnnFind*, timing
 *  the candidates; cudnnGet*_v7 heuristics as the fallback: inference never
 *  searches the backward algorithms), and cached; one workspace is reused and
 *  grown.
 *
 *  Precision: by default only FMA (true float32) algorithms are allowed, so
 *  results match the CPU path to float rounding; ConvOptions::allow_tf32 lets
 *  cuDNN use TF32 tensor cores (about 1e-3 relative error, much faster). */
#pragma once
#include <scoreood/cuda/error.cuh>
#include <scoreood/cuda/kernels/elementwise.cuh>
#include <scoreood/cuda/memory.cuh>

#if !SCOREOOD_HAVE_CUDNN
#error "scoreood/cuda/conv.cuh needs cuDNN (cudnn.h on the include path: link scoreood::cuda, set CUDNN_ROOT)"
#endif

#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace scoreood::gpu {

/// Geometry of one convolution: x (batch, in_channels, height, width),
/// w (out_channels, in_channels, kernel_h, kernel_w), y (batch, out_channels, out_height(), out_width()).
struct ConvShape {
  int batch = 0, in_channels = 0, height = 0, width = 0;
  int out_channels = 0, kernel_h = 3, kernel_w = 3;
  int pad_h = 1, pad_w = 1;
  int stride_h = 1, stride_w = 1;
  int dilation_h = 1, dilation_w = 1;

  int out_height() const { return (height + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1; }
  int out_width() const { return (width + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1; }
  std::size_t x_size() const { return std::size_t(batch) * in_channels * height * width; }
  std::size_t w_size() const { return std::size_t(out_channels) * in_channels * kernel_h * kernel_w; }
  std::size_t y_size() const { return std::size_t(batch) * out_channels * out_height() * out_width(); }
  std::array<int, 13> key() const {
    return {batch,  in_channels, height,   width,    out_channels, kernel_h,  kernel_w,
            pad_h,  pad_w,       stride_h, stride_w, dilation_h,   dilation_w};
  }
  std::string str() const {
    return "x " + std::to_string(batch) + "x" + std::to_string(in_channels) + "x" + std::to_string(height) + "x" +
           std::to_string(width) + ", w " + std::to_string(out_channels) + "x" + std::to_string(in_channels) + "x" +
           std::to_string(kernel_h) + "x" + std::to_string(kernel_w) + ", pad " + std::to_string(pad_h) + "," +
           std::to_string(pad_w) + ", stride " + std::to_string(stride_h) + "," + std::to_string(stride_w) +
           ", dilation " + std::to_string(dilation_h) + "," + std::to_string(dilation_w);
  }
};

/// How the algorithms are chosen.
enum class ConvAlgoSearch {
  benchmark,  ///< cudnnFind*: run the candidates once per shape, take the fastest that fits
  heuristic,  ///< cudnnGet*_v7: cuDNN's ranking, no timing
};

struct ConvOptions {
  bool allow_tf32 = false;
  ConvAlgoSearch search = ConvAlgoSearch::benchmark;
  std::size_t workspace_limit = std::size_t(512) << 20;  ///< bytes; algorithms needing more are skipped
};

/// An owning cuDNN handle.
class CudnnHandle {
 public:
  CudnnHandle() { SCOREOOD_CUDNN_CHECK(cudnnCreate(&h_)); }
  ~CudnnHandle() {
    if (h_) (void)cudnnDestroy(h_);
  }
  CudnnHandle(CudnnHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  CudnnHandle& operator=(CudnnHandle&& o) noexcept {
    if (this != &o) {
      if (h_) (void)cudnnDestroy(h_);
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  CudnnHandle(const CudnnHandle&) = delete;
  CudnnHandle& operator=(const CudnnHandle&) = delete;
  cudnnHandle_t get() const noexcept { return h_; }

 private:
  cudnnHandle_t h_ = nullptr;
};

namespace detail {

/// RAII for the three descriptor kinds (create in the constructor, destroy once).
template <typename D, cudnnStatus_t (*Create)(D*), cudnnStatus_t (*Destroy)(D)>
class CudnnDescriptor {
 public:
  CudnnDescriptor() { SCOREOOD_CUDNN_CHECK(Create(&d_)); }
  ~CudnnDescriptor() {
    if (d_) (void)Destroy(d_);
  }
  CudnnDescriptor(const CudnnDescriptor&) = delete;
  CudnnDescriptor& operator=(const CudnnDescriptor&) = delete;
  D get() const noexcept { return d_; }

 private:
  D d_ = nullptr;
};
using TensorDescriptor =
    CudnnDescriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDescriptor =
    CudnnDescriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvolutionDescriptor = CudnnDescriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                                              cudnnDestroyConvolutionDescriptor>;

inline bool is_tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

/// The chosen algorithms of one shape and the descriptors they run with.
struct ConvPlan {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  std::size_t fwd_bytes = 0, bwd_data_bytes = 0, bwd_filter_bytes = 0;
  bool have_fwd = false, have_bwd_data = false, have_bwd_filter = false;  ///< chosen yet
};

/// First usable entry of a cuDNN perf list (sorted fastest / most recommended first).
template <typename Perf>
const Perf* pick(const Perf* perf, int count, const ConvOptions& o) {
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (perf[i].memory > o.workspace_limit) continue;
    if (!o.allow_tf32 && is_tensor_op(perf[i].mathType)) continue;
    return &perf[i];
  }
  return nullptr;
}

}  // namespace detail

/// Runs convolutions of any number of shapes on one stream, with per-shape
/// descriptors and algorithms cached and one shared workspace. Not thread-safe
/// (one per stream/thread). All pointers are device pointers to float.
class Convolution {
 public:
  explicit Convolution(ConvOptions options = {}, cudaStream_t stream = nullptr) : options_(options) {
    set_stream(stream);
  }

  void set_stream(cudaStream_t stream) {
    stream_ = stream;
    SCOREOOD_CUDNN_CHECK(cudnnSetStream(handle_.get(), stream));
  }
  cudaStream_t stream() const noexcept { return stream_; }
  const ConvOptions& options() const noexcept { return options_; }
  std::size_t cached_shapes() const noexcept { return plans_.size(); }
  std::size_t workspace_bytes() const noexcept { return workspace_.size(); }

  /// y = conv(x, w) (+ bias[k] per output channel when bias is non-null).
  void forward(const ConvShape& s, const float* x, const float* w, const float* bias, float* y) {
    detail::ConvPlan& p = plan(s);
    if (!p.have_fwd) choose_forward(p, s);
    const float one = 1.0f, zero = 0.0f;
    SCOREOOD_CUDNN_CHECK(cudnnConvolutionForward(handle_.get(), &one, p.x.get(), x, p.w.get(), w, p.conv.get(), p.fwd,
                                                 workspace_.data(), p.fwd_bytes, &zero, p.y.get(), y));
    if (bias) add_channel_bias(y, bias, s.batch, s.out_channels, std::size_t(s.out_height()) * s.out_width(), stream_);
  }

  /// dx = (or +=, when accumulate) the gradient with respect to the input.
  void backward_data(const ConvShape& s, const float* w, const float* dy, float* dx, bool accumulate = false) {
    detail::ConvPlan& p = plan(s);
    if (!p.have_bwd_data) choose_backward_data(p, s);
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    SCOREOOD_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_.get(), &one, p.w.get(), w, p.y.get(), dy, p.conv.get(),
                                                      p.bwd_data, workspace_.data(), p.bwd_data_bytes, &beta,
                                                      p.x.get(), dx));
  }

  /// dw += (or =, when !accumulate) the gradient with respect to the weights.
  void backward_filter(const ConvShape& s, const float* x, const float* dy, float* dw, bool accumulate = true) {
    detail::ConvPlan& p = plan(s);
    if (!p.have_bwd_filter) choose_backward_filter(p, s);
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    SCOREOOD_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_.get(), &one, p.x.get(), x, p.y.get(), dy, p.conv.get(),
                                                        p.bwd_filter, workspace_.data(), p.bwd_filter_bytes, &beta,
                                                        p.w.get(), dw));
  }

  /// db += (or =) the gradient with respect to the bias (sum of dy per channel).
  void backward_bias(const ConvShape& s, const float* dy, float* db, bool accumulate = true) {
    check(s);
    channel_sum(dy, db, s.batch, s.out_channels, std::size_t(s.out_height()) * s.out_width(), accumulate, stream_);
  }

 private:
  static void check(const ConvShape& s) {
    const bool ok = s.batch >= 1 && s.in_channels >= 1 && s.height >= 1 && s.width >= 1 && s.out_channels >= 1 &&
                    s.kernel_h >= 1 && s.kernel_w >= 1 && s.pad_h >= 0 && s.pad_w >= 0 && s.stride_h >= 1 &&
                    s.stride_w >= 1 && s.dilation_h >= 1 && s.dilation_w >= 1 && s.out_height() >= 1 &&
                    s.out_width() >= 1;
    if (!ok) throw ShapeError("Convolution: invalid shape (" + s.str() + ")");
  }

  detail::ConvPlan& plan(const ConvShape& s) {
    const auto key = s.key();
    if (auto it = plans_.find(key); it != plans_.end()) return *it->second;
    check(s);
    auto p = std::make_unique<detail::ConvPlan>();
    SCOREOOD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.batch,
                                                    s.in_channels, s.height, s.width));
    SCOREOOD_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.out_channels,
                                                    s.in_channels, s.kernel_h, s.kernel_w));
    SCOREOOD_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv.get(), s.pad_h, s.pad_w, s.stride_h, s.stride_w,
                                                         s.dilation_h, s.dilation_w, CUDNN_CROSS_CORRELATION,
                                                         CUDNN_DATA_FLOAT));
    SCOREOOD_CUDNN_CHECK(
        cudnnSetConvolutionMathType(p->conv.get(), options_.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
    int n = 0, k = 0, h = 0, w = 0;
    SCOREOOD_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv.get(), p->x.get(), p->w.get(), &n, &k, &h, &w));
    if (n != s.batch || k != s.out_channels || h != s.out_height() || w != s.out_width())
      throw ShapeError("Convolution: cuDNN's output " + std::to_string(h) + "x" + std::to_string(w) +
                       " differs from the expected " + std::to_string(s.out_height()) + "x" +
                       std::to_string(s.out_width()) + " (" + s.str() + ")");
    SCOREOOD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, k, h, w));
    return *plans_.emplace(key, std::move(p)).first->second;
  }

  /// The workspace holds what every chosen algorithm needs (grown only; cudaFree of the old
  /// one waits for the work that may still use it).
  void reserve(std::size_t bytes) { workspace_.reserve_discard(bytes); }

  void choose_forward(detail::ConvPlan& p, const ConvShape& s) {
    cudnnHandle_t h = handle_.get();
    const std::string where = " for " + s.str();
    {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      int count = 0;
      const cudnnConvolutionFwdAlgoPerf_t* best = nullptr;
      if (options_.search == ConvAlgoSearch::benchmark) {
        SCOREOOD_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                                  CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
        best = detail::pick(perf, count, options_);
      }
      if (!best) {
        SCOREOOD_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
        best = detail::pick(perf, count, options_);
      }
      if (!best) throw CudaError("Convolution: no cuDNN forward algorithm fits the options" + where);
      p.fwd = best->algo;
      SCOREOOD_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, p.x.get(), p.w.get(), p.conv.get(), p.y.get(),
                                                                   p.fwd, &p.fwd_bytes));
    }
    reserve(p.fwd_bytes);
    p.have_fwd = true;
  }

  void choose_backward_data(detail::ConvPlan& p, const ConvShape& s) {
    cudnnHandle_t h = handle_.get();
    const std::string where = " for " + s.str();
    {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      int count = 0;
      const cudnnConvolutionBwdDataAlgoPerf_t* best = nullptr;
      if (options_.search == ConvAlgoSearch::benchmark) {
        SCOREOOD_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(
            h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(), CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
        best = detail::pick(perf, count, options_);
      }
      if (!best) {
        SCOREOOD_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
            h, p.w.get(), p.y.get(), p.conv.get(), p.x.get(), CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
        best = detail::pick(perf, count, options_);
      }
      if (!best) throw CudaError("Convolution: no cuDNN backward-data algorithm fits the options" + where);
      p.bwd_data = best->algo;
      SCOREOOD_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w.get(), p.y.get(), p.conv.get(),
                                                                        p.x.get(), p.bwd_data, &p.bwd_data_bytes));
    }
    reserve(p.bwd_data_bytes);
    p.have_bwd_data = true;
  }

  void choose_backward_filter(detail::ConvPlan& p, const ConvShape& s) {
    cudnnHandle_t h = handle_.get();
    const std::string where = " for " + s.str();
    {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      int count = 0;
      const cudnnConvolutionBwdFilterAlgoPerf_t* best = nullptr;
      if (options_.search == ConvAlgoSearch::benchmark) {
        SCOREOOD_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(
            h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(), CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
        best = detail::pick(perf, count, options_);
      }
      if (!best) {
        SCOREOOD_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            h, p.x.get(), p.y.get(), p.conv.get(), p.w.get(), CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
        best = detail::pick(perf, count, options_);
      }
      if (!best) throw CudaError("Convolution: no cuDNN backward-filter algorithm fits the options" + where);
      p.bwd_filter = best->algo;
      SCOREOOD_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x.get(), p.y.get(), p.conv.get(),
                                                                          p.w.get(), p.bwd_filter, &p.bwd_filter_bytes));
    }
    reserve(p.bwd_filter_bytes);
    p.have_bwd_filter = true;
  }

  ConvOptions options_;
  cudaStream_t stream_ = nullptr;
  CudnnHandle handle_;
  std::map<std::array<int, 13>, std::unique_ptr<detail::ConvPlan>> plans_;
  DeviceBuffer<std::byte> workspace_;
};

}  // namespace scoreood::gpu
