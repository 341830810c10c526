/** @file image_list.hpp
 *  @brief Which image files a folder or a list file names, in dataset order.
 *
 *  A folder gives every file with an image extension (.png .jpg .jpeg .bmp,
 *  any case), sorted by path (std::filesystem::path order: component by
 *  component, so a subfolder's files stay together), optionally descending
 *  into subfolders (links to folders are not followed, so a link loop cannot
 *  recurse forever). Names starting with '.' are skipped, files and folders
 *  alike: they are hidden files such as the "._photo.jpg" resource forks macOS
 *  leaves on shared drives, which carry an image extension but no image.
 *  A list file is UTF-8 text, one path per line; relative paths are relative to
 *  the list file's folder; blank lines and lines starting with '#' are skipped;
 *  spaces around a path are trimmed. Only names are read here (no decoding, no
 *  stb): the memory is one path per image. */
#pragma once
#include <scoreood/core/error.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace scoreood::data {

namespace detail {
inline std::string lower_extension(const std::filesystem::path& p) {
  std::string e = p.extension().string();
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}
inline std::string_view trim_blanks(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}
inline constexpr std::size_t kMaxListLine = 4096;  // PATH_MAX on Linux
}  // namespace detail

/// True for the extensions a folder dataset takes: .png .jpg .jpeg .bmp (any case).
inline bool has_image_extension(const std::filesystem::path& p) {
  static constexpr std::array<std::string_view, 4> exts = {".png", ".jpg", ".jpeg", ".bmp"};
  const std::string e = detail::lower_extension(p);
  return std::find(exts.begin(), exts.end(), e) != exts.end();
}

/// True for every extension stb_image decodes (the folder ones plus .gif .tga
/// .psd .pnm .ppm .pgm .hdr .pic); used to recognise a list file.
inline bool has_decodable_extension(const std::filesystem::path& p) {
  static constexpr std::array<std::string_view, 8> more = {".gif", ".tga", ".psd", ".pnm", ".ppm", ".pgm", ".hdr", ".pic"};
  const std::string e = detail::lower_extension(p);
  return has_image_extension(p) || std::find(more.begin(), more.end(), e) != more.end();
}

/// The image files of `dir` (and of its subfolders when `recursive`), sorted.
/// No image files → FormatError saying so (and suggesting :recursive when the
/// folder has subfolders).
inline std::vector<std::filesystem::path> list_image_folder(const std::filesystem::path& dir, bool recursive = false) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw FormatError(dir.string() + ": not a folder");
  std::vector<fs::path> files;
  bool has_subfolders = false;
  fs::path last = dir;  // where an iteration error happened (a folder we may not read)
  const auto cannot = [&] {
    throw FormatError(dir.string() + ": cannot list the folder" + (last == dir ? "" : " (at " + last.string() + ")") +
                      ": " + ec.message());
  };
  // A regular file or a link to one; a dangling link is kept so that reading it reports it.
  const auto take = [&](const fs::directory_entry& e) {
    std::error_code e1;
    const fs::path& p = e.path();
    if (!p.filename().string().starts_with('.') && has_image_extension(p) && (e.is_regular_file(e1) || e.is_symlink(e1)))
      files.push_back(p);
  };
  if (recursive) {
    fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
    if (ec) cannot();
    for (; it != end; it.increment(ec)) {
      last = it->path();
      std::error_code e1;
      if (it->is_directory(e1)) {
        if (last.filename().string().starts_with('.')) it.disable_recursion_pending();
        continue;
      }
      take(*it);
    }
  } else {
    fs::directory_iterator it(dir, ec), end;
    if (ec) cannot();
    for (; it != end; it.increment(ec)) {
      std::error_code e1;
      if (it->is_directory(e1)) {
        has_subfolders = has_subfolders || !it->path().filename().string().starts_with('.');
        continue;
      }
      take(*it);
    }
  }
  if (ec) cannot();
  if (files.empty())
    throw FormatError(dir.string() + ": no image files (.png, .jpg, .jpeg, .bmp) in this folder" +
                      (recursive ? std::string(" or its subfolders")
                                 : has_subfolders ? std::string("; it has subfolders: add :recursive to read them")
                                                  : std::string()));
  std::sort(files.begin(), files.end());
  return files;
}

/// The paths `list_file` names, in its order, relative ones resolved against its
/// folder. A list without entries, a binary file or an overlong line → FormatError.
inline std::vector<std::filesystem::path> read_image_list(const std::filesystem::path& list_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(list_file, ec)) throw FormatError(list_file.string() + ": no such list file");
  std::ifstream is(list_file, std::ios::binary);
  if (!is) throw FormatError(list_file.string() + ": cannot open for reading");
  const fs::path base = list_file.parent_path();
  std::vector<fs::path> out;
  std::string line;
  std::size_t number = 0;
  while (std::getline(is, line)) {
    ++number;
    const std::string where = list_file.string() + " line " + std::to_string(number);
    if (line.find('\0') != std::string::npos) throw FormatError(where + ": binary data: not a text list of image paths");
    if (line.size() > detail::kMaxListLine)
      throw FormatError(where + ": longer than " + std::to_string(detail::kMaxListLine) +
                        " characters: not a list of image paths");
    std::string_view s = line;
    if (number == 1 && s.starts_with("\xEF\xBB\xBF")) s.remove_prefix(3);  // UTF-8 byte order mark
    s = detail::trim_blanks(s);
    if (s.empty() || s.front() == '#') continue;
    const fs::path p{std::string(s)};
    out.push_back(p.is_absolute() ? p : base / p);
  }
  if (is.bad()) throw FormatError(list_file.string() + ": read error");
  if (out.empty())
    throw FormatError(list_file.string() + ": lists no images (" + std::to_string(number) +
                      " lines, all blank or # comments)");
  return out;
}

/// True when `file` reads as a list of image paths: text without NUL bytes
/// whose first entry has an image extension or names an existing file, or, when
/// it has no entry at all, is named .txt, .lst or .list (read_image_list then
/// says that it lists no images).
inline bool looks_like_image_list(const std::filesystem::path& file) {
  namespace fs = std::filesystem;
  std::ifstream is(file, std::ios::binary);
  if (!is) return false;
  std::string head(1 << 16, '\0');
  is.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(is.gcount()));
  if (head.find('\0') != std::string::npos) return false;
  if (head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f && static_cast<unsigned char>(head[1]) == 0x8b)
    return false;  // gzip
  std::string_view rest = head;
  if (rest.starts_with("\xEF\xBB\xBF")) rest.remove_prefix(3);
  while (!rest.empty()) {
    const auto eol = rest.find('\n');
    const std::string_view s = detail::trim_blanks(rest.substr(0, eol));
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    if (s.empty() || s.front() == '#') continue;
    if (s.size() > detail::kMaxListLine) return false;
    const fs::path p{std::string(s)};
    std::error_code ec;
    return has_decodable_extension(p) || fs::is_regular_file(p.is_absolute() ? p : file.parent_path() / p, ec);
  }
  if (head.size() == (1u << 16)) return false;  // 64 KiB of comments: not our kind of list
  const std::string e = detail::lower_extension(file);
  return e == ".txt" || e == ".lst" || e == ".list";
}

}  // namespace scoreood::data
