/** @file layers.hpp
 *  @brief All layers (forward + backward) of scoreood's networks. */
#pragma once
#include <scoreood/nn/layers/instance_norm.hpp>
