/** @file error.hpp
 *  @brief Exception types. Every message names the file or argument at fault. */
#pragma once
#include <stdexcept>
#include <string>

namespace scoreood {

/// Base of every exception the library throws.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// A file that is missing, truncated, corrupt, of the wrong kind or version.
struct FormatError : Error {
  using Error::Error;
};
/// Tensors or vectors whose shapes do not fit together.
struct ShapeError : Error {
  using Error::Error;
};
/// A value out of its domain: NaN, an empty set, a bad option.
struct ValueError : Error {
  using Error::Error;
};

namespace detail {
[[noreturn]] inline void throw_format(const std::string& file, const std::string& what) {
  throw FormatError(file + ": " + what);
}
}  // namespace detail

}  // namespace scoreood
