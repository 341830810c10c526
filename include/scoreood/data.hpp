/** @file data.hpp
 *  @brief Umbrella header for scoreood::data: IDX and CIFAR readers, image
 *  files, folders and lists (with scoreood::image_io), the generic
 *  `load(spec)` and streaming `open(spec)`, transforms, dataset lookup, PNG
 *  grids and image writers. */
#pragma once
#include <scoreood/data/cifar.hpp>
#include <scoreood/data/dataset.hpp>
#include <scoreood/data/find.hpp>
#include <scoreood/data/heatmap.hpp>
#include <scoreood/data/idx.hpp>
#include <scoreood/data/image_file.hpp>
#include <scoreood/data/image_list.hpp>
#include <scoreood/data/image_write.hpp>
#include <scoreood/data/input_file.hpp>
#include <scoreood/data/load.hpp>
#include <scoreood/data/png.hpp>
#include <scoreood/data/source.hpp>
#include <scoreood/data/spec.hpp>
#include <scoreood/data/stb.hpp>
#include <scoreood/data/transforms.hpp>
