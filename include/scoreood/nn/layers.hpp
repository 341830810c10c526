/** @file layers.hpp
 *  @brief All layers (forward + backward) of scoreood's networks. */
#pragma once
#include <scoreood/nn/layers/conv2d.hpp>
#include <scoreood/nn/layers/elu.hpp>
#include <scoreood/nn/layers/instance_norm.hpp>
#include <scoreood/nn/layers/pooling.hpp>
#include <scoreood/nn/layers/upsample.hpp>
