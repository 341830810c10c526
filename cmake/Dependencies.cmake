# Everything the INTERFACE target needs, found once. Debian packages:
# libeigen3-dev xtensor-dev zlib1g-dev libomp-dev (OpenMP comes with g++).
include(GNUInstallDirs)
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(xtensor REQUIRED)
find_package(ZLIB REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
