/** @file nn.hpp
 *  @brief Neural-network building blocks: parameters, layers, blocks, the two
 *  score networks (SmallUNet, NcsnRefineNet), optimisers, checkpoints. */
#pragma once
#include <scoreood/nn/blocks/cond_res_block.hpp>
#include <scoreood/nn/blocks/refinenet.hpp>
#include <scoreood/nn/checkpoint.hpp>
#include <scoreood/nn/layers.hpp>
#include <scoreood/nn/nets/ncsn_refinenet.hpp>
#include <scoreood/nn/nets/small_unet.hpp>
#include <scoreood/nn/optim.hpp>
#include <scoreood/nn/parameter.hpp>
