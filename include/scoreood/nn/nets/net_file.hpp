/** @file net_file.hpp
 *  @brief The header every score network writes before its parameters: its
 *  name and four sizes (channels, image size, width, noise levels). */
#pragma once
#include <scoreood/core/serialization.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace scoreood::nn::detail {

/// The sizes a network file records; `width` is SmallUNet's width or NCSN's ngf.
struct NetSizes {
  std::uint64_t channels = 0, image_size = 0, width = 0, num_levels = 0;
};

inline void write_net_header(io::ByteWriter& w, std::string_view name, const NetSizes& s) {
  w.put_string(std::string(name));
  w.put<std::uint64_t>(s.channels);
  w.put<std::uint64_t>(s.image_size);
  w.put<std::uint64_t>(s.width);
  w.put<std::uint64_t>(s.num_levels);
}

/// Reads what write_net_header() wrote; a file of another network fails naming both.
inline NetSizes read_net_header(io::ByteReader& r, std::string_view name) {
  const std::string n = r.get_string(64);
  if (n != name) r.fail("holds a '" + n + "' network, expected '" + std::string(name) + "'");
  NetSizes s;
  s.channels = r.get<std::uint64_t>();
  s.image_size = r.get<std::uint64_t>();
  s.width = r.get<std::uint64_t>();
  s.num_levels = r.get<std::uint64_t>();
  return s;
}

}  // namespace scoreood::nn::detail
