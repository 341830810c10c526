/** @file cpu.hpp
 *  @brief Umbrella header: CPU kernels (threading, GEMM, element-wise helpers,
 *  the ISA tiers and the kernels compiled once per tier). */
#pragma once
#include <scoreood/cpu/elementwise.hpp>
#include <scoreood/cpu/gemm.hpp>
#include <scoreood/cpu/isa.hpp>
#include <scoreood/cpu/kernels.hpp>
#include <scoreood/cpu/threading.hpp>
