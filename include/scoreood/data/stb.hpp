/** @file stb.hpp
 *  @brief The one place stb_image / stb_image_write are reached: declarations
 *  only, the code comes from Debian's compiled libstb, and only when the
 *  optional CMake component `scoreood::image_io` is linked.
 *
 *  Why link libstb instead of compiling stb's implementation into our headers:
 *  stb's IMPLEMENTATION section must be compiled in exactly one translation
 *  unit, which a header-only library cannot arrange; `STB_IMAGE_STATIC` would
 *  give every translation unit its own private copy, but breaks as soon as a
 *  user's file includes <stb_image.h> itself before ours (the functions are
 *  then declared extern and our copy becomes a second, global one). Linking
 *  the shared libstb gives one decoder per process whatever includes what,
 *  keeps ~9000 lines of C out of every translation unit, and lets Debian's
 *  security updates of the decoder (it parses untrusted files) apply without
 *  rebuilding. Debian builds libstb with thread-local failure reasons, so
 *  decoding from several threads is safe.
 *
 *  `scoreood::image_io` defines SCOREOOD_IMAGE_IO=1 and brings the include
 *  folder and the library. Without it SCOREOOD_HAS_IMAGE_IO is 0, these
 *  headers still compile, and reading an image file throws a FormatError that
 *  names the component (detail::throw_no_image_io). */
#pragma once
#include <scoreood/core/error.hpp>

#include <string>

#if defined(SCOREOOD_IMAGE_IO) && SCOREOOD_IMAGE_IO
#if defined(__has_include)
#if !__has_include(<stb_image.h>) || !__has_include(<stb_image_write.h>)
#error "SCOREOOD_IMAGE_IO is set but stb_image.h / stb_image_write.h are not on the include path: link scoreood::image_io (Debian: apt-get install libstb-dev)"
#endif
#endif
// Declarations only (we never define STB_*_IMPLEMENTATION): the code is in libstb.
#include <stb_image.h>
#include <stb_image_write.h>
#define SCOREOOD_HAS_IMAGE_IO 1
#else
#define SCOREOOD_HAS_IMAGE_IO 0
#endif

namespace scoreood::data {

/// True when this translation unit can read and write image files (PNG, JPEG, BMP…).
inline constexpr bool has_image_io = SCOREOOD_HAS_IMAGE_IO != 0;

namespace detail {
/// The error for an image file, folder or list in a build without the component.
[[noreturn]] inline void throw_no_image_io(const std::string& what) {
  throw FormatError(what + ": image files (PNG, JPEG, BMP) need scoreood's optional image_io component, which "
                           "this program was built without: link the CMake target scoreood::image_io instead of "
                           "scoreood::scoreood (find_package(scoreood COMPONENTS image_io); Debian package libstb-dev)");
}
}  // namespace detail

}  // namespace scoreood::data
