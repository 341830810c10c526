/** @file ema.hpp
 *  @brief Exponential moving average of all parameters (NCSNv2's EMA helper).
 *
 *  shadow = rate * shadow + (1 - rate) * value after each optimiser step;
 *  evaluation then uses the shadow weights (copy_to, or swap to evaluate and
 *  swap back to continue training). */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/nn/parameter.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace scoreood::nn {

/// Shadow copy of a store's values.
/// @tparam T value type of the store.
/// @tparam B backend tag: the shadow lives in its memory.
template <class T, class B = backend::cpu>
class Ema {
  static constexpr bool on_host = std::is_same_v<B, backend::cpu>;
  using Ops = backend::ops<B>;

 public:
  using Context = backend::context_t<B>;

  /// Starts the shadow at the store's current values.
  explicit Ema(const ParameterStore<T, B>& store, double rate = 0.999) : rate_(rate) {
    if (!(rate >= 0 && rate < 1)) throw ValueError("Ema: rate must be in [0, 1), got " + std::to_string(rate));
    set_shadow(store.to_host());
  }

  /// shadow = rate * shadow + (1 - rate) * value, in the backend's context.
  void update(Context& ctx, const ParameterStore<T, B>& store) {
    if constexpr (on_host) {
      update(store);
    } else {
      check(store.count(), "update");
      Ops::ema_update(ctx, shadow_.data(), store.value_data(), shadow_.size(), rate_);
      ++updates_;
    }
  }
  /// Overwrites the store's values with the shadow, in the backend's context.
  void copy_to(Context& ctx, ParameterStore<T, B>& store) const {
    check(store.count(), "copy_to");
    if constexpr (on_host) copy_to(store);
    else Ops::copy_n(ctx, shadow_.data(), store.value_data(), shadow_.size());
  }

  /// shadow = rate * shadow + (1 - rate) * value.
  void update(const ParameterStore<T, B>& store)
    requires on_host
  {
    check(store.count(), "update");
    const T a = T(rate_), b = T(1.0 - rate_);
    const T* p = store.value_data();
    T* s = shadow_.data();
    const std::ptrdiff_t n = std::ptrdiff_t(shadow_.size());
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < n; ++i) s[i] = a * s[i] + b * p[i];
    ++updates_;
  }

  /// Overwrites the store's values with the shadow (for evaluation or export).
  void copy_to(ParameterStore<T, B>& store) const
    requires on_host
  {
    check(store.count(), "copy_to");
    std::copy(shadow_.begin(), shadow_.end(), store.value_data());
  }

  /// Exchanges shadow and live values: call once to evaluate with the EMA
  /// weights and once more to resume training where it was.
  void swap_with(ParameterStore<T, B>& store)
    requires on_host
  {
    check(store.count(), "swap_with");
    std::swap_ranges(shadow_.begin(), shadow_.end(), store.value_data());
  }

  /// Restarts the shadow at the store's current values.
  void reset(const ParameterStore<T, B>& store) {
    set_shadow(store.to_host());
    updates_ = 0;
  }

  double rate() const { return rate_; }
  void set_rate(double r) {
    if (!(r >= 0 && r < 1)) throw ValueError("Ema: rate must be in [0, 1), got " + std::to_string(r));
    rate_ = r;
  }
  std::uint64_t updates() const { return updates_; }
  std::span<const T> shadow() const
    requires on_host
  { return shadow_; }

  void save(io::ByteWriter& w) const {
    w.put_string("ema");
    w.put<std::uint32_t>(sizeof(T));
    w.put<double>(rate_);
    w.put<std::uint64_t>(updates_);
    if constexpr (on_host) w.put_vector(shadow_);
    else w.put_vector(shadow_.to_host());
  }

  /// Reads what save() wrote; the shadow must have this store's size.
  void load(io::ByteReader& r) {
    const std::string tag = r.get_string(64);
    r.expect(tag == "ema", "expected EMA state, found '" + tag + "'");
    const auto width = r.get<std::uint32_t>();
    r.expect(width == sizeof(T), "EMA state stored with " + std::to_string(width) + "-byte values, expected " +
                                     std::to_string(sizeof(T)));
    const double rate = r.get<double>();
    r.expect(rate >= 0 && rate < 1, "EMA rate " + std::to_string(rate) + " is outside [0, 1)");
    const auto updates = r.get<std::uint64_t>();
    std::vector<T> s(shadow_.size());
    r.get_into(std::span<T>(s), "EMA shadow");
    rate_ = rate;
    updates_ = updates;
    set_shadow(std::move(s));
  }

 private:
  void set_shadow(std::vector<T> s) {
    if constexpr (on_host) shadow_ = std::move(s);
    else shadow_ = backend::storage_t<B, T>(std::span<const T>(s));
  }
  void check(std::size_t n, const char* what) const {
    if (n != shadow_.size())
      throw ShapeError(std::string("Ema::") + what + ": the store has " + std::to_string(n) +
                       " values, the shadow " + std::to_string(shadow_.size()));
  }

  double rate_;
  backend::storage_t<B, T> shadow_;
  std::uint64_t updates_ = 0;
};

}  // namespace scoreood::nn
