/** @file tensor.cuh
 *  @brief gpu::DeviceTensor4<T>: an NCHW tensor in device memory, the CUDA
 *  backend's tensor_t (a DeviceBuffer plus a Shape4).
 *
 *  resize() only reallocates when the new shape needs more elements than the
 *  buffer holds (contents are then lost); a smaller or equal shape keeps the
 *  buffer and its pointer, so layers that alternate between batch sizes do
 *  not allocate in the steady state. Move-only, like DeviceBuffer: a copy
 *  would need a stream (ops<cuda>::copy does it on the context's). */
#pragma once
#include <scoreood/core/tensor.hpp>
#include <scoreood/cuda/memory.cuh>

#include <cstddef>
#include <limits>
#include <string>
#include <utility>

namespace scoreood::gpu {

namespace detail {
/// Number of elements of a shape; throws on overflow instead of wrapping.
inline std::size_t shape_elements(const Shape4& s) {
  std::size_t n = 1;
  for (std::size_t d : s) {
    if (d != 0 && n > std::numeric_limits<std::size_t>::max() / d)
      throw ShapeError("DeviceTensor4: shape " + to_string(s) + " overflows the element count");
    n *= d;
  }
  return n;
}
}  // namespace detail

/// An NCHW tensor on the device. @tparam T a trivially copyable element type.
template <typename T>
class DeviceTensor4 {
 public:
  using value_type = T;

  DeviceTensor4() = default;
  explicit DeviceTensor4(const Shape4& s) { resize(s); }

  /// The moved-from tensor is left empty, shape [0, 0, 0, 0].
  DeviceTensor4(DeviceTensor4&& o) noexcept
      : buf_(std::move(o.buf_)), shape_(std::exchange(o.shape_, Shape4{})), size_(std::exchange(o.size_, 0)) {}
  DeviceTensor4& operator=(DeviceTensor4&& o) noexcept {
    if (this != &o) {
      buf_ = std::move(o.buf_);
      shape_ = std::exchange(o.shape_, Shape4{});
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  DeviceTensor4(const DeviceTensor4&) = delete;
  DeviceTensor4& operator=(const DeviceTensor4&) = delete;

  /// Takes the shape s; reallocates (contents lost) only when s needs more than capacity().
  void resize(const Shape4& s) {
    const std::size_t n = detail::shape_elements(s);
    buf_.reserve_discard(n);
    shape_ = s;
    size_ = n;
  }

  const Shape4& shape() const noexcept { return shape_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  /// Elements the buffer holds (>= size()).
  std::size_t capacity() const noexcept { return buf_.size(); }
  T* data() noexcept { return buf_.data(); }
  const T* data() const noexcept { return buf_.data(); }
  std::size_t bytes() const noexcept { return size_ * sizeof(T); }

  /// Frees the memory; the shape becomes [0, 0, 0, 0].
  void clear() noexcept {
    buf_ = DeviceBuffer<T>();
    shape_ = {};
    size_ = 0;
  }

 private:
  DeviceBuffer<T> buf_;
  Shape4 shape_{};
  std::size_t size_ = 0;
};

/// The shape of a device tensor (found by argument-dependent lookup beside scoreood::shape_of).
template <typename T>
Shape4 shape_of(const DeviceTensor4<T>& t) {
  return t.shape();
}

}  // namespace scoreood::gpu
