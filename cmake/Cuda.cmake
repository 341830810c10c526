# CUDA backend: hand-written kernels (include/scoreood/cuda/kernels/*.cuh) and
# cuDNN convolutions (include/scoreood/cuda/conv.cuh).
#
# Included from the top-level CMakeLists.txt after the library target exists.
# Without nvcc (or with -DSCOREOOD_ENABLE_CUDA=OFF) this file only declares the
# options and returns: the CPU build is untouched.
#
# Users opt in by linking scoreood::cuda into a target whose sources are .cu:
#   target_link_libraries(app PRIVATE scoreood::cuda)
include(CheckLanguage)
check_language(CUDA)
# A parent project that add_subdirectory()s us opts in explicitly: enabling a
# language behind its back would change its own build.
if(CMAKE_CUDA_COMPILER AND SCOREOOD_TOP_LEVEL)
  set(_scoreood_cuda_default ON)
else()
  set(_scoreood_cuda_default OFF)
endif()
option(SCOREOOD_ENABLE_CUDA "Build the CUDA backend (tests, benchmarks, scoreood::cuda target); needs nvcc"
       ${_scoreood_cuda_default})
# sm_90 machine code for H100/H200 plus compute_90 PTX that newer GPUs JIT-compile.
set(SCOREOOD_CUDA_ARCHITECTURES "90-real;90-virtual" CACHE STRING
    "CUDA architectures for the CUDA tests/benchmarks (CMake CUDA_ARCHITECTURES syntax)")
# Plain cudaEvent timing, no Google Benchmark: on by default with the other benchmarks.
# The command-line tool with --device cuda: compiled by nvcc, which takes much
# longer than the host compiler, so it is asked for, not on by default.
option(SCOREOOD_CUDA_CLI "Compile the scoreood tool with nvcc so that --device cuda works (needs SCOREOOD_ENABLE_CUDA)" OFF)
option(SCOREOOD_BUILD_CUDA_BENCHMARKS "Build benchmarks/cuda (needs SCOREOOD_ENABLE_CUDA)" ${SCOREOOD_BUILD_BENCHMARKS})

if(NOT SCOREOOD_ENABLE_CUDA)
  if(SCOREOOD_CUDA_CLI)
    message(FATAL_ERROR "SCOREOOD_CUDA_CLI needs SCOREOOD_ENABLE_CUDA=ON (and nvcc)")
  endif()
  message(STATUS "scoreood: CUDA backend off")
  return()
endif()
if(NOT CMAKE_CUDA_COMPILER)
  message(FATAL_ERROR "SCOREOOD_ENABLE_CUDA is ON but CMake found no CUDA compiler: put nvcc on PATH, "
                      "set CUDACXX=/usr/local/cuda/bin/nvcc, or configure with -DSCOREOOD_ENABLE_CUDA=OFF")
endif()

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES ${SCOREOOD_CUDA_ARCHITECTURES})
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
include(${CMAKE_CURRENT_LIST_DIR}/scoreoodCuda.cmake)
if(SCOREOOD_HAVE_CUDNN)
  message(STATUS "scoreood: cuDNN ${SCOREOOD_CUDNN_LIBRARY} (headers ${SCOREOOD_CUDNN_INCLUDE_DIR})")
else()
  message(WARNING "scoreood: cuDNN not found (set CUDNN_ROOT): CUDA kernels build, convolutions (conv.cuh) do not")
endif()
if(NOT TARGET CUDA::cublas)
  message(WARNING "scoreood: cuBLAS not found: blas.cuh is left out")
endif()

add_library(scoreood_cuda INTERFACE)
add_library(scoreood::cuda ALIAS scoreood_cuda)
scoreood_cuda_usage(scoreood_cuda)

# Settings for this repository's CUDA programs only. EIGEN_NO_CUDA: the library
# uses Eigen on the host only, and without it nvcc warns about Eigen's own
# __host__ __device__ annotations in every translation unit.
function(scoreood_cuda_program name)
  target_link_libraries(${name} PRIVATE scoreood::cuda)
  set_target_properties(${name} PROPERTIES CUDA_ARCHITECTURES "${SCOREOOD_CUDA_ARCHITECTURES}")
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 -lineinfo>)
  target_compile_definitions(${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:EIGEN_NO_CUDA>)
endfunction()

if(SCOREOOD_BUILD_TESTS)
  enable_testing()
  add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/../tests/cuda ${PROJECT_BINARY_DIR}/tests_cuda)
endif()
if(SCOREOOD_BUILD_CUDA_BENCHMARKS)
  add_subdirectory(${CMAKE_CURRENT_LIST_DIR}/../benchmarks/cuda ${PROJECT_BINARY_DIR}/benchmarks_cuda)
endif()
