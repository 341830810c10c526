/** @file context.cuh
 *  @brief gpu::Context, what every ops<backend::cuda> call takes first: one
 *  stream, the cuDNN handle and convolution plan cache on it (gpu::Convolution),
 *  grow-only device scratch, and pinned host memory for the small arrays that
 *  cross between host and device each call (noise levels, sigmas, per-image
 *  norms).
 *
 *  Everything a context launches runs in order on its stream; nothing waits for
 *  the device unless a function says so (a value read back to the host). The
 *  stream is a blocking one (cudaStreamDefault): what runs on the legacy default
 *  stream, such as DeviceBuffer's synchronous copies and zero() behind
 *  nn::ParameterStore (finalize, zero_grad, to_host, from_host) and the
 *  optimisers' state, is ordered with the context's kernels, before and after. One
 *  context per thread: it is not thread-safe, and two threads with their own
 *  contexts never share a stream, a handle or a plan (nn::WorkspaceCache hands
 *  each inferring thread its own workspace, and with it its own context).
 *
 *  Uploads go through a ring of pinned slots: a slot is refilled only after the
 *  copy that last read it has completed (an event per slot), so the host may
 *  reuse its own array as soon as the call returns. */
#pragma once
#include <scoreood/cuda/conv.cuh>
#include <scoreood/cuda/memory.cuh>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace scoreood::gpu {

/// Page-locked host memory (cudaMallocHost), grown on demand; contents lost on growth.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { release(); }
  PinnedBuffer(PinnedBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  /// At least `bytes` bytes (reallocates when smaller).
  std::byte* reserve(std::size_t bytes) {
    if (bytes > n_) {
      release();
      void* p = nullptr;
      SCOREOOD_CUDA_CHECK(cudaMallocHost(&p, bytes));
      p_ = static_cast<std::byte*>(p);
      n_ = bytes;
    }
    return p_;
  }
  std::byte* data() noexcept { return p_; }
  std::size_t bytes() const noexcept { return n_; }

 private:
  void release() noexcept {
    if (p_) (void)cudaFreeHost(p_);
    p_ = nullptr;
    n_ = 0;
  }
  std::byte* p_ = nullptr;
  std::size_t n_ = 0;
};

/// Device scratch buffers of a context. Each op uses its own slots; a slot's
/// contents live until the next call that takes the same slot.
enum class Scratch : int {
  stats,      ///< per-plane statistics (instance norm++ forward)
  coeffs,     ///< per-plane coefficients (instance norm++ forward / backward)
  sums,       ///< per-plane gradient sums (instance norm++ backward)
  partials,   ///< block partial sums of the reductions
  features,   ///< per-image or per-pixel results on their way to the host
  indices,    ///< per-sample indices (DSM batches)
  sigmas,     ///< per-sample noise levels
  count_
};

class Context {
 public:
  /// Creates the stream, the cuDNN handle and an empty plan cache; needs a usable GPU.
  Context() : Context(ConvOptions{}) {}
  explicit Context(ConvOptions conv) : conv_(conv, stream_.get()) {}
  Context(Context&&) = default;
  Context& operator=(Context&&) = default;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  cudaStream_t stream() const noexcept { return stream_.get(); }
  /// The cuDNN convolutions of this stream (plans cached per shape, one workspace).
  Convolution& convolution() noexcept { return conv_; }
  /// Waits for everything launched on this context.
  void synchronize() const { stream_.synchronize(); }

  /// Slot s of the scratch, at least n values of T (grow-only; contents lost on growth).
  template <typename T>
  T* scratch(Scratch s, std::size_t n) {
    auto& b = scratch_[std::size_t(s)];
    b.reserve_discard(n * sizeof(T));
    return reinterpret_cast<T*>(b.data());
  }
  /// Bytes held by the scratch (all slots).
  std::size_t scratch_bytes() const noexcept {
    std::size_t n = 0;
    for (const auto& b : scratch_) n += b.size();
    return n;
  }

  /// Copies host values to device memory dst on the stream, through a pinned slot: the host
  /// array may change as soon as this returns.
  template <typename T>
  void upload(std::span<const T> host, T* dst) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (host.empty()) return;
    Staging& slot = staging_[next_ % staging_.size()];
    ++next_;
    if (slot.used) slot.done.synchronize();  // the copy that last read this slot
    std::byte* p = slot.buffer.reserve(host.size_bytes());
    std::memcpy(p, host.data(), host.size_bytes());
    SCOREOOD_CUDA_CHECK(cudaMemcpyAsync(dst, p, host.size_bytes(), cudaMemcpyHostToDevice, stream()));
    slot.done.record(stream());
    slot.used = true;
  }
  /// Copies n device values to the host, after everything queued before; waits for it.
  template <typename T>
  void download(const T* src, std::span<T> host) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (host.empty()) return;
    std::byte* p = readback_.reserve(host.size_bytes());
    SCOREOOD_CUDA_CHECK(cudaMemcpyAsync(p, src, host.size_bytes(), cudaMemcpyDeviceToHost, stream()));
    synchronize();
    std::memcpy(host.data(), p, host.size_bytes());
  }

  /// The noise-level index of every sample on the device. The last upload is kept: the
  /// norms of one network pass share one span, which then crosses once.
  const int* levels(std::span<const int> host) {
    if (host.empty()) return nullptr;
    if (levels_dev_.size() >= host.size() && last_levels_.size() == host.size() &&
        std::equal(host.begin(), host.end(), last_levels_.begin()))
      return levels_dev_.data();
    levels_dev_.reserve_discard(host.size());
    upload(host, levels_dev_.data());
    last_levels_.assign(host.begin(), host.end());
    return levels_dev_.data();
  }

 private:
  struct Staging {
    PinnedBuffer buffer;
    Event done;
    bool used = false;
  };

  struct DeviceCheck {
    DeviceCheck() { require_device("gpu::Context"); }
  } check_;        // before anything touches the driver: a readable error without a GPU
  Stream stream_{cudaStreamDefault};  // destroyed after everything that runs on it
  Convolution conv_;
  std::array<DeviceBuffer<std::byte>, std::size_t(Scratch::count_)> scratch_;
  std::array<Staging, 4> staging_;
  std::size_t next_ = 0;
  PinnedBuffer readback_;
  DeviceBuffer<int> levels_dev_;
  std::vector<int> last_levels_;
};

}  // namespace scoreood::gpu
