// Must NOT compile: PatchPermutations has no device action (gpu::device_group), so
// building a DSM batch with it on the CUDA backend stops at a static_assert that
// names the problem. ctest cuda/compile_fail_group builds this and expects the message.
#include <scoreood/augment.hpp>
#include <scoreood/cuda.hpp>

void build_batch(scoreood::gpu::Context& ctx, const scoreood::gpu::DeviceTensor4<float>& data,
                 scoreood::gpu::DeviceDsmBatch& out) {
  const std::vector<float> sigmas{1.0f, 0.1f};
  scoreood::backend::ops<scoreood::backend::cuda>::make_dsm_batch(
      ctx, data, sigmas, scoreood::augment::PatchPermutations(7, 7, 4), 8,
      scoreood::score::DsmStreams::for_step(0, 0), out);
}
