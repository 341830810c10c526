/** @file schedule.hpp
 *  @brief Noise schedules: every policy has `sigmas()` returning sigma_1 > ... > sigma_L. */
#pragma once
#include <scoreood/schedule/explicit_list.hpp>
#include <scoreood/schedule/geometric.hpp>
#include <scoreood/schedule/linear.hpp>
#include <scoreood/schedule/validate.hpp>
