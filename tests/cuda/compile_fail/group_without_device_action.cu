// Must NOT compile: PatchPermutations has no device action (gpu::device_group), so
// building a DSM batch with it on the CUDA backend stops at a static_assert that
// names the problem. ctest cuda/compile_fail_group builds this and expects the message.
#include <scoreood/augment.hpp>
#include <scoreood/cuda.hpp>

void build_batch(scoreood::gpu::Context& ctx, const scoreood::gpu::DeviceTensor4<float>& data,
                 scoreood::gpu::DeviceTensor4<float>& input, scoreood::gpu::DeviceTensor4<float>& noise) {
  const std::vector<std::uint32_t> image{0, 1};
  const std::vector<float> sigma{1.0f, 0.1f};
  const std::vector<int> elements{0, 3};
  scoreood::backend::ops<scoreood::backend::cuda>::dsm_inputs(
      ctx, data, std::span<const std::uint32_t>(image), std::span<const float>(sigma),
      std::span<const int>(elements), scoreood::augment::PatchPermutations(7, 7, 4), scoreood::CounterRng(0), input,
      noise);
}
