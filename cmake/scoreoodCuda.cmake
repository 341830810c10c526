# What scoreood::cuda needs, found on this machine: the CUDA toolkit's runtime
# and cuBLAS, and cuDNN (the convolutions). Used by cmake/Cuda.cmake for the
# build tree and, installed beside scoreoodConfig.cmake, by
# find_package(scoreood COMPONENTS cuda), which then defines the imported
# target scoreood::cuda (no path of the machine scoreood was built on is kept).
#
# cuDNN: the toolkit's own folders first, then CUDNN_ROOT (for example the
# nvidia-cudnn pip wheel's folder, whose library has only the versioned name).
include_guard(GLOBAL)
find_package(CUDAToolkit QUIET)
set(CUDNN_ROOT "$ENV{CUDNN_ROOT}" CACHE PATH "Extra place to look for cuDNN (folder with include/ and lib/)")
if(CUDAToolkit_FOUND)
  find_path(SCOREOOD_CUDNN_INCLUDE_DIR cudnn.h
    HINTS ${CUDNN_ROOT} ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_ROOT}
    PATH_SUFFIXES include)
  find_library(SCOREOOD_CUDNN_LIBRARY NAMES cudnn libcudnn.so.9
    HINTS ${CUDNN_ROOT} ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}
    PATH_SUFFIXES lib64 lib lib/x86_64-linux-gnu)
endif()
if(SCOREOOD_CUDNN_INCLUDE_DIR AND SCOREOOD_CUDNN_LIBRARY)
  set(SCOREOOD_HAVE_CUDNN ON)
else()
  set(SCOREOOD_HAVE_CUDNN OFF)
endif()

# Gives `tgt` (an INTERFACE library) scoreood::cuda's usage requirements.
function(scoreood_cuda_usage tgt)
  target_link_libraries(${tgt} INTERFACE scoreood::scoreood CUDA::cudart)
  # The headers test __has_include(<cudnn.h>) / <cublas_v2.h>; the definitions
  # below override that when the header is there but the library is not.
  if(TARGET CUDA::cublas)
    target_link_libraries(${tgt} INTERFACE CUDA::cublas)
  else()
    target_compile_definitions(${tgt} INTERFACE SCOREOOD_HAVE_CUBLAS=0)
  endif()
  if(SCOREOOD_HAVE_CUDNN)
    target_include_directories(${tgt} INTERFACE ${SCOREOOD_CUDNN_INCLUDE_DIR})
    target_link_libraries(${tgt} INTERFACE ${SCOREOOD_CUDNN_LIBRARY})
  else()
    target_compile_definitions(${tgt} INTERFACE SCOREOOD_HAVE_CUDNN=0)
  endif()
  # CMake < 3.26 does not know the cuda_std_20 feature for nvcc 12+, so ask for
  # C++20 directly (harmless on newer CMake).
  # The host half of a .cu file runs the library's CPU code too (reference paths,
  # the host side of the detector): OpenMP as in the .cpp files. Eigen's nvcc
  # pragmas (diag_suppress) are unknown to the host compiler: not a warning here.
  # nvcc's front end does not know GCC's `#pragma GCC unroll` of the CPU kernels'
  # AVX tiers (cpu/kernels.hpp; the host compiler applies it): warning 1675 off.
  target_compile_options(${tgt} INTERFACE
    $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>
    $<$<COMPILE_LANGUAGE:CUDA>:--diag-suppress=1675>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wno-unknown-pragmas>
    $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<CXX_COMPILER_ID:GNU,Clang>>:-Xcompiler=-fopenmp>)
endfunction()

# For find_package(scoreood): the imported target, when the toolkit is here.
if(SCOREOOD_CUDA_IMPORTED AND CUDAToolkit_FOUND AND NOT TARGET scoreood::cuda)
  add_library(scoreood::cuda INTERFACE IMPORTED)
  scoreood_cuda_usage(scoreood::cuda)
endif()
