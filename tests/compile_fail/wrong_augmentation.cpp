// Must not compile: int is not an augmentation group.
#include <scoreood/scoreood.hpp>
int main() { scoreood::ScoreOOD<scoreood::nn::SmallUNet<>, int> det; }
