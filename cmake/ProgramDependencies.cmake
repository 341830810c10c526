# What only this repository's programs need: the command-line parser and the
# JSON writer of examples/ (the scoreood tool and the experiment programs) and
# of their tests in tests/cli/. Debian: libcli11-dev nlohmann-json3-dev.
# None of it reaches the library target scoreood::scoreood, its install or its
# package files; a project that uses the library never needs these packages.
find_package(CLI11 2.1 CONFIG REQUIRED)
find_package(nlohmann_json 3.2 CONFIG REQUIRED)

# scoreood_example_support: what an example, the CLI or a test of their code links.
# examples/ is on the include path, so "cli/json.hpp" names examples/cli/json.hpp.
add_library(scoreood_example_support INTERFACE)
target_link_libraries(scoreood_example_support INTERFACE
  scoreood_programs CLI11::CLI11 nlohmann_json::nlohmann_json)
target_include_directories(scoreood_example_support INTERFACE ${PROJECT_SOURCE_DIR}/examples)
