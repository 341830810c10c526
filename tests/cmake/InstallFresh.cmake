# cmake -DBUILD_DIR=... -DPREFIX=... [-DCONFIG=...] -P InstallFresh.cmake
# Empties PREFIX, then installs the build tree there (a stale header from an
# earlier install must not make the find_package consumer pass by accident).
file(REMOVE_RECURSE "${PREFIX}")
set(cfg)
if(CONFIG)
  set(cfg --config "${CONFIG}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" ${cfg}
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${PREFIX} failed (${rc})")
endif()
foreach(f share/cmake/scoreood/scoreoodConfig.cmake share/cmake/scoreood/scoreoodConfigVersion.cmake
          share/cmake/scoreood/scoreoodTargets.cmake share/cmake/scoreood/scoreood_image_ioTargets.cmake
          share/cmake/scoreood/scoreoodStb.cmake include/scoreood/config.hpp include/scoreood/data/stb.hpp)
  if(NOT EXISTS "${PREFIX}/${f}")
    message(FATAL_ERROR "install is missing ${PREFIX}/${f}")
  endif()
endforeach()
