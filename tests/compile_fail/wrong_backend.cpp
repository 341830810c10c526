// Must not compile: a noise schedule has a `name` but is not a backend (the trait is closed).
#include <scoreood/scoreood.hpp>
int main() { scoreood::nn::SmallUNet<scoreood::schedule::Geometric> net; }
