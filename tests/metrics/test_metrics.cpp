// OOD metrics against scikit-learn reference values (tests/reference/make_metric_refs.py),
// plus properties, float overloads, error cases and score files.
#include <scoreood/metrics.hpp>

#include <catch2/catch.hpp>

#include "../reference/ref_file.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>
#include <unistd.h>
#include <string>
#include <vector>

namespace m = scoreood::metrics;
using scoreood::testing::read_ref_file;
using scoreood::testing::RefCase;

namespace {

const std::vector<RefCase>& refs() {
  static const auto cases = read_ref_file(std::string(SCOREOOD_TEST_DATA_DIR) + "/metric_refs.txt");
  return cases;
}

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const scoreood::Error& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

TEST_CASE("metrics match scikit-learn on stored cases", "[metrics]") {
  REQUIRE(refs().size() >= 12);
  for (const auto& c : refs()) {
    INFO("case " << c.name);
    const auto& in = c.at("in").values;
    const auto& out = c.at("out").values;
    CHECK(m::auroc(in, out) == Approx(c.at("auroc").scalar()).margin(1e-9).epsilon(0));
    CHECK(m::aupr_out(in, out) == Approx(c.at("aupr_out").scalar()).margin(1e-9).epsilon(0));
    CHECK(m::aupr_in(in, out) == Approx(c.at("aupr_in").scalar()).margin(1e-9).epsilon(0));
    CHECK(m::fpr_at_tpr(in, out) == Approx(c.at("fpr95").scalar()).margin(1e-9).epsilon(0));
    CHECK(m::tnr_at_tpr(in, out) == Approx(c.at("tnr95").scalar()).margin(1e-9).epsilon(0));
    CHECK(m::detection_accuracy(in, out) == Approx(c.at("detection_accuracy").scalar()).margin(1e-9).epsilon(0));

    const auto roc = m::roc_curve(in, out);
    const auto& fpr = c.at("roc_fpr").values;
    const auto& tpr = c.at("roc_tpr").values;
    const auto& thr = c.at("roc_thr").values;
    REQUIRE(roc.fpr.size() == fpr.size());
    REQUIRE(roc.tpr.size() == tpr.size());
    REQUIRE(roc.thresholds.size() == thr.size() + 1);
    CHECK(std::isinf(roc.thresholds[0]));
    for (std::size_t i = 0; i < fpr.size(); ++i) {
      CHECK(roc.fpr[i] == Approx(fpr[i]).margin(1e-12).epsilon(0));
      CHECK(roc.tpr[i] == Approx(tpr[i]).margin(1e-12).epsilon(0));
    }
    for (std::size_t i = 0; i < thr.size(); ++i) CHECK(roc.thresholds[i + 1] == thr[i]);

    const auto rep = m::evaluate(in, out);
    CHECK(rep.auroc == m::auroc(in, out));
    CHECK(rep.aupr_in == m::aupr_in(in, out));
    CHECK(rep.aupr_out == m::aupr_out(in, out));
    CHECK(rep.fpr_at_95_tpr == m::fpr_at_tpr(in, out, 0.95));
    CHECK(rep.tnr_at_95_tpr == m::tnr_at_tpr(in, out, 0.95));
    CHECK(rep.detection_accuracy == m::detection_accuracy(in, out));
    CHECK(rep.n_in == in.size());
    CHECK(rep.n_out == out.size());
  }
}

TEST_CASE("metric properties: order, monotone maps, swapping roles", "[metrics]") {
  const auto& c = refs().front();  // random continuous
  auto in = c.at("in").values, out = c.at("out").values;
  const double a = m::auroc(in, out), pin = m::aupr_in(in, out), pout = m::aupr_out(in, out);
  const double f = m::fpr_at_tpr(in, out), d = m::detection_accuracy(in, out);

  std::mt19937 gen(7);
  std::shuffle(in.begin(), in.end(), gen);
  std::shuffle(out.begin(), out.end(), gen);
  CHECK(m::auroc(in, out) == a);
  CHECK(m::aupr_in(in, out) == pin);
  CHECK(m::aupr_out(in, out) == pout);
  CHECK(m::fpr_at_tpr(in, out) == f);

  // Strictly increasing maps keep every rank-based metric.
  std::vector<double> ein(in.size()), eout(out.size());
  std::transform(in.begin(), in.end(), ein.begin(), [](double x) { return std::exp(2 * x) + 5; });
  std::transform(out.begin(), out.end(), eout.begin(), [](double x) { return std::exp(2 * x) + 5; });
  CHECK(m::auroc(ein, eout) == Approx(a).margin(1e-15).epsilon(0));
  CHECK(m::aupr_out(ein, eout) == Approx(pout).margin(1e-15).epsilon(0));
  CHECK(m::detection_accuracy(ein, eout) == Approx(d).margin(1e-15).epsilon(0));

  // Swapping the sets and negating: AUROC is symmetric, AUPR-in/out exchange.
  std::vector<double> nin(out.size()), nout(in.size());
  std::transform(out.begin(), out.end(), nin.begin(), [](double x) { return -x; });
  std::transform(in.begin(), in.end(), nout.begin(), [](double x) { return -x; });
  CHECK(m::auroc(nin, nout) == Approx(a).margin(1e-15).epsilon(0));
  CHECK(m::aupr_out(nin, nout) == Approx(pin).margin(1e-15).epsilon(0));
  CHECK(m::aupr_in(nin, nout) == Approx(pout).margin(1e-15).epsilon(0));
  CHECK(m::auroc(out, in) == Approx(1.0 - a).margin(1e-15).epsilon(0));

  // FPR at other targets: the first ROC point whose TPR reaches the target.
  const auto roc = m::roc_curve(in, out);
  for (double t : {0.1, 0.5, 0.8, 0.99, 1.0}) {
    std::size_t j = 0;
    while (roc.tpr[j] < t) ++j;
    CHECK(m::fpr_at_tpr(in, out, t) == roc.fpr[j]);
    CHECK(m::tnr_at_tpr(in, out, t) == 1.0 - roc.fpr[j]);
  }
  // FPR@TPR is non-decreasing in the target.
  double prev = 0;
  for (double t = 0.05; t <= 1.0; t += 0.05) {
    const double v = m::fpr_at_tpr(in, out, t);
    CHECK(v >= prev);
    prev = v;
  }
}

TEST_CASE("float containers are converted to double", "[metrics]") {
  const auto& c = refs().front();
  std::vector<float> fin(c.at("in").values.begin(), c.at("in").values.end());
  std::vector<float> fout(c.at("out").values.begin(), c.at("out").values.end());
  const std::vector<double> din(fin.begin(), fin.end()), dout(fout.begin(), fout.end());
  CHECK(m::auroc(fin, fout) == m::auroc(din, dout));
  CHECK(m::aupr_in(std::span<const float>(fin), std::span<const float>(fout)) == m::aupr_in(din, dout));
  CHECK(m::aupr_out(fin, fout) == m::aupr_out(din, dout));
  CHECK(m::fpr_at_tpr(fin, fout, 0.9) == m::fpr_at_tpr(din, dout, 0.9));
  CHECK(m::tnr_at_tpr(fin, fout) == m::tnr_at_tpr(din, dout));
  CHECK(m::detection_accuracy(fin, fout) == m::detection_accuracy(din, dout));
  CHECK(m::roc_curve(fin, fout).fpr == m::roc_curve(din, dout).fpr);
  CHECK(m::evaluate(fin, dout).auroc == m::auroc(din, dout));  // mixed precisions
}

TEST_CASE("metric errors name the set and the index", "[metrics]") {
  const std::vector<double> ok{0.1, 0.2, 0.3}, empty;
  CHECK_THROWS_AS(m::auroc(empty, ok), scoreood::ValueError);
  CHECK(contains(message_of([&] { m::auroc(empty, ok); }), "in_scores is empty"));
  CHECK(contains(message_of([&] { m::aupr_out(ok, empty); }), "out_scores is empty"));
  std::vector<double> bad{0.1, 0.2, std::numeric_limits<double>::quiet_NaN()};
  CHECK_THROWS_AS(m::evaluate(ok, bad), scoreood::ValueError);
  CHECK(contains(message_of([&] { m::evaluate(ok, bad); }), "out_scores[2]"));
  bad[2] = std::numeric_limits<double>::infinity();
  CHECK(contains(message_of([&] { m::roc_curve(bad, ok); }), "in_scores[2]"));
  const std::vector<float> fbad{1.0f, -std::numeric_limits<float>::infinity()};
  CHECK(contains(message_of([&] { m::detection_accuracy(fbad, ok); }), "in_scores[1]"));
  CHECK_THROWS_AS(m::fpr_at_tpr(ok, ok, 0.0), scoreood::ValueError);
  CHECK_THROWS_AS(m::fpr_at_tpr(ok, ok, 1.5), scoreood::ValueError);
  CHECK_THROWS_AS(m::tnr_at_tpr(ok, ok, std::numeric_limits<double>::quiet_NaN()), scoreood::ValueError);
}

TEST_CASE("score files round-trip and report bad lines", "[metrics][io]") {
  const auto dir = std::filesystem::temp_directory_path() / ("scoreood_metrics_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / "scores.txt";
  std::vector<double> s{0.1, -1e-300, 1.0 / 3.0, 12345678.901234567, -0.0, 2.5e17};
  m::write_scores(path, s);
  CHECK(m::read_scores(path) == s);  // %.17g is exact

  {
    std::ofstream os(path);
    os << "1.5\n\n   \n  -2e3 \r\n+4\n";
  }
  CHECK(m::read_scores(path) == std::vector<double>{1.5, -2000.0, 4.0});
  {
    std::ofstream os(path);
    os << "1.5\n2.5\n0.3 0.4\n";
  }
  CHECK_THROWS_AS(m::read_scores(path), scoreood::FormatError);
  CHECK(contains(message_of([&] { m::read_scores(path); }), path.string() + ":3:"));
  {
    std::ofstream os(path);
    os << "1.5\nabc\n";
  }
  CHECK(contains(message_of([&] { m::read_scores(path); }), ":2:"));
  {
    std::ofstream os(path);
    os << "nan\n";
  }
  CHECK(contains(message_of([&] { m::read_scores(path); }), ":1: score is not finite"));
  CHECK_THROWS_AS(m::read_scores(dir / "missing.txt"), scoreood::FormatError);
  std::filesystem::remove_all(dir);
}
