/** @file metrics.hpp
 *  @brief Umbrella header for OOD evaluation metrics (OOD positive, higher score = more OOD). */
#pragma once
#include <scoreood/metrics/precision_recall.hpp>
#include <scoreood/metrics/report.hpp>
#include <scoreood/metrics/roc.hpp>
#include <scoreood/metrics/score_file.hpp>
#include <scoreood/metrics/table.hpp>
#include <scoreood/metrics/validate.hpp>
