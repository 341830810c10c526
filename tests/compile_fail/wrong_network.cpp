// Must not compile: a density model is not a score network.
#include <scoreood/scoreood.hpp>
int main() { scoreood::ScoreOOD<scoreood::density::Gmm> det; }
