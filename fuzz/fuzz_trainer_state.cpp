// libFuzzer target: score::Trainer<SmallUNet, Rot4>::load on a container whose
// checksum is fixed up. A state that loads must also train: one step runs on
// the loaded network, optimiser and EMA when the network is small.
#include "fuzz_common.hpp"
#include "fuzz_models.hpp"

#include <scoreood/score/trainer.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace so = scoreood;
  using Net = so::nn::SmallUNet<>;
  // One trainer for the whole run: a failed load must leave it usable.
  static Net net(so::fuzz::tiny_net());
  static so::score::Trainer<Net, so::augment::Rot4> trainer(net, {}, so::fuzz::tiny_sigmas(),
                                                             {.batch = 2, .ema = 0.9, .log_every = 0});
  const auto p = so::fuzz::scratch_file("train-state.sood");
  so::fuzz::write_file(p, so::fuzz::with_valid_crc(data, size));
  try {
    trainer.load(p);
  } catch (const so::Error&) {
    return 0;
  }
  const auto& c = net.config();
  if (c.image_size <= 16 && net.parameter_count() <= 50000) {
    try {
      trainer.train_step(so::fuzz::pattern_images(3, c.channels, c.image_size));
    } catch (const so::Error&) {
      // e.g. a loss that diverges from huge (finite) weights: refused, not a crash
    }
  }
  return 0;
}
