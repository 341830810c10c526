/** @file detector_info.hpp
 *  @brief What a detector file (ScoreOOD::save) holds, read without knowing
 *  its policies: a program that picks the ScoreOOD<Net, Aug, Density> to
 *  instantiate from the file itself reads this first.
 *
 *  A detector file is the checked container of kind "scoreood-detector"
 *  (core/serialization.hpp) whose body begins with the network, augmentation
 *  and density names, the noise levels, the feature string, the noise draws
 *  and the seed, followed by the network (its own header first,
 *  nn/nets/net_file.hpp: name and sizes), the fitted flag and the density. */
#pragma once
#include <scoreood/core/serialization.hpp>
#include <scoreood/nn/nets/net_file.hpp>
#include <scoreood/schedule/validate.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace scoreood {

/// The container kind of a detector file (ScoreOOD<...>::kind).
inline constexpr std::string_view detector_file_kind = "scoreood-detector";

/// What ScoreOOD::save records before the network, plus the network's sizes.
struct DetectorInfo {
  std::string network;       ///< Net::name, e.g. "small-unet", "ncsn"
  std::string augmentation;  ///< Aug::name, e.g. "identity", "rot4", "dihedral8"
  std::string density;       ///< Density::name, e.g. "gmm", "gaussian", "knn"
  std::vector<float> sigmas; ///< the noise levels, in the network's level order
  std::string features;      ///< the normality vector, as score::FeatureSet::str() writes it ("msma,elem,log")
  std::uint64_t draws = 1;   ///< noise draws per image for rec/rot/elem
  std::uint64_t seed = 0;
  /// From the network's own header: channels, image size, width (SmallUNet's width or NCSN's ngf), levels.
  nn::detail::NetSizes sizes;
};

/// Reads the header of the detector file at `path` (nothing after the network's sizes is parsed).
/// Throws FormatError naming the file when it is not a detector file (another kind of scoreood
/// file, a truncated or corrupt one), its noise levels are not finite, positive and
/// strictly decreasing, or its network header disagrees with
/// the detector's (another network name, another number of levels).
inline DetectorInfo read_detector_info(const std::filesystem::path& path) {
  const auto body = io::load_container(path, detector_file_kind);
  io::ByteReader r(body, path.string());
  DetectorInfo d;
  d.network = r.get_string(64);
  d.augmentation = r.get_string(64);
  d.density = r.get_string(64);
  d.sigmas = r.get_vector<float>("noise levels");
  if (const auto problem = schedule::sigma_problem(d.sigmas); !problem.empty()) r.fail(problem);
  d.features = r.get_string(64, "features");
  d.draws = r.get<std::uint64_t>();
  d.seed = r.get<std::uint64_t>();
  auto [net, sizes] = nn::detail::read_net_header_any(r);
  if (net != d.network) r.fail("names the network '" + d.network + "' but holds a '" + net + "' network");
  if (sizes.num_levels != d.sigmas.size())
    r.fail("network and schedule disagree on the number of levels (" + std::to_string(sizes.num_levels) + " vs " +
           std::to_string(d.sigmas.size()) + ")");
  d.sizes = sizes;
  return d;
}

}  // namespace scoreood
