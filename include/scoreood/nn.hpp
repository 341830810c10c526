/** @file nn.hpp
 *  @brief Neural-network building blocks: parameters, layers, optimisers, checkpoints. */
#pragma once
#include <scoreood/nn/parameter.hpp>
#include <scoreood/nn/layers.hpp>
#include <scoreood/nn/optim.hpp>
#include <scoreood/nn/checkpoint.hpp>
