/** @file config.hpp
 *  @brief Overridable macros and the one place host/device guards live. */
#pragma once

#ifndef SCOREOOD_VERSION_STRING
#define SCOREOOD_VERSION_STRING "0.1.0"
#endif

/// Defined to 1 when the translation unit is compiled by nvcc (CUDA path on).
#if defined(__CUDACC__)
#define SCOREOOD_WITH_CUDA 1
#define SCOREOOD_HOST_DEVICE __host__ __device__
#define SCOREOOD_DEVICE __device__
#else
#define SCOREOOD_WITH_CUDA 0
#define SCOREOOD_HOST_DEVICE
#define SCOREOOD_DEVICE
#endif

#if defined(_MSC_VER)
#define SCOREOOD_RESTRICT __restrict
#else
#define SCOREOOD_RESTRICT __restrict__
#endif
