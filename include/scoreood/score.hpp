/** @file score.hpp
 *  @brief Score matching: DSM batches and loss, the trainer, normality vectors. */
#pragma once
#include <scoreood/score/dsm.hpp>
#include <scoreood/score/normality.hpp>
#include <scoreood/score/trainer.hpp>
