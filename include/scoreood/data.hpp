/** @file data.hpp
 *  @brief Umbrella header for scoreood::data: IDX and CIFAR readers, the
 *  generic `load(spec)`, transforms, dataset lookup and PNG grids. */
#pragma once
#include <scoreood/data/cifar.hpp>
#include <scoreood/data/dataset.hpp>
#include <scoreood/data/find.hpp>
#include <scoreood/data/idx.hpp>
#include <scoreood/data/input_file.hpp>
#include <scoreood/data/load.hpp>
#include <scoreood/data/png.hpp>
#include <scoreood/data/transforms.hpp>
