/** @file output_path.hpp
 *  @brief Checks, before any slow work, that a command will be able to write
 *  its output file, without creating or touching it. */
#pragma once
#include <scoreood/core/error.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>

namespace scoreood::cli {

/// Throws ValueError naming `flag` unless `path` can be written: not a folder, its folder
/// exists, and the file (when it exists) or its folder (when it does not) is writable.
inline void check_writable(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  auto bad = [&](const std::string& why) { throw ValueError(flag + ": cannot write " + path + ": " + why); };
  if (path.empty()) bad("empty path");
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) bad("it is a folder");
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) bad("no such folder " + dir.string());
  // Saving goes through PATH.tmp and a rename (io::write_file_atomic): that needs the folder too.
  if (::access(dir.c_str(), W_OK | X_OK) != 0) bad("the folder " + dir.string() + " is not writable");
  if (fs::exists(p, ec) && ::access(p.c_str(), W_OK) != 0) bad("the file is not writable");
}

}  // namespace scoreood::cli
