include(CMakePackageConfigHelpers)
install(TARGETS scoreood EXPORT scoreoodTargets)
install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
set(SCOREOOD_CMAKE_DIR ${CMAKE_INSTALL_DATADIR}/cmake/scoreood)
install(EXPORT scoreoodTargets NAMESPACE scoreood:: DESTINATION ${SCOREOOD_CMAKE_DIR})
# The optional image_io component: its own export set, loaded by the package
# config only when stb is found on the user's machine (scoreoodStb.cmake).
if(TARGET scoreood_image_io)
  install(TARGETS scoreood_image_io EXPORT scoreood_image_ioTargets)
  install(EXPORT scoreood_image_ioTargets NAMESPACE scoreood:: DESTINATION ${SCOREOOD_CMAKE_DIR})
endif()
install(FILES cmake/scoreoodStb.cmake cmake/scoreoodCuda.cmake DESTINATION ${SCOREOOD_CMAKE_DIR})
configure_package_config_file(cmake/scoreoodConfig.cmake.in
  ${PROJECT_BINARY_DIR}/scoreoodConfig.cmake INSTALL_DESTINATION ${SCOREOOD_CMAKE_DIR})
# Header-only: the version file must not pin the architecture.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/scoreoodConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${PROJECT_BINARY_DIR}/scoreoodConfig.cmake ${PROJECT_BINARY_DIR}/scoreoodConfigVersion.cmake
  DESTINATION ${SCOREOOD_CMAKE_DIR})
install(FILES LICENSE README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)
