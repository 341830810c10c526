/** @file net_file.hpp
 *  @brief The header every score network writes before its parameters: its
 *  name and four sizes (channels, image size, width, noise levels), and the
 *  bounds every network applies to them.
 *
 *  A file is untrusted: a network's load() checks each size against
 *  NetLimits and the parameter count those sizes imply (computed without
 *  building anything) against the bytes left in the file, so a header that
 *  claims a huge network is refused before a single large allocation. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <string_view>

namespace scoreood::nn::detail {

/// Sane upper bounds on network sizes, far above anything trained here
/// (Fashion-MNIST 1 x 28, CIFAR 3 x 32, width 32..128, 10 levels).
struct NetLimits {
  static constexpr std::uint64_t max_channels = 64;
  static constexpr std::uint64_t max_image_size = 1024;
  static constexpr std::uint64_t max_width = 4096;
  static constexpr std::uint64_t max_levels = 10000;
};

/// Throws ValueError("<net>: <field> <value> is outside [lo, hi]") unless lo <= value <= hi.
inline void check_net_size(std::string_view net, std::string_view field, std::uint64_t value, std::uint64_t lo,
                           std::uint64_t hi) {
  if (value < lo || value > hi)
    throw ValueError(std::string(net) + ": " + std::string(field) + " " + std::to_string(value) + " is outside [" +
                     std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

/// Refuses a file whose remaining bytes cannot hold `count` parameter values
/// (4 bytes each at least: float files are the smallest), before the network is built.
inline void expect_parameters_fit(io::ByteReader& r, std::string_view what, std::uint64_t count) {
  r.expect_remaining(count * 4, std::string(what) + " with " + std::to_string(count) + " parameters");
}

/// The sizes a network file records; `width` is SmallUNet's width or NCSN's ngf.
struct NetSizes {
  std::uint64_t channels = 0, image_size = 0, width = 0, num_levels = 0;

  bool operator==(const NetSizes&) const = default;
  /// "channels 1, image size 28, width 32, levels 10" (width: SmallUNet's width or NCSN's ngf).
  std::string str() const {
    return "channels " + std::to_string(channels) + ", image size " + std::to_string(image_size) + ", width " +
           std::to_string(width) + ", levels " + std::to_string(num_levels);
  }
};

inline void write_net_header(io::ByteWriter& w, std::string_view name, const NetSizes& s) {
  w.put_string(std::string(name));
  w.put<std::uint64_t>(s.channels);
  w.put<std::uint64_t>(s.image_size);
  w.put<std::uint64_t>(s.width);
  w.put<std::uint64_t>(s.num_levels);
}

/// Reads what write_net_header() wrote, whichever network it names.
inline std::pair<std::string, NetSizes> read_net_header_any(io::ByteReader& r) {
  std::string n = r.get_string(64);
  NetSizes s;
  s.channels = r.get<std::uint64_t>();
  s.image_size = r.get<std::uint64_t>();
  s.width = r.get<std::uint64_t>();
  s.num_levels = r.get<std::uint64_t>();
  return {std::move(n), s};
}

/// Reads what write_net_header() wrote; a file of another network fails naming both.
inline NetSizes read_net_header(io::ByteReader& r, std::string_view name) {
  auto [n, s] = read_net_header_any(r);
  if (n != name) r.fail("holds a '" + n + "' network, expected '" + std::string(name) + "'");
  return s;
}

}  // namespace scoreood::nn::detail
