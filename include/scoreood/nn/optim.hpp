/** @file optim.hpp
 *  @brief Optimisers over a ParameterStore: Adam (+ gradient clipping) and EMA. */
#pragma once
#include <scoreood/nn/optim/adam.hpp>
#include <scoreood/nn/optim/ema.hpp>
