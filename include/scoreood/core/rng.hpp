/** @file rng.hpp
 *  @brief Counter-based random numbers (Philox 4x32-10, Salmon et al. 2011).
 *
 *  Every number is a pure function of (seed, stream, index), so a batch is
 *  bit-identical at any thread count and on the GPU (the same functions are
 *  SCOREOOD_HOST_DEVICE). Streams separate independent uses (noise, sigma
 *  indices, group elements, shuffles) and training steps. */
#pragma once
#include <scoreood/config.hpp>

#include <cmath>
#include <cstdint>

namespace scoreood {

struct Philox4x32 {
  std::uint32_t v[4];
};

/// One Philox 4x32-10 block: 128 random bits for a 128-bit counter and 64-bit key.
SCOREOOD_HOST_DEVICE inline Philox4x32 philox4x32(Philox4x32 ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t(M0) * ctr.v[0];
    const std::uint64_t p1 = std::uint64_t(M1) * ctr.v[2];
    const std::uint32_t hi0 = std::uint32_t(p0 >> 32), lo0 = std::uint32_t(p0);
    const std::uint32_t hi1 = std::uint32_t(p1 >> 32), lo1 = std::uint32_t(p1);
    ctr = Philox4x32{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

/// 24 random bits to a float in the open interval (0, 1): never 0, so log() is safe.
SCOREOOD_HOST_DEVICE inline float bits_to_open_unit(std::uint32_t x) {
  return (float(x >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

/// A stream of random numbers addressed by index. Cheap to copy; stateless.
class CounterRng {
 public:
  SCOREOOD_HOST_DEVICE constexpr CounterRng(std::uint64_t seed = 0, std::uint64_t stream = 0)
      : seed_(seed), stream_(stream) {}

  /// A derived stream (for example one per training step and purpose).
  SCOREOOD_HOST_DEVICE constexpr CounterRng substream(std::uint64_t id) const {
    return CounterRng(seed_, stream_ * 0x9E3779B97F4A7C15ull + id + 1);
  }

  SCOREOOD_HOST_DEVICE Philox4x32 block(std::uint64_t i) const {
    Philox4x32 ctr{{std::uint32_t(i), std::uint32_t(i >> 32), std::uint32_t(stream_), std::uint32_t(stream_ >> 32)}};
    return philox4x32(ctr, std::uint32_t(seed_), std::uint32_t(seed_ >> 32));
  }

  /// Uniform float in (0, 1) for element i.
  SCOREOOD_HOST_DEVICE float uniform(std::uint64_t i) const { return bits_to_open_unit(block(i).v[0]); }

  /// Uniform integer in [0, n) for element i (n > 0; bias below 2^-32 * n).
  SCOREOOD_HOST_DEVICE std::uint32_t uniform_int(std::uint64_t i, std::uint32_t n) const {
    const Philox4x32 b = block(i);
    const std::uint64_t wide = (std::uint64_t(b.v[1]) << 32) | b.v[0];
    return std::uint32_t(wide % n);
  }

  /// Standard normal for element i: Box-Muller on block(i / 2), cos for even i,
  /// sin for odd i. Computed in double then rounded so CPU and GPU agree.
  SCOREOOD_HOST_DEVICE float normal(std::uint64_t i) const {
    const Philox4x32 b = block(i >> 1);
    const double u1 = (double(b.v[0]) + 0.5) * (1.0 / 4294967296.0);
    const double u2 = (double(b.v[1]) + 0.5) * (1.0 / 4294967296.0);
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double t = 6.283185307179586476925 * u2;
    return float((i & 1) ? r * std::sin(t) : r * std::cos(t));
  }

  SCOREOOD_HOST_DEVICE constexpr std::uint64_t seed() const { return seed_; }
  SCOREOOD_HOST_DEVICE constexpr std::uint64_t stream() const { return stream_; }

 private:
  std::uint64_t seed_;
  std::uint64_t stream_;
};

}  // namespace scoreood
