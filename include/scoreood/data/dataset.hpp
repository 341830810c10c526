/** @file dataset.hpp
 *  @brief A labelled batch of images, the files it came from, and the
 *  `first_n` / `drop_first` subset helpers. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace scoreood::data {

/// An image file that could not be read and was left out (LoadOptions::skip_bad).
struct SkippedFile {
  std::string path;
  std::string reason;  ///< the FormatError's message (it names the file too)
};

/// Images (float NCHW in [0, 1], pixel / 255), their labels (may be empty:
/// OOD sets and transformed copies need none) and where they came from.
/// `paths` holds one file per image for folders and lists (empty for IDX and
/// CIFAR); `skipped` the files left out by skip_bad, in dataset order.
struct Dataset {
  Images images;
  std::vector<int> labels;
  std::string source;
  std::vector<std::string> paths;
  std::vector<SkippedFile> skipped;

  std::size_t size() const { return images.shape()[0]; }
};

/// The first min(n, size) images of `x` (a copy).
inline Images first_n(const Images& x, std::size_t n) {
  const auto s = shape_of(x);
  n = std::min(n, s[0]);
  Images out = Images::from_shape({n, s[1], s[2], s[3]});
  std::copy_n(x.data(), n * s[1] * s[2] * s[3], out.data());
  return out;
}

/// The first min(n, size) images, labels and paths of `d`; the source notes the
/// cut. `skipped` is kept whole: it reports how `d` was read.
inline Dataset first_n(const Dataset& d, std::size_t n) {
  Dataset out;
  out.images = first_n(d.images, n);
  const std::size_t k = out.images.shape()[0];
  out.labels.assign(d.labels.begin(), d.labels.begin() + static_cast<std::ptrdiff_t>(std::min(k, d.labels.size())));
  out.paths.assign(d.paths.begin(), d.paths.begin() + static_cast<std::ptrdiff_t>(std::min(k, d.paths.size())));
  out.skipped = d.skipped;
  out.source = d.source + ":first=" + std::to_string(n);
  return out;
}

/// `d` without its first n images, labels and paths (n < size; else ValueError:
/// a spec's `skip=N` that leaves nothing is a mistake, not an empty set).
inline Dataset drop_first(const Dataset& d, std::size_t n) {
  const auto s = shape_of(d.images);
  if (n >= s[0])
    throw ValueError(d.source + ": skip=" + std::to_string(n) + " leaves no image (the set has " +
                     std::to_string(s[0]) + ")");
  Dataset out;
  const std::size_t per = s[1] * s[2] * s[3];
  out.images = Images::from_shape({s[0] - n, s[1], s[2], s[3]});
  std::copy(d.images.data() + n * per, d.images.data() + s[0] * per, out.images.data());
  const auto from = [n](const auto& v) { return v.begin() + static_cast<std::ptrdiff_t>(std::min(n, v.size())); };
  out.labels.assign(from(d.labels), d.labels.end());
  out.paths.assign(from(d.paths), d.paths.end());
  out.skipped = d.skipped;
  out.source = d.source + ":skip=" + std::to_string(n);
  return out;
}

}  // namespace scoreood::data
