/** @file load.hpp
 *  @brief One entry point for every dataset a command line names:
 *  `PATH[:gray28][:first=N]`, format detected by content. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/data/cifar.hpp>
#include <scoreood/data/dataset.hpp>
#include <scoreood/data/find.hpp>
#include <scoreood/data/idx.hpp>
#include <scoreood/data/input_file.hpp>
#include <scoreood/data/transforms.hpp>

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

namespace scoreood::data {

/// A parsed `PATH[:gray28][:first=N]` (options in any order after the path).
struct LoadSpec {
  std::string path;
  bool gray28 = false;
  std::optional<std::size_t> first;
};

inline LoadSpec parse_load_spec(std::string_view spec) {
  LoadSpec s;
  std::string_view rest = spec;
  for (;;) {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) break;
    const std::string_view opt = rest.substr(colon + 1);
    if (opt == "gray28") {
      s.gray28 = true;
    } else if (opt.starts_with("first=")) {
      const std::string_view num = opt.substr(6);
      std::size_t n = 0;
      const auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
      if (num.empty() || ec != std::errc() || p != num.data() + num.size())
        throw ValueError("dataset spec '" + std::string(spec) + "': first=" + std::string(num) +
                         " is not a non-negative integer");
      s.first = n;
    } else if (opt.find('/') == std::string_view::npos && opt.find('.') == std::string_view::npos) {
      throw ValueError("dataset spec '" + std::string(spec) + "': unknown option '" + std::string(opt) +
                       "' (valid: gray28, first=N)");
    } else {
      break;  // a colon inside the path itself
    }
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) throw ValueError("dataset spec '" + std::string(spec) + "': no path");
  s.path = std::string(rest);
  return s;
}

/// Loads `PATH[:gray28][:first=N]`. PATH is resolved with find_data(); IDX is
/// recognised by its magic, CIFAR binary by a `.bin`/`.bin.gz` name. `:gray28`
/// converts to gray and resizes to 28×28 (CIFAR as far-OOD for Fashion-MNIST);
/// `:first=N` keeps the first N images.
inline Dataset load(std::string_view spec) {
  const LoadSpec s = parse_load_spec(spec);
  const std::filesystem::path path = find_data(s.path);
  unsigned char head[4] = {0, 0, 0, 0};
  std::size_t got = 0;
  {
    detail::InputFile f(path);
    got = f.read(head, 4);
  }
  Dataset d;
  if (got == 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08) {
    if (head[3] == 1)
      throw FormatError(path.string() + ": is an IDX label file; give the images file (labels are found beside it)");
    d = load_idx(path);
  } else if (path.filename().string().find(".bin") != std::string::npos) {
    d = load_cifar(path);
  } else {
    throw FormatError(path.string() + ": unknown dataset format (not IDX by its magic number, and not a CIFAR .bin/.bin.gz)");
  }
  if (s.first) d = first_n(d, *s.first);
  if (s.gray28) d.images = resize_bilinear(to_grayscale(d.images), 28, 28);
  d.source = std::string(spec);
  return d;
}

}  // namespace scoreood::data
