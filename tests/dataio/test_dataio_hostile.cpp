// IDX and CIFAR files whose headers promise more than the data holds: the
// readers allocate for what really arrives, not for what the header claims.
#include "dataio_helpers.hpp"

#include <scoreood/data/cifar.hpp>
#include <scoreood/data/idx.hpp>

#include <sys/resource.h>

#include <cstdint>

using namespace dataio_test;
using namespace scoreood;
using namespace scoreood::data;

namespace {
/// Peak resident set of this process so far, in MiB.
double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}
Bytes noise(std::size_t n, std::uint32_t state = 12345) {
  Bytes b(n);
  for (auto& v : b) v = static_cast<unsigned char>((state = state * 1664525u + 1013904223u) >> 24);
  return b;
}
}  // namespace

TEST_CASE("a gzip IDX header that claims 500 MB in a 600 kB file allocates what arrives", "[idx][errors]") {
  TempDir dir;
  // 600 kB of noise does not compress, so the gzip file is ~600 kB and may by
  // deflate's ratio hold up to ~620 MB: a claim of 650 000 images (510 MB)
  // passes that bound. The pixel buffer was allocated (and zeroed) for the
  // claim before the stream ended after 600 kB.
  const auto p = dir / "liar-images-idx3-ubyte.gz";
  write_gz(p, idx_images(650000, 28, 28, noise(600000)));
  const double before = peak_rss_mib();
  require_format_error([&] { load_idx_images(p); }, p, "truncated");
  const double grown = peak_rss_mib() - before;
  INFO("peak RSS grew by " << grown << " MiB");
  CHECK(grown < 100.0);

  // Labels: the same lie, 300 MB of labels claimed in a 300 kB file.
  const auto l = dir / "liar-labels-idx1-ubyte.gz";
  write_gz(l, idx_labels(noise(300000, 7), 300000000u));
  const double before2 = peak_rss_mib();
  require_format_error([&] { load_idx_labels(l); }, l, "truncated");
  CHECK(peak_rss_mib() - before2 < 100.0);
}

TEST_CASE("a gzip IDX file whose stream really holds the claim still loads", "[idx]") {
  TempDir dir;
  // More than one read chunk, so the growing buffer is exercised across chunks.
  const std::uint32_t n = 3000;
  const Bytes px = noise(std::size_t(n) * 784, 99);
  const auto p = dir / "many-images-idx3-ubyte.gz";
  write_gz(p, idx_images(n, 28, 28, px));
  const Images x = load_idx_images(p);
  REQUIRE(shape_of(x) == Shape4{n, 1, 28, 28});
  bool all = true;
  for (std::size_t i = 0; i < px.size(); ++i) all = all && x.data()[i] == float(px[i]) / 255.0f;
  CHECK(all);
}
