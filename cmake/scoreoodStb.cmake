# Finds stb as Debian's libstb-dev ships it (stb_image.h and stb_image_write.h
# in <prefix>/include/stb, the compiled code in libstb.so) and defines the
# imported target scoreood::stb. Used by CMakeLists.txt and, installed beside
# scoreoodConfig.cmake, by find_package(scoreood) for the image_io component.
# The headers are used declaration-only and the code is linked from the shared
# libstb (why: include/scoreood/data/stb.hpp). SCOREOOD_STB_INCLUDE_DIR and
# SCOREOOD_STB_LIBRARY may be set by hand for an stb installed elsewhere.
if(NOT TARGET scoreood::stb)
  find_path(SCOREOOD_STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb
            DOC "folder holding stb_image.h and stb_image_write.h (Debian: libstb-dev)")
  find_library(SCOREOOD_STB_LIBRARY NAMES stb DOC "the compiled stb library (Debian: libstb-dev, libstb.so)")
  mark_as_advanced(SCOREOOD_STB_INCLUDE_DIR SCOREOOD_STB_LIBRARY)
  if(SCOREOOD_STB_INCLUDE_DIR AND SCOREOOD_STB_LIBRARY AND EXISTS "${SCOREOOD_STB_INCLUDE_DIR}/stb_image_write.h")
    add_library(scoreood::stb UNKNOWN IMPORTED)
    set_target_properties(scoreood::stb PROPERTIES
      IMPORTED_LOCATION "${SCOREOOD_STB_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${SCOREOOD_STB_INCLUDE_DIR}")
  endif()
endif()
