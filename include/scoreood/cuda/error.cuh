/** @file error.cuh
 *  @brief Checked CUDA, cuDNN and cuBLAS calls. A failed call throws
 *  scoreood::gpu::CudaError whose message holds the call's text, file:line and
 *  the library's own error name and string.
 *
 *  The kernels live in scoreood::gpu; the backend tag is scoreood::backend::cuda
 *  (core/backend.hpp). */
#pragma once
#if !defined(__CUDACC__)
#error "scoreood/cuda/*.cuh need nvcc: include <scoreood/cuda.hpp> (empty without CUDA) or compile this file as .cu"
#endif

#include <scoreood/config.hpp>
#include <scoreood/core/error.hpp>

#include <cuda_runtime.h>
#include <string>

// cuDNN / cuBLAS are optional: on when their header is found, unless the
// build says otherwise (scoreood::cuda defines them to 0 when the library is missing).
#ifndef SCOREOOD_HAVE_CUDNN
#if __has_include(<cudnn.h>)
#define SCOREOOD_HAVE_CUDNN 1
#else
#define SCOREOOD_HAVE_CUDNN 0
#endif
#endif
#ifndef SCOREOOD_HAVE_CUBLAS
#if __has_include(<cublas_v2.h>)
#define SCOREOOD_HAVE_CUBLAS 1
#else
#define SCOREOOD_HAVE_CUBLAS 0
#endif
#endif
#if SCOREOOD_HAVE_CUDNN
#include <cudnn.h>
#endif
#if SCOREOOD_HAVE_CUBLAS
#include <cublas_v2.h>
#endif

namespace scoreood::gpu {

/// A CUDA runtime, cuDNN or cuBLAS call failed (or a kernel launch did).
struct CudaError : Error {
  using Error::Error;
};

namespace detail {

[[noreturn]] inline void throw_call(const char* call, const char* file, int line, const std::string& what) {
  throw CudaError(std::string(call) + " failed at " + file + ":" + std::to_string(line) + ": " + what);
}

inline void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
  if (e != cudaSuccess) throw_call(call, file, line, std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")");
}

/// After a launch: configuration errors show up at once, faults at the next sync.
inline void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw_call((std::string("launch of kernel ") + kernel).c_str(), file, line,
               std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")");
}

#if SCOREOOD_HAVE_CUDNN
inline void check_cudnn(cudnnStatus_t s, const char* call, const char* file, int line) {
  if (s != CUDNN_STATUS_SUCCESS) {
    char detail[512] = {0};
    cudnnGetLastErrorString(detail, sizeof detail);  // cuDNN 9: the reason behind the status
    std::string what = cudnnGetErrorString(s);
    if (detail[0] != '\0') what += std::string("; ") + detail;
    throw_call(call, file, line, what);
  }
}
#endif

#if SCOREOOD_HAVE_CUBLAS
inline void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw_call(call, file, line, std::string(cublasGetStatusName(s)) + " (" + cublasGetStatusString(s) + ")");
}
#endif

}  // namespace detail
}  // namespace scoreood::gpu

/// Runs a CUDA runtime call and throws scoreood::gpu::CudaError if it fails.
#define SCOREOOD_CUDA_CHECK(call) ::scoreood::gpu::detail::check_cuda((call), #call, __FILE__, __LINE__)
/// Checks the launch that just happened (call right after `kernel<<<...>>>`).
#define SCOREOOD_CUDA_CHECK_LAUNCH(kernel_name) ::scoreood::gpu::detail::check_launch(kernel_name, __FILE__, __LINE__)
#if SCOREOOD_HAVE_CUDNN
/// Runs a cuDNN call and throws scoreood::gpu::CudaError if it fails.
#define SCOREOOD_CUDNN_CHECK(call) ::scoreood::gpu::detail::check_cudnn((call), #call, __FILE__, __LINE__)
#endif
#if SCOREOOD_HAVE_CUBLAS
/// Runs a cuBLAS call and throws scoreood::gpu::CudaError if it fails.
#define SCOREOOD_CUBLAS_CHECK(call) ::scoreood::gpu::detail::check_cublas((call), #call, __FILE__, __LINE__)
#endif
