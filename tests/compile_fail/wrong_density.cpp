// Must not compile: a noise schedule is not a density model.
#include <scoreood/scoreood.hpp>
int main() { scoreood::ScoreOOD<scoreood::nn::SmallUNet<>, scoreood::augment::Rot4, scoreood::schedule::Geometric> det; }
