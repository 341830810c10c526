/** @file find.hpp
 *  @brief Where datasets live: an explicit root, $SCOREOOD_DATA, the shared
 *  data folder beside the repository, then /usr/share/datasets (Debian's
 *  dataset-* packages, e.g. dataset-fashion-mnist). */
#pragma once
#include <scoreood/core/error.hpp>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::data {

/// The folders searched for a relative data path, in order (existing or not).
inline std::vector<std::filesystem::path> data_search_roots(const std::optional<std::filesystem::path>& explicit_root = {}) {
  std::vector<std::filesystem::path> roots;
  if (explicit_root) roots.push_back(*explicit_root);
  if (const char* env = std::getenv("SCOREOOD_DATA"); env && *env) roots.emplace_back(env);
  std::error_code ec;
  const auto cwd = std::filesystem::current_path(ec);
  if (!ec) roots.push_back(cwd.parent_path() / "shared" / "data");
#ifdef SCOREOOD_SOURCE_DIR
  roots.push_back(std::filesystem::path(SCOREOOD_SOURCE_DIR).parent_path() / "shared" / "data");
#endif
  roots.emplace_back("/usr/share/datasets");
  return roots;
}

/// Resolves a data file. A path that exists as given (absolute, or relative to
/// the current directory) is returned unchanged; otherwise `relative` is looked
/// up under each root of data_search_roots(). Not found → FormatError listing
/// every place searched.
inline std::filesystem::path find_data(std::string_view relative,
                                       const std::optional<std::filesystem::path>& explicit_root = {}) {
  const std::filesystem::path rel(relative);
  std::error_code ec;
  if (std::filesystem::exists(rel, ec)) return rel;
  std::string searched = "\n  " + rel.string();
  if (!rel.is_absolute()) {
    for (const auto& root : data_search_roots(explicit_root)) {
      const auto p = root / rel;
      if (std::filesystem::exists(p, ec)) return p;
      searched += "\n  " + p.string();
    }
  }
  throw FormatError(std::string(relative) + ": data file not found; searched:" + searched +
                    "\n(set SCOREOOD_DATA to the folder that holds it)");
}

/// A file of the Debian package dataset-fashion-mnist (folder `fashion-mnist/`),
/// e.g. fashion_mnist_file("t10k-images-idx3-ubyte.gz").
inline std::filesystem::path fashion_mnist_file(std::string_view name) {
  return find_data("fashion-mnist/" + std::string(name));
}

}  // namespace scoreood::data
