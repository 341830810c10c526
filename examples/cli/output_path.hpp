/** @file output_path.hpp
 *  @brief Outputs of the scoreood tool: checks, before any slow work, that a
 *  command will be able to write its output file or folder (without creating
 *  or touching it), and outputs written bit by bit that appear only when the
 *  command succeeds, so a failed command leaves nothing behind. */
#pragma once
#include <scoreood/core/error.hpp>

#include <stdlib.h>  // mkdtemp
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

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

/// Throws ValueError naming `flag` unless files can be written in the folder `path`: it is a
/// writable folder, or it does not exist and its parent folder is writable (to create it in).
inline void check_writable_folder(const std::string& path, const std::string& flag) {
  namespace fs = std::filesystem;
  auto bad = [&](const std::string& why) { throw ValueError(flag + ": cannot write in " + path + ": " + why); };
  if (path.empty()) bad("empty path");
  std::error_code ec;
  const fs::path p(path);
  if (fs::exists(p, ec)) {
    if (!fs::is_directory(p, ec)) bad("it is not a folder");
    if (::access(p.c_str(), W_OK | X_OK) != 0) bad("the folder is not writable");
    return;
  }
  const fs::path parent = p.lexically_normal().has_parent_path() ? p.lexically_normal().parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) bad("no such folder " + parent.string());
  if (::access(parent.c_str(), W_OK | X_OK) != 0) bad("the folder " + parent.string() + " is not writable");
}

/// A text file written as a stream that appears at `path` only on commit(): until then it is
/// PATH.tmp (as io::write_file_atomic names it), removed if the writer is dropped uncommitted.
class OutputFile {
 public:
  explicit OutputFile(std::filesystem::path path) : path_(std::move(path)), tmp_(path_) {
    tmp_ += ".tmp";
    os_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!os_) throw Error(path_.string() + ": cannot open for writing");
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (committed_) return;
    os_.close();
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }

  std::ostream& stream() { return os_; }

  /// Flushes and moves the file into place; throws Error (and removes PATH.tmp) when either fails.
  void commit() {
    os_.flush();
    const bool ok = static_cast<bool>(os_);
    os_.close();
    if (!ok) throw Error(path_.string() + ": write failed (disk full?)");
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) throw Error(path_.string() + ": cannot move the temporary file into place: " + ec.message());
    committed_ = true;
  }

 private:
  std::filesystem::path path_, tmp_;
  std::ofstream os_;
  bool committed_ = false;
};

/// Files a command writes into an output folder one by one. They are written into a hidden
/// staging folder inside it (DIR/.scoreood-XXXXXX, which folder datasets skip) and moved into
/// DIR only by commit(); dropped uncommitted, the staging folder goes, and so does DIR if this
/// created it, so a failed command leaves DIR as it found it.
class OutputFolder {
 public:
  /// Creates `dir` when it does not exist (its parent must: see check_writable_folder).
  explicit OutputFolder(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::error_code ec;
    created_ = std::filesystem::create_directory(dir_, ec);
    if (ec) throw Error(dir_.string() + ": cannot create the folder: " + ec.message());
    std::string t = (dir_ / ".scoreood-XXXXXX").string();
    if (::mkdtemp(t.data()) == nullptr) {
      drop();
      throw Error(dir_.string() + ": cannot create a staging folder in it");
    }
    staging_ = t;
  }
  OutputFolder(const OutputFolder&) = delete;
  OutputFolder& operator=(const OutputFolder&) = delete;
  ~OutputFolder() {
    if (!committed_) drop();
  }

  const std::filesystem::path& dir() const { return dir_; }
  /// Where to write the file that commit() moves to DIR/name.
  std::filesystem::path file(const std::string& name) {
    names_.push_back(name);
    return staging_ / name;
  }
  /// Moves every file into DIR (replacing files of the same names) and removes the staging folder.
  void commit() {
    for (const auto& name : names_) {
      std::error_code ec;
      std::filesystem::rename(staging_ / name, dir_ / name, ec);
      if (ec) throw Error((dir_ / name).string() + ": cannot move the file into place: " + ec.message());
    }
    std::error_code ec;
    std::filesystem::remove_all(staging_, ec);
    committed_ = true;
  }

 private:
  void drop() {
    std::error_code ec;
    if (!staging_.empty()) std::filesystem::remove_all(staging_, ec);
    if (created_) std::filesystem::remove(dir_, ec);  // only when empty
  }

  std::filesystem::path dir_, staging_;
  std::vector<std::string> names_;
  bool created_ = false, committed_ = false;
};

}  // namespace scoreood::cli
