// The command-line tool compiled by nvcc (-DSCOREOOD_CUDA_CLI=ON): the same
// program as examples/scoreood.cpp, with --device cuda running the networks on
// the GPU. nvcc compiles every network for both backends here, so this build
// takes several times longer than the host compiler's.
#define SCOREOOD_CLI_CUDA 1
#include "../scoreood.cpp"
