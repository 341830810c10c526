# CMake-level tests, included by tests/CMakeLists.txt:
#   1. scoreood_header_check: every public header compiled on its own (with
#      scoreood::image_io), and the whole library without it; ctest cmake/header_check;
#   2. consumer/*: two tiny outside projects that use the library through
#      find_package (after an install) and through add_subdirectory;
#   3. scripts/fetch-data --verify on a copy of the offline MNIST test files, and its
#      CIFAR-10 layout on synthetic batches; scripts/budget-curve's table and plot;
#   4. the README usage snippet is examples/quickstart.cpp's.

# ------------------------------------------------------------ 1. header check
# One generated .cpp per header holding only its #include: a header that forgot
# an include fails here. *.cuh are CUDA-only (nvcc) and are not globbed.
file(GLOB_RECURSE SCOREOOD_PUBLIC_HEADERS CONFIGURE_DEPENDS
     RELATIVE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/include/scoreood/*.hpp)
# cpu/tiered/ holds tier bodies, compiled only through cpu/kernels.hpp (checked with it).
list(FILTER SCOREOOD_PUBLIC_HEADERS EXCLUDE REGEX "^scoreood/cpu/tiered/")
set(SCOREOOD_HEADER_CHECK_SOURCES)
foreach(hdr IN LISTS SCOREOOD_PUBLIC_HEADERS)
  string(REGEX REPLACE "[/.]" "_" stem ${hdr})
  set(src ${CMAKE_CURRENT_BINARY_DIR}/header_check/${stem}.cpp)
  # file(CONFIGURE) rewrites only on change, so re-configuring rebuilds nothing.
  file(CONFIGURE OUTPUT ${src} CONTENT "#include <${hdr}>\n" @ONLY)
  list(APPEND SCOREOOD_HEADER_CHECK_SOURCES ${src})
endforeach()
add_library(scoreood_header_check OBJECT ${SCOREOOD_HEADER_CHECK_SOURCES})
# scoreood_programs: the same warnings as every in-repo program. -O0 because
# nothing is run; it only has to parse (and keeps this target cheap).
target_link_libraries(scoreood_header_check PRIVATE scoreood_programs)
target_compile_options(scoreood_header_check PRIVATE -O0)

# scoreood::scoreood alone (what a user without stb links): every header, the
# image ones included, must compile without SCOREOOD_IMAGE_IO.
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/header_check/without_image_io.cpp CONTENT
"#include <scoreood/scoreood.hpp>
#if SCOREOOD_HAS_IMAGE_IO
#error \"scoreood::scoreood alone brought in stb\"
#endif
" @ONLY)
add_library(scoreood_header_check_core OBJECT ${CMAKE_CURRENT_BINARY_DIR}/header_check/without_image_io.cpp)
target_link_libraries(scoreood_header_check_core PRIVATE scoreood::scoreood)
target_compile_options(scoreood_header_check_core PRIVATE -O0 $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wno-unused-parameter>)

# Both checks are built with the tests; this entry lets ctest run them too.
add_test(NAME cmake/header_check
  COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --config $<CONFIG>
          --target scoreood_header_check scoreood_header_check_core)
set_tests_properties(cmake/header_check PROPERTIES LABELS cmake TIMEOUT 900)

# ------------------------------------------------------------ 2. consumers
set(SCOREOOD_CONSUMER_DIR ${CMAKE_CURRENT_SOURCE_DIR}/consumer)
set(SCOREOOD_CONSUMER_BUILD ${CMAKE_BINARY_DIR}/consumer-build)
set(SCOREOOD_CONSUMER_PREFIX ${CMAKE_BINARY_DIR}/consumer-prefix)
# Options every consumer build gets: same compiler and generator, Release, and
# no user package registry (so only the path we hand over can be found).
set(SCOREOOD_CONSUMER_OPTIONS
  -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
  -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)

if(SCOREOOD_INSTALL)
  # Fixture: a fresh install of this build tree into a private prefix.
  add_test(NAME consumer/install
    COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR} -DPREFIX=${SCOREOOD_CONSUMER_PREFIX}
            -DCONFIG=$<CONFIG> -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/InstallFresh.cmake)
  set_tests_properties(consumer/install PROPERTIES FIXTURES_SETUP scoreood_installed LABELS cmake)

  add_test(NAME consumer/find_package
    COMMAND ${CMAKE_CTEST_COMMAND}
      --build-and-test ${SCOREOOD_CONSUMER_DIR}/find_package ${SCOREOOD_CONSUMER_BUILD}/find_package
      --build-generator ${CMAKE_GENERATOR}
      --build-makeprogram ${CMAKE_MAKE_PROGRAM}
      --build-options ${SCOREOOD_CONSUMER_OPTIONS}
        -DCMAKE_PREFIX_PATH=${SCOREOOD_CONSUMER_PREFIX}
        -DSCOREOOD_EXPECTED_PREFIX=${SCOREOOD_CONSUMER_PREFIX}
        -DSCOREOOD_EXPECTED_VERSION=${PROJECT_VERSION}
      --test-command consumer_find_package)
  set_tests_properties(consumer/find_package PROPERTIES
    FIXTURES_REQUIRED scoreood_installed LABELS cmake TIMEOUT 600)

  # The CUDA backend from the install: a .cu program instantiating the CUDA
  # detector (built with nvcc; without a GPU it runs, checks the refusal and
  # prints "skipped: no GPU", which ctest reports as skipped).
  if(TARGET scoreood_cuda)
    add_test(NAME consumer/find_package_cuda
      COMMAND ${CMAKE_CTEST_COMMAND}
        --build-and-test ${SCOREOOD_CONSUMER_DIR}/find_package_cuda ${SCOREOOD_CONSUMER_BUILD}/find_package_cuda
        --build-generator ${CMAKE_GENERATOR}
        --build-makeprogram ${CMAKE_MAKE_PROGRAM}
        --build-options ${SCOREOOD_CONSUMER_OPTIONS}
          -DCMAKE_CUDA_COMPILER=${CMAKE_CUDA_COMPILER}
          -DCMAKE_CUDA_ARCHITECTURES=${SCOREOOD_CUDA_ARCHITECTURES}
          -DCMAKE_PREFIX_PATH=${SCOREOOD_CONSUMER_PREFIX}
          -DSCOREOOD_EXPECTED_PREFIX=${SCOREOOD_CONSUMER_PREFIX}
          -DSCOREOOD_EXPECTED_VERSION=${PROJECT_VERSION}
        --test-command consumer_find_package_cuda)
    set_tests_properties(consumer/find_package_cuda PROPERTIES
      FIXTURES_REQUIRED scoreood_installed LABELS "cmake;cuda" SKIP_REGULAR_EXPRESSION "skipped: no GPU" TIMEOUT 900)
  endif()
endif()

add_test(NAME consumer/add_subdirectory
  COMMAND ${CMAKE_CTEST_COMMAND}
    --build-and-test ${SCOREOOD_CONSUMER_DIR}/add_subdirectory ${SCOREOOD_CONSUMER_BUILD}/add_subdirectory
    --build-generator ${CMAKE_GENERATOR}
    --build-makeprogram ${CMAKE_MAKE_PROGRAM}
    --build-options ${SCOREOOD_CONSUMER_OPTIONS}
      -DSCOREOOD_SOURCE_DIR=${PROJECT_SOURCE_DIR}
      -DSCOREOOD_EXPECTED_VERSION=${PROJECT_VERSION}
    --test-command consumer_add_subdirectory)
set_tests_properties(consumer/add_subdirectory PROPERTIES LABELS cmake TIMEOUT 600)

# ------------------------------------------------------------ 3. fetch-data --verify
# The offline MNIST test files are a re-compression of the official ones: their
# .gz md5 cannot match, their decompressed md5 must (see scripts/fetch-data).
set(SCOREOOD_SHARED_MNIST ${PROJECT_SOURCE_DIR}/../shared/data/mnist)
find_program(SCOREOOD_BASH bash)
if(SCOREOOD_BASH AND EXISTS ${SCOREOOD_SHARED_MNIST}/t10k-images-idx3-ubyte.gz)
  add_test(NAME scripts/fetch_data_verify
    COMMAND ${CMAKE_COMMAND} -DSCRIPT=${PROJECT_SOURCE_DIR}/scripts/fetch-data
            -DMNIST=${SCOREOOD_SHARED_MNIST} -DWORK=${CMAKE_CURRENT_BINARY_DIR}/fetch-data-verify
            -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/FetchDataVerify.cmake)
  set_tests_properties(scripts/fetch_data_verify PROPERTIES LABELS scripts TIMEOUT 120)
endif()
# CIFAR-10 laid out as the examples read it (test_batch.bin.gz, train_subset_10000.bin.gz),
# from synthetic batches that pass for a verified download.
find_program(SCOREOOD_PYTHON3 NAMES python3)
if(SCOREOOD_BASH AND SCOREOOD_PYTHON3)
  add_test(NAME scripts/fetch_data_cifar10_layout
    COMMAND ${SCOREOOD_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/cmake/fetch_data_cifar10_layout.py
            ${PROJECT_SOURCE_DIR}/scripts/fetch-data ${CMAKE_CURRENT_BINARY_DIR}/fetch-data-cifar10)
  set_tests_properties(scripts/fetch_data_cifar10_layout PROPERTIES LABELS scripts TIMEOUT 300)
endif()
# scripts/budget-curve's table and plot from point records (--plot-only: no training).
if(SCOREOOD_PYTHON3)
  add_test(NAME scripts/budget_curve_table
    COMMAND ${SCOREOOD_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/cmake/budget_curve_table.py
            ${PROJECT_SOURCE_DIR}/scripts/budget-curve ${CMAKE_CURRENT_BINARY_DIR}/budget-curve-table)
  set_tests_properties(scripts/budget_curve_table PROPERTIES LABELS scripts TIMEOUT 60)
endif()
add_test(NAME scripts/fetch_data_dry_run
  COMMAND ${PROJECT_SOURCE_DIR}/scripts/fetch-data --dry-run ${CMAKE_CURRENT_BINARY_DIR}/fetch-data-dry)
set_tests_properties(scripts/fetch_data_dry_run PROPERTIES LABELS scripts TIMEOUT 60
  PASS_REGULAR_EXPRESSION "cifar-10-binary.tar.gz")

# ------------------------------------------------------------ 4. README snippet
if(EXISTS ${PROJECT_SOURCE_DIR}/examples/quickstart.cpp)
  add_test(NAME docs/readme_snippet
    COMMAND ${CMAKE_COMMAND} -DEXAMPLE=${PROJECT_SOURCE_DIR}/examples/quickstart.cpp
            -DREADME=${PROJECT_SOURCE_DIR}/README.md -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/ReadmeSnippet.cmake)
  set_tests_properties(docs/readme_snippet PROPERTIES LABELS docs TIMEOUT 30)
endif()
if(EXISTS ${PROJECT_SOURCE_DIR}/examples/image_folder_ood.cpp)
  add_test(NAME docs/readme_snippet_image_folder
    COMMAND ${CMAKE_COMMAND} -DEXAMPLE=${PROJECT_SOURCE_DIR}/examples/image_folder_ood.cpp
            -DREADME=${PROJECT_SOURCE_DIR}/README.md -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/ReadmeSnippet.cmake)
  set_tests_properties(docs/readme_snippet_image_folder PROPERTIES LABELS docs TIMEOUT 30)
endif()

# ------------------------------------------------------------ 5. wrong policies do not compile
# Each program in compile_fail/ composes a detector or network from a wrong policy; the
# compiler must refuse it with a message that names the concept (concepts.hpp).
get_target_property(_scoreood_eigen_inc Eigen3::Eigen INTERFACE_INCLUDE_DIRECTORIES)
set(_scoreood_cf_flags "-std=c++20 -fopenmp -I${PROJECT_SOURCE_DIR}/include")
foreach(dir IN LISTS _scoreood_eigen_inc)
  string(APPEND _scoreood_cf_flags " -I${dir}")
endforeach()
foreach(case IN ITEMS "wrong_augmentation|satisfaction of [^ ]*AugmentationGroup<Aug>"
                      "wrong_density|satisfaction of [^ ]*DensityModel<Density>"
                      "wrong_network|satisfaction of [^ ]*ScoreNetwork<[A-Za-z]*>"
                      "wrong_backend|satisfaction of [^ ]*Backend<B>")
  string(REPLACE "|" ";" parts "${case}")
  list(GET parts 0 name)
  list(GET parts 1 expect)
  add_test(NAME compile_fail/${name}
    COMMAND ${CMAKE_COMMAND} -DCXX=${CMAKE_CXX_COMPILER} "-DFLAGS=${_scoreood_cf_flags}"
            -DSOURCE=${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/${name}.cpp -DEXPECT=${expect}
            -P ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/CompileFail.cmake)
  set_tests_properties(compile_fail/${name} PROPERTIES LABELS cmake TIMEOUT 300)
endforeach()
