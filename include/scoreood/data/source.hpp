/** @file source.hpp
 *  @brief ImageSource: any dataset spec as a sized sequence of images that is
 *  read in batches, so that a program writes one loop for every kind of input.
 *
 *  ```cpp
 *  data::ImageSource src = data::open("photos:recursive", {.channels = 3, .image_size = 32, .skip_bad = true});
 *  for (std::size_t i = 0; i < src.size(); i += 256) {
 *    data::Dataset b = src.read(i, 256);  // b.paths[k] is the file of b.images[k]
 *    for (const auto& s : b.skipped) std::cerr << "skipped " << s.reason << '\n';
 *  }
 *  ```
 *
 *  Kinds, told apart by content (see detect_dataset_kind): an IDX file, a
 *  CIFAR binary, a folder of images, a text file listing image paths, or one
 *  image file (a set of one).
 *
 *  Memory. Folders and lists are streamed: open() keeps one path per file (the
 *  listing, ~100 bytes per file) and reads at most one image header; read()
 *  holds the batch, count × C × H × W floats (twice that while skipped files
 *  are squeezed out), plus, per decoding thread, one file's bytes and its
 *  decoded pixels at the file's own size (about 9 bytes per pixel for 8-bit
 *  RGB, 2^27 pixels at most). IDX and CIFAR sets are small (≤ 200 MB) and are
 *  held whole, already converted; read() copies a slice.
 *
 *  Images and conversions. Every image of a source has the same C × H × W.
 *  The spec's options and the LoadOptions decide it: colour becomes gray
 *  (to_grayscale, BT.601) when either asks for 1 channel or `gray28`; images
 *  are resized (resize_bilinear) to the options' image_size, else the spec's
 *  size / gray28; gray becomes RGB by replicating the plane when 3 channels
 *  are asked for. What is not asked for comes from the first readable file's
 *  header: its size (every other image must have it: a mismatch is a
 *  ShapeError naming both files and sizes) and its kind (a colour first image
 *  makes gray ones replicated; a gray first image makes a colour one an error
 *  asking for `:gray` or `:rgb`). Non-square images are stretched to N×N.
 *
 *  Bad files. A file that cannot be read (missing, empty, truncated, corrupt,
 *  not an image) is a FormatError naming it; with LoadOptions::skip_bad it is
 *  left out of its batch instead and reported in Dataset::skipped, so a batch
 *  may hold fewer than `count` images and `paths` says which ones it holds.
 *  `skip=N` leaves out the first N files and `first=N` keeps the first N of
 *  the rest, readable or not. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/data/cifar.hpp>
#include <scoreood/data/dataset.hpp>
#include <scoreood/data/find.hpp>
#include <scoreood/data/idx.hpp>
#include <scoreood/data/image_file.hpp>
#include <scoreood/data/image_list.hpp>
#include <scoreood/data/input_file.hpp>
#include <scoreood/data/spec.hpp>
#include <scoreood/data/stb.hpp>
#include <scoreood/data/transforms.hpp>

#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood::data {

/// What a dataset path holds.
enum class DatasetKind { idx, cifar, folder, list, image };

/// Tells the kind of `path` (an existing file or folder): a folder; IDX by its
/// magic number (raw or gzip); CIFAR by a `.bin`/`.bin.gz` name; an image by its
/// signature or extension; a list by being text whose first entry looks like an
/// image path. Anything else → FormatError "unknown dataset format".
inline DatasetKind detect_dataset_kind(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return DatasetKind::folder;
  unsigned char head[4] = {0, 0, 0, 0};
  std::size_t got = 0;
  {
    detail::InputFile f(path);
    got = f.read(head, 4);
  }
  if (got == 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08) {
    if (head[3] == 1)
      throw FormatError(path.string() + ": is an IDX label file; give the images file (labels are found beside it)");
    return DatasetKind::idx;
  }
  if (path.filename().string().find(".bin") != std::string::npos) return DatasetKind::cifar;
  unsigned char raw[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t raw_got = 0;
  {
    std::ifstream is(path, std::ios::binary);
    is.read(reinterpret_cast<char*>(raw), sizeof raw);
    raw_got = static_cast<std::size_t>(is.gcount());
  }
  if (!detail::image_kind(raw, raw_got).empty() || has_decodable_extension(path)) return DatasetKind::image;
  if (looks_like_image_list(path)) return DatasetKind::list;
  throw FormatError(path.string() + ": unknown dataset format (not IDX by its magic number, not a CIFAR .bin/.bin.gz, "
                                    "not an image file, and not a text list of image paths)");
}

namespace detail {

/// Shape decisions shared by every image of a source (see the file comment).
struct Conversion {
  bool to_gray = false;      ///< colour → gray first
  std::size_t channels = 0;  ///< 1 or 3 at the end; 0 = as the reference image
  std::size_t size = 0;      ///< N×N at the end; 0 = as the reference image
};

inline Conversion conversion_of(const LoadSpec& s, const LoadOptions& o, std::string_view spec) {
  if (o.channels != 0 && o.channels != 1 && o.channels != 3)
    throw ValueError("dataset '" + std::string(spec) + "': LoadOptions::channels must be 0 (as stored), 1 or 3, got " +
                     std::to_string(o.channels));
  if (s.channels != 0 && s.channels != 1 && s.channels != 3)
    throw ValueError("dataset '" + std::string(spec) + "': LoadSpec::channels must be 0, 1 or 3, got " +
                     std::to_string(s.channels));
  Conversion c;
  c.to_gray = s.wanted_channels() == 1 || o.channels == 1;
  c.channels = o.channels ? o.channels : s.wanted_channels();
  c.size = o.image_size ? o.image_size : s.wanted_size().value_or(0);
  return c;
}

/// N×1×H×W → N×3×H×W, the plane copied into each channel.
inline Images replicate_to_rgb(const Images& x) {
  const auto s = shape_of(x);
  const std::size_t hw = s[2] * s[3];
  Images out = Images::from_shape({s[0], std::size_t(3), s[2], s[3]});
  for (std::size_t i = 0; i < s[0]; ++i)
    for (std::size_t c = 0; c < 3; ++c) std::copy_n(x.data() + i * hw, hw, out.data() + (i * 3 + c) * hw);
  return out;
}

/// Gray, resize, replicate: the order that makes the result equal to
/// resize_bilinear(to_grayscale(x)) and to replicating a resized gray plane.
inline Images convert_images(Images x, const Conversion& c) {
  if (c.to_gray && x.shape()[1] == 3) x = to_grayscale(x);
  if (c.size && (x.shape()[2] != c.size || x.shape()[3] != c.size)) x = resize_bilinear(x, c.size, c.size);
  if (c.channels == 3 && x.shape()[1] == 1) x = replicate_to_rgb(x);
  return x;
}

inline std::string pixels_text(std::size_t w, std::size_t h) { return std::to_string(w) + "x" + std::to_string(h); }

/// Options that only some kinds take.
inline void check_spec_fits(const LoadSpec& s, DatasetKind kind, const std::filesystem::path& path, std::string_view spec) {
  if (s.recursive && kind != DatasetKind::folder)
    throw ValueError("dataset spec '" + std::string(spec) + "': recursive applies to folders, and " + path.string() +
                     " is not one");
}

}  // namespace detail

class ImageSource;
ImageSource open(std::string_view spec, const LoadOptions& opts = {});

/// A dataset read on demand (see the file comment). Cheap to copy (the state is
/// shared and immutable); read() may be called from several threads.
class ImageSource {
 public:
  /// Number of images (files for folders and lists, after `skip=N` and `first=N`).
  std::size_t size() const { return has_paths() ? st_->files.size() : st_->data.size(); }
  DatasetKind kind() const { return st_->kind; }
  /// True for folders, lists and single images: each image has a file path.
  bool has_paths() const { return st_->kind != DatasetKind::idx && st_->kind != DatasetKind::cifar; }
  /// The file of image `i` ("" for IDX and CIFAR).
  const std::string& path(std::size_t i) const {
    check_index(i);
    static const std::string none;
    return has_paths() ? st_->files[i] : none;
  }
  /// The shape every image read() returns.
  std::size_t channels() const { return st_->channels; }
  std::size_t height() const { return st_->height; }
  std::size_t width() const { return st_->width; }
  /// The spec it was opened with.
  const std::string& source() const { return st_->spec; }

  /// Images first .. min(first + count, size()) - 1, converted; bad files are
  /// errors or, with skip_bad, listed in `skipped`. first > size() → ValueError.
  Dataset read(std::size_t first, std::size_t count) const {
    const std::size_t n = size();
    if (first > n)
      throw ValueError(st_->spec + ": read(" + std::to_string(first) + ", " + std::to_string(count) +
                       ") starts past the end of its " + std::to_string(n) + " images");
    count = std::min(count, n - first);
    return has_paths() ? decode(first, count) : slice(first, count);
  }

 private:
  struct State {
    std::string spec;
    DatasetKind kind = DatasetKind::idx;
    Dataset data;                    // IDX / CIFAR: the whole converted set
    std::vector<std::string> files;  // folder / list / image: one path per image
    std::string list_file;           // a list's own path, for messages
    detail::Conversion conv;
    std::size_t channels = 0, height = 0, width = 0;
    std::string reference;  // the file whose header gave channels or size, if any did
    bool skip_bad = false;
  };
  std::shared_ptr<const State> st_;

  explicit ImageSource(std::shared_ptr<const State> st) : st_(std::move(st)) {}
  friend ImageSource open(std::string_view spec, const LoadOptions& opts);

  void check_index(std::size_t i) const {
    if (i >= size())
      throw ValueError(st_->spec + ": image " + std::to_string(i) + " of " + std::to_string(size()));
  }

  Dataset slice(std::size_t first, std::size_t count) const {
    const Dataset& d = st_->data;
    Dataset out;
    out.source = st_->spec;
    const std::size_t per = st_->channels * st_->height * st_->width;
    out.images = Images::from_shape({count, st_->channels, st_->height, st_->width});
    std::copy_n(d.images.data() + first * per, count * per, out.images.data());
    if (!d.labels.empty())
      out.labels.assign(d.labels.begin() + static_cast<std::ptrdiff_t>(first),
                        d.labels.begin() + static_cast<std::ptrdiff_t>(first + count));
    return out;
  }

  /// One file, decoded and converted to the source's shape, into `dst`.
  void decode_one(const std::string& file, float* dst) const {
    const State& s = *st_;
    Images x = read_image(file);
    const std::size_t w = x.shape()[3], h = x.shape()[2];
    if (!s.conv.size && (w != s.width || h != s.height))
      throw ShapeError(file + ": image of " + detail::pixels_text(w, h) + " pixels, but " + s.reference + " has " +
                       detail::pixels_text(s.width, s.height) +
                       ": images of different sizes need a common size (add :size=N to the spec)");
    if (!s.conv.to_gray && s.channels == 1 && x.shape()[1] == 3)
      throw ShapeError(file + ": colour image, but " + s.reference +
                       " is gray: add :gray (convert colour to gray) or :rgb (keep colour) to the spec");
    x = detail::convert_images(std::move(x), s.conv);
    if (x.shape()[1] == 1 && s.channels == 3) x = detail::replicate_to_rgb(x);
    if (shape_of(x) != Shape4{1, s.channels, s.height, s.width})  // never expected: guards the batch buffer
      throw ShapeError(file + ": converted to " + to_string(shape_of(x)) + ", expected [1, " +
                       std::to_string(s.channels) + ", " + std::to_string(s.height) + ", " + std::to_string(s.width) + "]");
    std::copy_n(x.data(), x.size(), dst);
  }

  Dataset decode(std::size_t first, std::size_t count) const {
    const State& s = *st_;
    const std::size_t per = s.channels * s.height * s.width;
    Images all = Images::from_shape({count, s.channels, s.height, s.width});
    std::vector<std::exception_ptr> failed(count);
    std::vector<char> bad_file(count, 0);  // a FormatError: skippable
    const auto sc = static_cast<std::ptrdiff_t>(count);
    // Files differ in size: hand them out one at a time. Nothing may leave the
    // parallel region by an exception, so each is caught and dealt with after, in order.
#pragma omp parallel for schedule(dynamic, 1) if (count > 1)
    for (std::ptrdiff_t k = 0; k < sc; ++k) {
      const std::size_t i = static_cast<std::size_t>(k);
      try {
        decode_one(s.files[first + i], all.data() + i * per);
      } catch (const FormatError&) {
        bad_file[i] = 1;
        failed[i] = std::current_exception();
      } catch (...) {
        failed[i] = std::current_exception();
      }
    }
    Dataset out;
    out.source = s.spec;
    std::vector<std::size_t> kept;
    kept.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      if (!failed[i]) {
        kept.push_back(i);
        continue;
      }
      if (!bad_file[i]) std::rethrow_exception(failed[i]);
      std::string reason;
      try {
        std::rethrow_exception(failed[i]);
      } catch (const FormatError& e) {
        reason = e.what();
      }
      if (!s.list_file.empty()) reason += " (listed in " + s.list_file + ")";
      if (!s.skip_bad) throw FormatError(reason);
      out.skipped.push_back({s.files[first + i], reason});
    }
    out.paths.reserve(kept.size());
    for (std::size_t i : kept) out.paths.push_back(s.files[first + i]);
    if (kept.size() == count) {
      out.images = std::move(all);
    } else {
      out.images = Images::from_shape({kept.size(), s.channels, s.height, s.width});
      for (std::size_t j = 0; j < kept.size(); ++j)
        std::copy_n(all.data() + kept[j] * per, per, out.images.data() + j * per);
    }
    return out;
  }
};

namespace detail {

/// IDX or CIFAR, read whole, cut to `skip` and `first`, converted.
inline Dataset load_in_memory(DatasetKind kind, const std::filesystem::path& path, const LoadSpec& s,
                              const Conversion& c) {
  Dataset d = kind == DatasetKind::idx ? load_idx(path) : load_cifar(path);
  if (s.skip) d = drop_first(d, s.skip);
  if (s.first) d = first_n(d, *s.first);
  d.images = convert_images(std::move(d.images), c);
  return d;
}

}  // namespace detail

/// Opens `spec` (`PATH[:option]...`, see spec.hpp) as a source. PATH is
/// resolved with find_data(). Folders and lists are listed here and their
/// images decoded by read(); IDX and CIFAR are read here. Errors: an unknown
/// or damaged file, an empty folder or list, a folder or list in a build
/// without scoreood::image_io, bad options.
inline ImageSource open(std::string_view spec, const LoadOptions& opts) {
  const LoadSpec s = parse_load_spec(spec);
  const std::filesystem::path path = find_data(s.path);
  const DatasetKind kind = detect_dataset_kind(path);
  auto st = std::make_shared<ImageSource::State>();
  st->spec = std::string(spec);
  st->kind = kind;
  st->conv = detail::conversion_of(s, opts, spec);
  st->skip_bad = opts.skip_bad;
  detail::check_spec_fits(s, kind, path, spec);

  if (kind == DatasetKind::idx || kind == DatasetKind::cifar) {
    st->data = detail::load_in_memory(kind, path, s, st->conv);
    st->data.source = st->spec;
    const auto sh = shape_of(st->data.images);
    st->channels = sh[1], st->height = sh[2], st->width = sh[3];
    return ImageSource(std::move(st));
  }

  if (!has_image_io) detail::throw_no_image_io(path.string());
  std::vector<std::filesystem::path> files;
  if (kind == DatasetKind::folder) {
    files = list_image_folder(path, s.recursive);
  } else if (kind == DatasetKind::list) {
    files = read_image_list(path);
    st->list_file = path.string();
  } else {
    files = {path};
  }
  if (s.skip && s.skip >= files.size())
    throw ValueError(std::string(spec) + ": skip=" + std::to_string(s.skip) + " leaves no image (" + path.string() +
                     " has " + std::to_string(files.size()) + " image files)");
  files.erase(files.begin(), files.begin() + std::ptrdiff_t(s.skip));
  // What the options leave open comes from the first file whose header reads.
  st->channels = st->conv.channels;
  st->height = st->width = st->conv.size;
  if (!st->channels || !st->conv.size) {
    std::string first_reason;
    for (const auto& f : files) {
      try {
        const ImageInfo info = read_image_info(f);
        if (!st->channels) st->channels = st->conv.to_gray ? 1 : info.decoded_channels();
        if (!st->conv.size) st->height = info.height, st->width = info.width;
        st->reference = f.string();
        break;
      } catch (const FormatError& e) {
        std::string why = e.what();
        if (!st->list_file.empty()) why += " (listed in " + st->list_file + ")";
        if (!opts.skip_bad) throw FormatError(why);
        if (first_reason.empty()) first_reason = why;
      }
    }
    if (st->reference.empty())
      throw FormatError(path.string() + ": none of its " + std::to_string(files.size()) +
                        " image files can be read; the first: " + first_reason);
  }
  if (s.first && *s.first < files.size()) files.resize(*s.first);
  st->files.reserve(files.size());
  for (auto& f : files) st->files.push_back(f.string());
  return ImageSource(std::move(st));
}

}  // namespace scoreood::data
