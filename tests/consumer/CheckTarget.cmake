# Shared by both consumer projects: scoreood::scoreood must carry what users
# need (C++20, includes) and nothing that belongs to this repository's own
# programs (warnings, -march=native, the examples' CLI11 and nlohmann-json) or
# to the optional image_io component (stb); scoreood::image_io must be there
# (stb is installed where the tests run).
if(NOT TARGET scoreood::scoreood)
  message(FATAL_ERROR "scoreood::scoreood is not defined")
endif()
get_target_property(_features scoreood::scoreood INTERFACE_COMPILE_FEATURES)
if(NOT "cxx_std_20" IN_LIST _features)
  message(FATAL_ERROR "scoreood::scoreood does not require cxx_std_20 (has: ${_features})")
endif()
get_target_property(_options scoreood::scoreood INTERFACE_COMPILE_OPTIONS)
if(_options)
  message(FATAL_ERROR "scoreood::scoreood leaks compile options to users: ${_options}")
endif()
get_target_property(_links scoreood::scoreood INTERFACE_LINK_LIBRARIES)
get_target_property(_defs scoreood::scoreood INTERFACE_COMPILE_DEFINITIONS)
if("${_links}" MATCHES "stb" OR "${_defs}" MATCHES "SCOREOOD_IMAGE_IO")
  message(FATAL_ERROR "scoreood::scoreood requires stb (links: ${_links}; definitions: ${_defs})")
endif()
if(NOT TARGET scoreood::image_io)
  message(FATAL_ERROR "scoreood::image_io is not defined")
endif()
get_target_property(_io_defs scoreood::image_io INTERFACE_COMPILE_DEFINITIONS)
if(NOT "SCOREOOD_IMAGE_IO=1" IN_LIST _io_defs)
  message(FATAL_ERROR "scoreood::image_io does not define SCOREOOD_IMAGE_IO=1 (has: ${_io_defs})")
endif()
# The command-line parser and the JSON writer are the examples' (cmake/ProgramDependencies.cmake).
foreach(_lib IN LISTS _links)
  if(_lib MATCHES "CLI11|nlohmann")
    message(FATAL_ERROR "scoreood::scoreood links ${_lib}, which only the examples need (links: ${_links})")
  endif()
endforeach()
