/** @file parameter.hpp
 *  @brief All trainable parameters of a network in one flat buffer.
 *
 *  Layers register their tensors with a ParameterStore and keep a ParamRef
 *  (offset + size). Values and gradients are two contiguous arrays, so Adam,
 *  EMA, gradient clipping, checkpoints and (later) device copies are single
 *  loops or single copies over the whole network. */
#pragma once
#include <scoreood/core/error.hpp>

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace scoreood::nn {

template <class T>
class ParameterStore;

/// A named tensor inside a ParameterStore. Resolve pointers on use: they move
/// while layers are still being registered.
template <class T>
struct ParamRef {
  ParameterStore<T>* store = nullptr;
  std::size_t offset = 0;
  std::size_t size = 0;

  T* value() const { return store->value_data() + offset; }
  T* grad() const { return store->grad_data() + offset; }
  std::span<T> values() const { return {value(), size}; }
  std::span<T> grads() const { return {grad(), size}; }
};

template <class T>
class ParameterStore {
 public:
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

  /// Registers a zero-initialised tensor; names must be unique.
  ParamRef<T> add(std::string name, std::vector<std::size_t> shape) {
    for (const auto& e : entries_)
      if (e.name == name) throw Error("parameter '" + name + "' registered twice");
    const std::size_t n = std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>());
    const std::size_t off = values_.size();
    entries_.push_back({std::move(name), std::move(shape), off, n});
    values_.resize(off + n, T(0));
    grads_.resize(off + n, T(0));
    return {this, off, n};
  }

  void zero_grad() { std::fill(grads_.begin(), grads_.end(), T(0)); }

  std::size_t count() const { return values_.size(); }
  const std::vector<Entry>& entries() const { return entries_; }
  T* value_data() { return values_.data(); }
  T* grad_data() { return grads_.data(); }
  const T* value_data() const { return values_.data(); }
  const T* grad_data() const { return grads_.data(); }
  std::span<T> values() { return values_; }
  std::span<T> grads() { return grads_; }
  std::span<const T> values() const { return values_; }
  std::span<const T> grads() const { return grads_; }

 private:
  std::vector<Entry> entries_;
  std::vector<T> values_;
  std::vector<T> grads_;
};

}  // namespace scoreood::nn
