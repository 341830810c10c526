/** @file density.hpp
 *  @brief Umbrella header for density models on normality vectors (OOD score = -log_likelihood). */
#pragma once
#include <scoreood/density/density_model.hpp>
#include <scoreood/density/gaussian.hpp>
#include <scoreood/density/gmm.hpp>
#include <scoreood/density/knn.hpp>
#include <scoreood/density/linalg.hpp>
#include <scoreood/density/standard_scaler.hpp>

namespace scoreood::density {
static_assert(DensityModel<Gmm>);
static_assert(DensityModel<Gaussian>);
static_assert(DensityModel<Knn>);
}  // namespace scoreood::density
