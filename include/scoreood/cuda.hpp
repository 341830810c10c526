/** @file cuda.hpp
 *  @brief Umbrella header of the CUDA backend (namespace scoreood::gpu, and
 *  traits / ops<backend::cuda> in cuda/backend.cuh). Its .cuh headers are
 *  included only when nvcc compiles the translation unit (__CUDACC__);
 *  anywhere else this header is empty and the CPU path is unchanged. cuDNN /
 *  cuBLAS parts come in when their headers are found; the backend needs cuDNN
 *  (its convolutions), so backend::cuda is specialised only with it. */
#pragma once
#include <scoreood/config.hpp>

#if defined(__CUDACC__)
#include <scoreood/cuda/error.cuh>
#include <scoreood/cuda/memory.cuh>
#include <scoreood/cuda/tensor.cuh>
#include <scoreood/cuda/kernels/common.cuh>
#include <scoreood/cuda/kernels/cond_instance_norm.cuh>
#include <scoreood/cuda/kernels/dsm.cuh>
#include <scoreood/cuda/kernels/elementwise.cuh>
#include <scoreood/cuda/kernels/elu.cuh>
#include <scoreood/cuda/kernels/group.cuh>
#include <scoreood/cuda/kernels/noise.cuh>
#include <scoreood/cuda/kernels/norm_pp.cuh>
#include <scoreood/cuda/kernels/norms.cuh>
#include <scoreood/cuda/kernels/optim.cuh>
#include <scoreood/cuda/kernels/pool.cuh>
#include <scoreood/cuda/kernels/upsample.cuh>
#if SCOREOOD_HAVE_CUDNN
#include <scoreood/cuda/backend.cuh>
#include <scoreood/cuda/context.cuh>
#include <scoreood/cuda/conv.cuh>
#endif
#if SCOREOOD_HAVE_CUBLAS
#include <scoreood/cuda/blas.cuh>
#endif
#endif
