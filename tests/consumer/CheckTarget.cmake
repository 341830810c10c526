# Shared by both consumer projects: scoreood::scoreood must carry what users
# need (C++20, includes) and nothing that belongs to this repository's own
# programs (warnings, -march=native).
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
