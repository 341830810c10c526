/** @file spec.hpp
 *  @brief A dataset spec `PATH[:option]...` as command lines give it, and the
 *  LoadOptions a program adds (the model's channels and image size, skip_bad).
 *
 *  Options, in any order after the path: `gray28` (gray, 28×28), `gray`,
 *  `rgb`, `size=N` (N×N), `skip=N` (leave out the first N images), `first=N`
 *  (then keep the first N: `skip=5000:first=1000` is images 5000-5999),
 *  `recursive` (folders). A trailing
 *  `:text` that contains '/' or '.' belongs to the path (`/a/b:c/file.bin`). */
#pragma once
#include <scoreood/core/error.hpp>

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

namespace scoreood::data {

/// A parsed `PATH[:gray28][:gray|:rgb][:size=N][:skip=N][:first=N][:recursive]`.
struct LoadSpec {
  std::string path;
  bool gray28 = false;               ///< gray and 28×28 (CIFAR as far-OOD for Fashion-MNIST)
  std::size_t skip = 0;              ///< leave out the first N images (files, for folders and lists)
  std::optional<std::size_t> first;  ///< then keep the first N
  std::optional<std::size_t> size;   ///< resize to N×N
  std::size_t channels = 0;          ///< 1 for `gray`, 3 for `rgb`, 0 when not given
  bool recursive = false;            ///< a folder's subfolders too

  /// The channels the spec asks for (gray28 counts as gray), 0 for "as stored".
  std::size_t wanted_channels() const { return gray28 ? 1 : channels; }
  /// The side the spec resizes to (gray28 counts as 28), if any.
  std::optional<std::size_t> wanted_size() const { return gray28 ? std::optional<std::size_t>(28) : size; }
};

/// What a program adds to the user's spec: applied after the spec's own options
/// (`photos:gray` with channels = 3 gives gray photos replicated to RGB).
struct LoadOptions {
  std::size_t channels = 0;    ///< 1 or 3: convert every image (0: as the spec and the files give)
  std::size_t image_size = 0;  ///< resize every image to image_size × image_size (0: as the spec gives)
  bool skip_bad = false;       ///< image files that cannot be read are skipped and listed in Dataset::skipped
};

namespace detail {
inline std::size_t parse_spec_count(std::string_view spec, std::string_view name, std::string_view num) {
  std::size_t n = 0;
  const auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
  if (num.empty() || ec != std::errc() || p != num.data() + num.size())
    throw ValueError("dataset spec '" + std::string(spec) + "': " + std::string(name) + "=" + std::string(num) +
                     " is not a non-negative integer");
  return n;
}
}  // namespace detail

inline LoadSpec parse_load_spec(std::string_view spec) {
  LoadSpec s;
  const auto fail = [&](const std::string& what) -> void {
    throw ValueError("dataset spec '" + std::string(spec) + "': " + what);
  };
  bool seen_gray = false, seen_rgb = false, seen_skip = false;
  std::string_view rest = spec;
  for (;;) {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) break;
    const std::string_view opt = rest.substr(colon + 1);
    const auto once = [&](bool already) {
      if (already) fail("option '" + std::string(opt.substr(0, opt.find('='))) + "' given twice");
    };
    if (opt == "gray28") {
      once(s.gray28);
      s.gray28 = true;
    } else if (opt == "gray") {
      once(seen_gray);
      seen_gray = true;
    } else if (opt == "rgb") {
      once(seen_rgb);
      seen_rgb = true;
    } else if (opt == "recursive") {
      once(s.recursive);
      s.recursive = true;
    } else if (opt.starts_with("first=")) {
      once(s.first.has_value());
      s.first = detail::parse_spec_count(spec, "first", opt.substr(6));
    } else if (opt.starts_with("skip=")) {
      once(seen_skip);
      seen_skip = true;
      s.skip = detail::parse_spec_count(spec, "skip", opt.substr(5));
    } else if (opt.starts_with("size=")) {
      once(s.size.has_value());
      s.size = detail::parse_spec_count(spec, "size", opt.substr(5));
      if (*s.size == 0) fail("size=0: the size must be positive");
    } else if (opt.find('/') == std::string_view::npos && opt.find('.') == std::string_view::npos) {
      fail("unknown option '" + std::string(opt) + "' (valid: gray28, gray, rgb, size=N, skip=N, first=N, recursive)");
    } else {
      break;  // a colon inside the path itself
    }
    rest = rest.substr(0, colon);
  }
  if (seen_gray && seen_rgb) fail("gray and rgb contradict each other");
  if (s.gray28 && seen_rgb) fail("gray28 and rgb contradict each other");
  if (s.gray28 && s.size && *s.size != 28) fail("gray28 and size=" + std::to_string(*s.size) + " contradict each other");
  s.channels = seen_gray ? 1 : seen_rgb ? 3 : 0;
  if (rest.empty()) fail("no path");
  s.path = std::string(rest);
  return s;
}

/// The spec text that parse_load_spec() reads back as `s`.
inline std::string format_load_spec(const LoadSpec& s) {
  std::string out = s.path;
  if (s.recursive) out += ":recursive";
  if (s.gray28) out += ":gray28";
  if (s.channels == 1) out += ":gray";
  if (s.channels == 3) out += ":rgb";
  if (s.size) out += ":size=" + std::to_string(*s.size);
  if (s.skip) out += ":skip=" + std::to_string(s.skip);
  if (s.first) out += ":first=" + std::to_string(*s.first);
  return out;
}

}  // namespace scoreood::data
