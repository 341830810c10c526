/** @file memory.cuh
 *  @brief RAII owners for device memory, streams and events, host<->device
 *  copies, and device_count() that reports 0 (never throws) on a machine
 *  without a usable GPU or driver. */
#pragma once
#include <scoreood/cuda/error.cuh>

#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace scoreood::gpu {

/// Number of usable CUDA devices; 0 when there is no GPU, no driver, or the
/// driver is older than the runtime. Clears the (non-sticky) error it caused.
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

/// Throws CudaError with a readable message when no device is usable.
inline void require_device(const char* who) {
  if (device_count() == 0) throw CudaError(std::string(who) + ": no CUDA device is available");
}

/// An owning CUDA stream: non-blocking with respect to the legacy default stream unless
/// created with cudaStreamDefault (then work on the default stream, such as DeviceBuffer's
/// synchronous copies and zero(), is ordered with this stream's work).
class Stream {
 public:
  explicit Stream(unsigned flags = cudaStreamNonBlocking) { SCOREOOD_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, flags)); }
  ~Stream() {
    if (s_) (void)cudaStreamDestroy(s_);  // never throw from a destructor
  }
  Stream(Stream&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    if (this != &o) {
      if (s_) (void)cudaStreamDestroy(s_);
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t get() const noexcept { return s_; }
  operator cudaStream_t() const noexcept { return s_; }
  void synchronize() const { SCOREOOD_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

/// An owning CUDA event, for timing (benchmarks) and ordering streams.
class Event {
 public:
  Event() { SCOREOOD_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() {
    if (e_) (void)cudaEventDestroy(e_);
  }
  Event(Event&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
  Event& operator=(Event&& o) noexcept {
    if (this != &o) {
      if (e_) (void)cudaEventDestroy(e_);
      e_ = std::exchange(o.e_, nullptr);
    }
    return *this;
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  cudaEvent_t get() const noexcept { return e_; }
  void record(cudaStream_t s = nullptr) { SCOREOOD_CUDA_CHECK(cudaEventRecord(e_, s)); }
  void synchronize() const { SCOREOOD_CUDA_CHECK(cudaEventSynchronize(e_)); }
  /// Milliseconds from `start` to this event (both recorded and completed).
  float elapsed_ms_since(const Event& start) const {
    float ms = 0.0f;
    SCOREOOD_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
    return ms;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

/// An owning array of `T` in device memory (cudaMalloc, never managed memory).
/// Contents are uninitialised after construction/resize. Move-only.
/// @tparam T a trivially copyable element type.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { allocate(n); }
  /// Allocates and copies `host` (synchronous).
  explicit DeviceBuffer(std::span<const T> host) {
    allocate(host.size());
    copy_from_host(host);
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(std::span<const T>(host)) {}
  ~DeviceBuffer() { release(); }

  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() noexcept { return p_; }
  const T* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  std::size_t bytes() const noexcept { return n_ * sizeof(T); }
  bool empty() const noexcept { return n_ == 0; }

  /// Reallocates to exactly `n` elements when the size differs; contents are lost.
  void resize_discard(std::size_t n) {
    if (n == n_) return;
    release();
    allocate(n);
  }
  /// Grows (discarding contents) only when fewer than `n` elements are held:
  /// the reuse pattern of a workspace.
  void reserve_discard(std::size_t n) {
    if (n > n_) resize_discard(n);
  }

  /// Synchronous copy of exactly size() elements from the host.
  void copy_from_host(std::span<const T> host) {
    check_size(host.size(), "copy_from_host");
    if (n_) SCOREOOD_CUDA_CHECK(cudaMemcpy(p_, host.data(), bytes(), cudaMemcpyHostToDevice));
  }
  /// Synchronous copy of exactly size() elements to the host.
  void copy_to_host(std::span<T> host) const {
    check_size(host.size(), "copy_to_host");
    if (n_) SCOREOOD_CUDA_CHECK(cudaMemcpy(host.data(), p_, bytes(), cudaMemcpyDeviceToHost));
  }
  /// Asynchronous copies on `stream` (the host memory must outlive them).
  void copy_from_host_async(std::span<const T> host, cudaStream_t stream) {
    check_size(host.size(), "copy_from_host_async");
    if (n_) SCOREOOD_CUDA_CHECK(cudaMemcpyAsync(p_, host.data(), bytes(), cudaMemcpyHostToDevice, stream));
  }
  void copy_to_host_async(std::span<T> host, cudaStream_t stream) const {
    check_size(host.size(), "copy_to_host_async");
    if (n_) SCOREOOD_CUDA_CHECK(cudaMemcpyAsync(host.data(), p_, bytes(), cudaMemcpyDeviceToHost, stream));
  }
  /// Everything, back on the host (synchronous).
  std::vector<T> to_host() const {
    std::vector<T> out(n_);
    copy_to_host(out);
    return out;
  }
  /// All bytes zero (0.0 for floating point) on `stream`.
  void zero(cudaStream_t stream = nullptr) {
    if (n_) SCOREOOD_CUDA_CHECK(cudaMemsetAsync(p_, 0, bytes(), stream));
  }

 private:
  void allocate(std::size_t n) {
    if (n == 0) return;
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T))
      throw ValueError("DeviceBuffer: " + std::to_string(n) + " elements overflow the byte count");
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, n * sizeof(T));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      throw CudaError("cudaMalloc of " + std::to_string(n * sizeof(T)) + " bytes failed: " + cudaGetErrorName(e) +
                      " (" + cudaGetErrorString(e) + ")");
    }
    p_ = static_cast<T*>(p);
    n_ = n;
  }
  void release() noexcept {
    if (p_) (void)cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  void check_size(std::size_t n, const char* who) const {
    if (n != n_)
      throw ShapeError(std::string("DeviceBuffer::") + who + ": host span has " + std::to_string(n) +
                       " elements, buffer has " + std::to_string(n_));
  }

  T* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace scoreood::gpu
