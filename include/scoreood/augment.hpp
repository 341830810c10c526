/** @file augment.hpp
 *  @brief Umbrella header for scoreood::augment: the AugmentationGroup concept
 *  and batch helpers, the groups (Identity, Rot4, Dihedral8, PatchPermutations)
 *  and the OOD transforms. */
#pragma once
#include <scoreood/augment/dihedral8.hpp>
#include <scoreood/augment/geometry.hpp>
#include <scoreood/augment/group.hpp>
#include <scoreood/augment/identity.hpp>
#include <scoreood/augment/ood_transforms.hpp>
#include <scoreood/augment/patch_permutations.hpp>
#include <scoreood/augment/rot4.hpp>
