/** @file counter_hash.hpp
 *  @brief The counter hash the PyTorch reference scripts fill parameters and
 *  inputs with (test helper; tests/reference/make_ncsn_refs.py, hash_uniform):
 *  u = (splitmix64((stream << 32) + j) >> 11) * 2^-53, in [0, 1). */
#pragma once
#include <cstdint>

namespace scoreood::testing {

inline std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Element j of hash stream `stream`, uniform in [0, 1).
inline double hash_u(std::uint64_t stream, std::uint64_t j) {
  return double(splitmix64((stream << 32) + j) >> 11) * 0x1p-53;
}

}  // namespace scoreood::testing
