/** @file scoreood.hpp
 *  @brief Everything: include this one header to use the library. */
#pragma once
#include <scoreood/augment.hpp>
#include <scoreood/concepts.hpp>
#include <scoreood/config.hpp>
#include <scoreood/data.hpp>
#include <scoreood/density.hpp>
#include <scoreood/detector.hpp>
#include <scoreood/detector_info.hpp>
#include <scoreood/metrics.hpp>
#include <scoreood/nn.hpp>
#include <scoreood/schedule.hpp>
#include <scoreood/score.hpp>
