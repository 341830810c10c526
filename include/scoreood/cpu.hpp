/** @file cpu.hpp
 *  @brief Umbrella header: CPU kernels (threading, GEMM, im2col, element-wise helpers). */
#pragma once
#include <scoreood/cpu/elementwise.hpp>
#include <scoreood/cpu/gemm.hpp>
#include <scoreood/cpu/im2col.hpp>
#include <scoreood/cpu/threading.hpp>
