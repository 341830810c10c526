/** @file load.hpp
 *  @brief One entry point for every dataset a command line names, read whole:
 *  `PATH[:gray28][:gray|:rgb][:size=N][:skip=N][:first=N][:recursive]` where PATH is
 *  an IDX file, a CIFAR binary, a folder of images, a list of image paths or
 *  one image (see spec.hpp for the options, source.hpp for the kinds, the
 *  conversions and skip_bad). For sets larger than memory use open(). */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/data/dataset.hpp>
#include <scoreood/data/find.hpp>
#include <scoreood/data/source.hpp>
#include <scoreood/data/spec.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace scoreood::data {

/// Loads `spec` whole, converted as `opts` asks (the model's channels and size).
/// PATH is resolved with find_data(). `:gray28` converts to gray and resizes to
/// 28×28 (CIFAR as far-OOD for Fashion-MNIST); `:skip=N` leaves out the first
/// N images and `:first=N` then keeps the first N. With skip_bad, a folder or
/// list none of whose files can be read is still an error.
inline Dataset load(std::string_view spec, const LoadOptions& opts) {
  const LoadSpec s = parse_load_spec(spec);
  const std::filesystem::path path = find_data(s.path);
  const DatasetKind kind = detect_dataset_kind(path);
  detail::check_spec_fits(s, kind, path, spec);
  if (kind == DatasetKind::idx || kind == DatasetKind::cifar) {
    // Read directly: an ImageSource would hold the set and read() copy it.
    Dataset d = detail::load_in_memory(kind, path, s, detail::conversion_of(s, opts, spec));
    d.source = std::string(spec);
    return d;
  }
  const ImageSource src = open(spec, opts);
  Dataset d = src.read(0, src.size());
  if (d.size() == 0 && !d.skipped.empty())
    throw FormatError(path.string() + ": none of its " + std::to_string(d.skipped.size()) +
                      " image files can be read; the first: " + d.skipped.front().reason);
  return d;
}

/// Loads `spec` whole, as the spec alone says.
inline Dataset load(std::string_view spec) { return load(spec, LoadOptions{}); }

}  // namespace scoreood::data
