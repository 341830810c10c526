/** @file parameter.hpp
 *  @brief All trainable parameters of a network in one flat buffer, in the
 *  memory of its backend.
 *
 *  Layers register their tensors with a ParameterStore and keep a ParamRef
 *  (offset + size). Values and gradients are two contiguous arrays, so Adam,
 *  EMA, gradient clipping, checkpoints and host/device copies are single loops
 *  or single copies over the whole network.
 *
 *  Registration and initialisation happen on the host: a layer writes its
 *  initial values through ParamRef::host(), and the network calls finalize()
 *  once every layer is built. On the CPU the host values are the values; on
 *  another backend finalize() uploads them (one allocation, one copy) and
 *  value()/grad() then point into its memory. Files and the optimiser state go
 *  through to_host()/from_host(), so a checkpoint moves between backends. */
#pragma once
#include <scoreood/core/backend.hpp>
#include <scoreood/core/error.hpp>

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace scoreood::nn {

template <class T, class B = backend::cpu>
class ParameterStore;

/// A named tensor inside a ParameterStore. Resolve pointers on use: they move
/// while layers are still being registered.
template <class T, class B = backend::cpu>
struct ParamRef {
  ParameterStore<T, B>* store = nullptr;
  std::size_t offset = 0;
  std::size_t size = 0;

  T* value() const { return store->value_data() + offset; }  ///< in the backend's memory
  T* grad() const { return store->grad_data() + offset; }    ///< in the backend's memory
  /// The initial values, on the host, until the store is finalised (on the CPU: always the values).
  T* host() const { return store->host_data() + offset; }
  std::span<T> values() const
    requires std::is_same_v<B, backend::cpu>
  { return {value(), size}; }
  std::span<T> grads() const
    requires std::is_same_v<B, backend::cpu>
  { return {grad(), size}; }
};

template <class T, class B>
class ParameterStore {
  static constexpr bool on_host = std::is_same_v<B, backend::cpu>;

 public:
  using backend_type = B;
  struct Entry {
    std::string name;
    std::vector<std::size_t> shape;
    std::size_t offset;
    std::size_t size;
  };

  ParameterStore() = default;
  // Layers hold pointers to their store: it must not move or be copied.
  ParameterStore(const ParameterStore&) = delete;
  ParameterStore& operator=(const ParameterStore&) = delete;

  /// Registers a zero-initialised tensor; names must be unique. Only before finalize().
  ParamRef<T, B> add(std::string name, std::vector<std::size_t> shape) {
    if (finalized_) throw Error("parameter '" + name + "' registered after the store was finalised");
    for (const auto& e : entries_)
      if (e.name == name) throw Error("parameter '" + name + "' registered twice");
    const std::size_t n = std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>());
    const std::size_t off = host_.size();
    entries_.push_back({std::move(name), std::move(shape), off, n});
    host_.resize(off + n, T(0));
    if constexpr (on_host) grads_.resize(off + n, T(0));
    return {this, off, n};
  }

  /// Ends registration: on a device backend the initial values move to its memory (gradients zero).
  void finalize() {
    if (finalized_) return;
    if constexpr (!on_host) {
      values_ = storage_t(std::span<const T>(host_));
      grads_ = storage_t(host_.size());
      grads_.zero();
      host_.clear();
      host_.shrink_to_fit();
    }
    finalized_ = true;
  }
  bool finalized() const { return finalized_; }

  void zero_grad() {
    if constexpr (on_host) std::fill(grads_.begin(), grads_.end(), T(0));
    else grads_.zero();
  }

  std::size_t count() const { return entries_.empty() ? 0 : entries_.back().offset + entries_.back().size; }
  const std::vector<Entry>& entries() const { return entries_; }
  /// Values and gradients in the backend's memory.
  T* value_data() { return on_host ? host_.data() : values_.data(); }
  T* grad_data() { return grads_.data(); }
  const T* value_data() const { return on_host ? host_.data() : values_.data(); }
  const T* grad_data() const { return grads_.data(); }
  /// The host values before finalize() (after it, on the CPU only).
  T* host_data() {
    if (!on_host && finalized_) throw Error("ParameterStore: host() after finalize() on a device backend");
    return host_.data();
  }

  /// All values, on the host (a copy).
  std::vector<T> to_host() const {
    if constexpr (on_host) return host_;
    else return finalized_ ? values_.to_host() : host_;
  }
  /// Overwrites all values from the host.
  void from_host(std::span<const T> v) {
    if (v.size() != count())
      throw ShapeError("ParameterStore::from_host: " + std::to_string(v.size()) + " values for " +
                       std::to_string(count()) + " parameters");
    if constexpr (!on_host) {
      if (finalized_) {
        values_.copy_from_host(v);
        return;
      }
    }
    std::copy(v.begin(), v.end(), host_.begin());
  }

  /// The values and gradients as spans (host memory: the CPU backend only).
  std::span<T> values()
    requires on_host
  { return host_; }
  std::span<T> grads()
    requires on_host
  { return grads_; }
  std::span<const T> values() const
    requires on_host
  { return host_; }
  std::span<const T> grads() const
    requires on_host
  { return grads_; }

 private:
  using storage_t = backend::storage_t<B, T>;
  std::vector<Entry> entries_;
  std::vector<T> host_;  ///< the values on the CPU; the initial values elsewhere, until finalize()
  std::conditional_t<on_host, std::vector<T>, storage_t> values_{};  ///< unused on the CPU
  storage_t grads_{};
  bool finalized_ = false;
};

}  // namespace scoreood::nn
