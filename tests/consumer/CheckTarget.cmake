# Shared by both consumer projects: scoreood::scoreood must carry what users
# need (C++20, includes) and nothing that belongs to this repository's own
# programs (warnings, -march=native, the examples' CLI11 and nlohmann-json).
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
# The command-line parser and the JSON writer are the examples' (cmake/ProgramDependencies.cmake).
get_target_property(_links scoreood::scoreood INTERFACE_LINK_LIBRARIES)
foreach(_lib IN LISTS _links)
  if(_lib MATCHES "CLI11|nlohmann")
    message(FATAL_ERROR "scoreood::scoreood links ${_lib}, which only the examples need (links: ${_links})")
  endif()
endforeach()
