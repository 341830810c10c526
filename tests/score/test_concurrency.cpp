// const paths from several threads at once: ScoreOOD::score / normality and the networks'
// infer share one object between std::threads and must give each thread exactly the scores
// a lone caller gets. Built also under ThreadSanitizer by `scripts/test --tsan`.
#include <catch2/catch.hpp>
#include <scoreood/density/gaussian.hpp>
#include <scoreood/detector.hpp>
#include <scoreood/nn/nets/ncsn_refinenet.hpp>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

using namespace scoreood;

namespace {

Images random_images(std::size_t n, std::size_t size, std::uint64_t seed) {
  Images x = Images::from_shape({n, std::size_t(1), size, size});
  const CounterRng r(seed, 0);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = r.uniform(i);
  return x;
}

/// Same shape and the same values, element by element.
template <class A>
bool identical(const A& a, const A& b) {
  return a.shape() == b.shape() && std::equal(a.data(), a.data() + a.size(), b.data());
}

/// Runs f(thread index) on `threads` std::threads started together; returns once all are done.
template <class F>
void on_threads(int threads, F&& f) {
  std::atomic<int> ready{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ++ready;
      while (ready.load() < threads) std::this_thread::yield();  // start together: overlap the calls
      f(t);
    });
  for (auto& th : pool) th.join();
}

template <class Net>
void check_detector_scores_concurrently(typename Net::Config cfg) {
  using Det = ScoreOOD<Net, augment::Rot4, density::Gaussian>;
  typename Det::Options o;
  o.net = cfg;
  o.batch = 5;  // several batches per call, the last one short
  Det det(schedule::Geometric{1.0f, 0.05f, 3}, o);
  const Images train = random_images(24, cfg.image_size, 1), test = random_images(13, cfg.image_size, 2);
  score::TrainOptions t;
  t.steps = 3;
  t.batch = 8;
  t.log_every = 0;
  det.train(train, t);
  det.fit_density(train);
  const std::vector<double> alone = det.score(test);
  const Matrix<double> alone_vectors = det.normality(test);

  constexpr int kThreads = 4, kRounds = 3;
  std::vector<std::vector<std::vector<double>>> got(kThreads);
  std::vector<int> vectors_equal(kThreads, 1);
  const Det& shared = det;
  on_threads(kThreads, [&](int t) {
    for (int k = 0; k < kRounds; ++k) {
      got[t].push_back(shared.score(test));
      if (!identical(shared.normality(test), alone_vectors)) vectors_equal[t] = 0;
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    CHECK(vectors_equal[t] == 1);
    for (const auto& s : got[t]) CHECK(s == alone);  // bit for bit
  }
}

template <class Net>
void check_infer_concurrently(typename Net::Config cfg) {
  const Net net(cfg, 3);
  const std::size_t N = 6;
  const Images x = random_images(N, cfg.image_size, 4);
  const std::vector<int> levels{0, 1, 2, 0, 1, 2};
  Images alone;
  net.infer(x, levels, alone);

  constexpr int kThreads = 4;
  std::vector<Images> with_spare(kThreads), with_own(kThreads);
  on_threads(kThreads, [&](int t) {
    typename Net::Workspace ws;
    for (int k = 0; k < 3; ++k) {
      net.infer(x, levels, with_spare[t]);  // the convenience overload: the spare or a fresh workspace
      net.infer(ws, x, levels, with_own[t]);
    }
  });
  for (int t = 0; t < kThreads; ++t) {
    CHECK(identical(with_spare[t], alone));
    CHECK(identical(with_own[t], alone));
  }
}

}  // namespace

TEST_CASE("ScoreOOD::score from several threads at once equals a lone call (SmallUNet)", "[detector][threads]") {
  check_detector_scores_concurrently<nn::SmallUNet<>>({.channels = 1, .image_size = 8, .width = 8});
}

TEST_CASE("ScoreOOD::score from several threads at once equals a lone call (NcsnRefineNet)", "[detector][threads]") {
  check_detector_scores_concurrently<nn::NcsnRefineNet<>>({.channels = 1, .image_size = 8, .ngf = 4});
}

TEST_CASE("Network infer from several threads at once equals a lone call", "[nn][threads]") {
  check_infer_concurrently<nn::SmallUNet<>>({.channels = 1, .image_size = 8, .width = 8, .num_levels = 3});
  check_infer_concurrently<nn::NcsnRefineNet<>>({.channels = 1, .image_size = 8, .ngf = 4, .num_levels = 3});
}

TEST_CASE("A workspace serves inputs of another batch size and another network", "[nn][threads]") {
  const nn::SmallUNet<> a({.channels = 1, .image_size = 8, .width = 8, .num_levels = 3}, 1);
  const nn::SmallUNet<> b({.channels = 1, .image_size = 12, .width = 4, .num_levels = 3}, 2);
  nn::SmallUNet<>::Workspace ws;
  const Images x8 = random_images(5, 8, 5), x12 = random_images(2, 12, 6);
  const std::vector<int> l5{0, 1, 2, 1, 0}, l2{2, 0};
  Images ref_a, ref_b, got;
  a.infer(x8, l5, ref_a);
  b.infer(x12, l2, ref_b);
  a.infer(ws, x8, l5, got);
  CHECK(identical(got, ref_a));
  b.infer(ws, x12, l2, got);  // every scratch tensor changes shape
  CHECK(identical(got, ref_b));
  a.infer(ws, x8, l5, got);
  CHECK(identical(got, ref_a));
}
