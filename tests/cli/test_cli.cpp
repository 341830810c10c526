// The scoreood program, run as a user would: metrics and inspect against the
// library, error paths (exit 1 and one "scoreood: ..." line on stderr), and a
// tiny end-to-end train -> fit -> score -> eval whose scores match the library's.
// JSON output is read back with nlohmann-json, as any JSON reader would.
#include <scoreood/scoreood.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#ifndef SCOREOOD_CLI_PATH
#error "SCOREOOD_CLI_PATH (the scoreood program) must be defined by tests/CMakeLists.txt"
#endif

namespace fs = std::filesystem;
namespace so = scoreood;
using nlohmann::json;

namespace {

struct Run {
  int rc = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream is(p, std::ios::binary);
  std::stringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

/// A fresh folder per test case, removed at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "scoreood-cli-XXXXXX").string();
    REQUIRE(::mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

/// Runs `scoreood ARGS` in `dir` (single-quoted arguments), capturing stdout and stderr.
Run run_cli(const TempDir& dir, const std::vector<std::string>& args) {
  std::string cmd = "cd '" + dir.path.string() + "' && '" SCOREOOD_CLI_PATH "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " >'" + dir / "stdout.txt" + "' 2>'" + dir / "stderr.txt" + "'";
  const int st = std::system(cmd.c_str());
  Run r;
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(dir.path / "stdout.txt");
  r.err = slurp(dir.path / "stderr.txt");
  return r;
}

std::size_t count_lines(const std::string& s) { return std::size_t(std::count(s.begin(), s.end(), '\n')); }

/// The failure contract: exit 1, exactly one line on stderr, starting "scoreood: ", containing `what`.
void check_fails(const Run& r, const std::string& what) {
  INFO("stderr: " << r.err);
  CHECK(r.rc == 1);
  CHECK(r.err.rfind("scoreood: ", 0) == 0);
  CHECK(count_lines(r.err) == 1);
  CHECK(r.err.find(what) != std::string::npos);
}

/// The number after `key` (e.g. "\"auroc\": " or "auroc ") at or after `from`.
double number_after(const std::string& s, const std::string& key, std::size_t from = 0) {
  auto k = s.find(key, from);
  REQUIRE(k != std::string::npos);
  k += key.size();
  while (k < s.size() && s[k] == ' ') ++k;
  double v = 0;
  const auto res = std::from_chars(s.data() + k, s.data() + s.size(), v);
  REQUIRE(res.ec == std::errc{});
  return v;
}

void write_be32(std::ofstream& os, std::uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v >> 24), static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 8), static_cast<unsigned char>(v)};
  os.write(reinterpret_cast<const char*>(b), 4);
}
/// Uncompressed IDX images file: n x size x size bytes.
void write_idx_images(const std::string& path, const std::vector<unsigned char>& px, std::uint32_t n, std::uint32_t size) {
  std::ofstream os(path, std::ios::binary);
  write_be32(os, 0x00000803);
  write_be32(os, n);
  write_be32(os, size);
  write_be32(os, size);
  os.write(reinterpret_cast<const char*>(px.data()), std::streamsize(px.size()));
}
void write_idx_labels(const std::string& path, const std::vector<unsigned char>& labels) {
  std::ofstream os(path, std::ios::binary);
  write_be32(os, 0x00000801);
  write_be32(os, std::uint32_t(labels.size()));
  os.write(reinterpret_cast<const char*>(labels.data()), std::streamsize(labels.size()));
}

/// In-distribution: one soft blob per image; OOD: uniform noise.
std::vector<unsigned char> blobs(std::uint32_t n, std::uint32_t s, std::uint64_t seed) {
  std::mt19937 g(static_cast<unsigned>(seed));
  std::vector<unsigned char> px(std::size_t(n) * s * s);
  for (std::uint32_t i = 0; i < n; ++i) {
    const double cy = 2 + g() % (s - 3), cx = 2 + g() % (s - 3);
    for (std::uint32_t y = 0; y < s; ++y)
      for (std::uint32_t x = 0; x < s; ++x)
        px[(std::size_t(i) * s + y) * s + x] =
            static_cast<unsigned char>(255.0 * std::exp(-((y - cy) * (y - cy) + (x - cx) * (x - cx)) / 4.0));
  }
  return px;
}
std::vector<unsigned char> noise(std::uint32_t n, std::uint32_t s, std::uint64_t seed) {
  std::mt19937 g(static_cast<unsigned>(seed));
  std::vector<unsigned char> px(std::size_t(n) * s * s);
  for (auto& p : px) p = static_cast<unsigned char>(g() & 0xFF);
  return px;
}

void write_scores_file(const std::string& path, const std::vector<double>& v) { so::metrics::write_scores(path, v); }

}  // namespace

TEST_CASE("scoreood metrics prints the library's evaluate()", "[cli]") {
  TempDir d;
  const std::vector<double> in{0.1, 0.4, 0.35, 0.8, 0.2, 0.3, 0.3, 0.05};
  const std::vector<double> out{0.9, 0.3, 0.7, 0.65, 0.3, 1.2};
  write_scores_file(d / "in.txt", in);
  write_scores_file(d / "out.txt", out);
  const auto want = so::metrics::evaluate(in, out);

  SECTION("text") {
    const Run r = run_cli(d, {"metrics", "--in", "in.txt", "--out", "out.txt"});
    REQUIRE(r.rc == 0);
    CHECK(r.err.empty());
    CHECK(number_after(r.out, "auroc ") == want.auroc);
    CHECK(number_after(r.out, "aupr_in ") == want.aupr_in);
    CHECK(number_after(r.out, "aupr_out ") == want.aupr_out);
    CHECK(number_after(r.out, "fpr_at_95_tpr ") == want.fpr_at_95_tpr);
    CHECK(number_after(r.out, "tnr_at_95_tpr ") == want.tnr_at_95_tpr);
    CHECK(number_after(r.out, "detection_accuracy ") == want.detection_accuracy);
    CHECK(number_after(r.out, "n_out ") == 6);
  }
  SECTION("json") {
    const Run r = run_cli(d, {"metrics", "--in", "in.txt", "--out", "out.txt", "--json"});
    REQUIRE(r.rc == 0);
    CHECK(count_lines(r.out) == 1);
    const json j = json::parse(r.out);
    for (const char* k : {"auroc", "aupr_in", "aupr_out", "fpr_at_95_tpr", "tnr_at_95_tpr", "detection_accuracy"})
      CHECK(j.at(k).is_number_float());
    CHECK(j["auroc"].get<double>() == want.auroc);  // exact: full precision
    CHECK(j["aupr_in"].get<double>() == want.aupr_in);
    CHECK(j["fpr_at_95_tpr"].get<double>() == want.fpr_at_95_tpr);
    CHECK(j["detection_accuracy"].get<double>() == want.detection_accuracy);
    CHECK(j["n_in"] == in.size());
    CHECK(j["n_out"] == out.size());
    // Swapping the roles mirrors the AUROC.
    const Run s = run_cli(d, {"metrics", "--in=out.txt", "--out=in.txt", "--json"});
    REQUIRE(s.rc == 0);
    CHECK(json::parse(s.out)["auroc"].get<double>() == Approx(1.0 - want.auroc).epsilon(1e-12));
  }
  SECTION("bad score files") {
    std::ofstream(d / "bad.txt") << "0.5\nnot-a-number\n";
    check_fails(run_cli(d, {"metrics", "--in", "in.txt", "--out", "bad.txt"}), "bad.txt:2");
    check_fails(run_cli(d, {"metrics", "--in", "in.txt", "--out", "missing.txt"}), "missing.txt");
    check_fails(run_cli(d, {"metrics", "--in", "in.txt"}), "missing --out");
  }
}

TEST_CASE("scoreood inspect describes an IDX file", "[cli]") {
  TempDir d;
  std::vector<unsigned char> px(5 * 4 * 4, 0);
  px[3] = 255;   // max 1
  px[20] = 51;   // 0.2
  write_idx_images(d / "tiny-images-idx3-ubyte", px, 5, 4);
  write_idx_labels(d / "tiny-labels-idx1-ubyte", {7, 7, 2, 7, 2});
  const Run r = run_cli(d, {"inspect", "tiny-images-idx3-ubyte"});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("idx") != std::string::npos);
  CHECK(number_after(r.out, "count") == 5);
  CHECK(r.out.find("1x4x4") != std::string::npos);
  CHECK(number_after(r.out, "min ") == 0);
  CHECK(number_after(r.out, "max ") == 1);
  CHECK(number_after(r.out, "mean") == Approx((1.0 + 0.2) / 80.0).epsilon(1e-6));
  CHECK(r.out.find("  2  2\n") != std::string::npos);  // label 2 twice
  CHECK(r.out.find("  7  3\n") != std::string::npos);  // label 7 three times

  // :first=N and the --data-root lookup go through data::load.
  TempDir other;
  const Run f = run_cli(other, {"--data-root", d.path.string(), "inspect", "tiny-images-idx3-ubyte:first=2"});
  INFO(f.err);
  REQUIRE(f.rc == 0);
  CHECK(number_after(f.out, "count") == 2);

  std::ofstream(d / "corrupt-images-idx3-ubyte", std::ios::binary) << std::string("\0\0\x08\x03\0\0\0\x09", 8);
  check_fails(run_cli(d, {"inspect", "corrupt-images-idx3-ubyte"}), "corrupt-images-idx3-ubyte");
  check_fails(run_cli(d, {"inspect", "no-such-file"}), "no-such-file");
  check_fails(run_cli(d, {"inspect"}), "missing");
}

TEST_CASE("scoreood rejects bad command lines with one line and exit 1", "[cli]") {
  TempDir d;
  check_fails(run_cli(d, {}), "no command");
  check_fails(run_cli(d, {"frobnicate"}), "unknown command 'frobnicate'");
  check_fails(run_cli(d, {"metrics", "--in", "a", "--out", "b", "--bogus"}), "metrics: unknown option --bogus");
  check_fails(run_cli(d, {"metrics", "--in", "a", "--out", "b", "--bogus=3"}), "unknown option --bogus ");
  check_fails(run_cli(d, {"metrics", "--in", "a"}), "metrics: missing --out");
  check_fails(run_cli(d, {"metrics", "--in", "a", "--out", "b", "--json=1"}), "--json takes no value");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--steps", "ten"}), "train: --steps: 'ten'");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--steps=ten"}), "--steps: 'ten'");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--steps", "-3"}), "--steps: '-3'");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--seed", "0x10", "--steps", "1"}), "--seed: '0x10'");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--steps"}), "--steps needs a value");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--lr", "1e-3x", "--steps", "1"}), "--lr: '1e-3x'");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--minutes", "inf"}), "--minutes: 'inf' is not a number");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m"}), "--steps N or --minutes M");
  // A misspelt flag is named, not the flag it was meant to be.
  check_fails(run_cli(d, {"train", "--data", "x", "--ouut", "m", "--steps", "1"}), "unknown option --ouut");
  check_fails(run_cli(d, {"--data-root", (d / "nowhere")}), "not a directory");
  check_fails(run_cli(d, {"--data-root"}), "--data-root needs a value");
  check_fails(run_cli(d, {"inspect", "--data-root", d.path.string(), "x"}), "unknown option --data-root");  // before the command only
  check_fails(run_cli(d, {"inspect", "a", "b"}), "unexpected argument 'b'");
  check_fails(run_cli(d, {"eval", "--model", "m", "--in", "x", "--transforms", "rot45"}), "rot45");
  check_fails(run_cli(d, {"eval", "--model", "m", "--in", "x", "--ood", "a=p", "q=r"}), "unexpected argument 'q=r'");
  check_fails(run_cli(d, {"eval", "--model", "m", "--in", "x", "--ood", "a=p", "--ood=rot90=q", "--transforms", "rot90"}),
              "eval: two sets are named 'rot90'");
  check_fails(run_cli(d, {"fit", "--model", "m", "--data", "x", "--out", "o", "--density", "flow"}), "unknown density 'flow'");
  std::ofstream(d / "junk.sood") << "this is not a detector";
  check_fails(run_cli(d, {"score", "--model", "junk.sood", "--data", "x", "--out", "s"}), "junk.sood");
  for (const char* cmd : {"metrics", "inspect", "train", "fit", "score", "eval"}) {
    const Run h = run_cli(d, {cmd, "--help"});
    CHECK(h.rc == 0);
    CHECK(h.out.rfind("usage: scoreood " + std::string(cmd), 0) == 0);
    CHECK(run_cli(d, {cmd, "-h"}).out == h.out);
  }
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--help"}, {"help"}, {"--data-root", ".", "--help"}}) {
    const Run h = run_cli(d, args);
    CHECK(h.rc == 0);
    CHECK(h.out.rfind("usage: scoreood [--data-root DIR] COMMAND", 0) == 0);
  }
}

TEST_CASE("scoreood train -> fit -> score -> eval on tiny images", "[cli][e2e]") {
  TempDir d;
  constexpr std::uint32_t S = 8, N = 40, M = 16;
  write_idx_images(d / "train-images-idx3-ubyte", blobs(N, S, 1), N, S);
  write_idx_images(d / "test-images-idx3-ubyte", blobs(M, S, 2), M, S);
  write_idx_images(d / "noise-images-idx3-ubyte", noise(M, S, 3), M, S);
  write_idx_images(d / "big-images-idx3-ubyte", noise(3, 12, 4), 3, 12);

  Run r = run_cli(d, {"train", "--data", "train-images-idx3-ubyte", "--net", "small-unet", "--width", "8", "--aug",
                      "rot4", "--steps", "20", "--batch", "16", "--lr", "2e-3", "--seed", "3", "--log-every", "10",
                      "--out", "model.sood", "--log", "loss.csv"});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  // Last line: the JSON summary.
  REQUIRE(r.out.size() > 1);
  const json last = json::parse(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1));
  CHECK(last["steps"] == 20);
  CHECK(last["seconds"].get<double>() > 0);
  CHECK(last["images_per_second"].get<double>() > 0);
  CHECK(std::isfinite(last["final_loss"].get<double>()));
  CHECK(count_lines(slurp(d.path / "loss.csv")) == 3);  // header + steps 10, 20

  // An unfitted model cannot score.
  check_fails(run_cli(d, {"score", "--model", "model.sood", "--data", "test-images-idx3-ubyte", "--out", "s.txt"}),
              "not fitted");

  r = run_cli(d, {"fit", "--model", "model.sood", "--data", "train-images-idx3-ubyte", "--features", "msma,rot",
                  "--density", "gaussian", "--out", "det.sood"});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);

  r = run_cli(d, {"score", "--model", "det.sood", "--data", "noise-images-idx3-ubyte", "--out", "noise.txt"});
  REQUIRE(r.rc == 0);
  const auto cli_scores = so::metrics::read_scores(d.path / "noise.txt");
  REQUIRE(cli_scores.size() == M);

  // The same detector through the library gives the same scores.
  using Det = so::ScoreOOD<so::nn::SmallUNet<so::backend::cpu>, so::augment::Rot4, so::density::Gaussian>;
  const auto det = Det::from_file(d.path / "det.sood");
  CHECK(det.features().str() == "msma,rot");
  const auto lib_noise = det.score(so::data::load(d / "noise-images-idx3-ubyte").images);
  const auto lib_test = det.score(so::data::load(d / "test-images-idx3-ubyte").images);
  // Same detector, same flags (tests/CMakeLists.txt): what is promised is the same scores up to
  // float rounding. The network runs in float, and two programs may contract a*b+c into FMAs
  // differently (GCC decides per translation unit), so 1e-6 relative, not bit equality; a wrong
  // feature, density, level or image differs at order 1.
  for (std::size_t i = 0; i < M; ++i) CHECK(cli_scores[i] == Approx(lib_noise[i]).epsilon(1e-6).margin(0));

  r = run_cli(d, {"eval", "--model", "det.sood", "--in", "test-images-idx3-ubyte", "--ood",
                  "noise=noise-images-idx3-ubyte", "--ood=few=noise-images-idx3-ubyte:first=5", "--transforms",
                  "rot90,patch_shuffle", "--seed", "5", "--json", "eval.json"});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("noise ") != std::string::npos);
  CHECK(r.out.find("rot90 ") != std::string::npos);
  const json j = json::parse(slurp(d.path / "eval.json"));
  REQUIRE(j.size() == 1);
  const json& sets = j.at("sets");
  std::vector<std::string> names;
  for (auto it = sets.begin(); it != sets.end(); ++it) names.push_back(it.key());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"few", "noise", "patch_shuffle", "rot90"});
  const auto want = so::metrics::evaluate(lib_test, lib_noise);
  CHECK(sets["noise"]["auroc"].get<double>() == Approx(want.auroc).margin(1e-12).epsilon(0));
  CHECK(sets["noise"]["n_in"] == M);
  CHECK(sets["noise"]["n_out"] == M);
  CHECK(sets["few"]["n_out"] == 5);
  CHECK(want.auroc > 0.8);  // noise is far from 20 steps of blobs already

  // Wrong image size for the model, and --limit.
  check_fails(run_cli(d, {"score", "--model", "det.sood", "--data", "big-images-idx3-ubyte", "--out", "b.txt"}),
              "the model expects 1x8x8");
  r = run_cli(d, {"eval", "--model", "det.sood", "--in", "test-images-idx3-ubyte", "--transforms", "rot180", "--limit",
                  "6", "--json", "small.json"});
  REQUIRE(r.rc == 0);
  CHECK(json::parse(slurp(d.path / "small.json"))["sets"]["rot180"]["n_out"] == 6);

  // fit re-types the density: knn on the same network.
  r = run_cli(d, {"fit", "--model", "det.sood", "--data", "train-images-idx3-ubyte:first=20", "--density", "knn",
                  "--out", "knn.sood"});
  REQUIRE(r.rc == 0);
  using KnnDet = so::ScoreOOD<so::nn::SmallUNet<so::backend::cpu>, so::augment::Rot4, so::density::Knn>;
  const auto knn = KnnDet::from_file(d.path / "knn.sood");
  CHECK(knn.fitted());
  CHECK(knn.features().str() == "msma,rot");  // the model's features when --features is not given
  // fit keeps the model's network as it is.
  using PlaceholderDet = so::ScoreOOD<so::nn::SmallUNet<so::backend::cpu>, so::augment::Rot4, so::density::Gmm>;
  const auto trained = PlaceholderDet::from_file(d.path / "model.sood");
  const auto w0 = trained.net().parameters().values(), w1 = knn.net().parameters().values();
  CHECK(std::equal(w0.begin(), w0.end(), w1.begin(), w1.end()));

  // A truncated detector file is refused with one line.
  {
    const std::string bytes = slurp(d.path / "det.sood");
    std::ofstream(d / "cut.sood", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  check_fails(run_cli(d, {"score", "--model", "cut.sood", "--data", "noise-images-idx3-ubyte", "--out", "c.txt"}),
              "cut.sood");
}

TEST_CASE("scoreood checks outputs and resumed states before the slow work", "[cli]") {
  TempDir d;
  constexpr std::uint32_t S = 8, N = 24;
  write_idx_images(d / "train-images-idx3-ubyte", blobs(N, S, 1), N, S);
  Run r = run_cli(d, {"train", "--data", "train-images-idx3-ubyte", "--width", "8", "--steps", "6", "--batch", "8",
                      "--log-every", "3", "--checkpoint-every", "3", "--out", "model.sood"});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  REQUIRE(fs::exists(d.path / "model.sood.state"));
  r = run_cli(d, {"fit", "--model", "model.sood", "--data", "train-images-idx3-ubyte", "--density", "gaussian",
                  "--features", "msma", "--out", "det.sood"});
  REQUIRE(r.rc == 0);

  SECTION("unwritable outputs fail before any image is scored") {
    auto no_work = [](const Run& run) { CHECK(run.out.find("normality") == std::string::npos); };
    Run f = run_cli(d, {"fit", "--model", "model.sood", "--data", "train-images-idx3-ubyte", "--out", "nowhere/det.sood"});
    check_fails(f, "--out: cannot write nowhere/det.sood");
    no_work(f);
    Run e = run_cli(d, {"eval", "--model", "det.sood", "--in", "train-images-idx3-ubyte", "--transforms", "rot90",
                        "--json", "nowhere/e.json"});
    check_fails(e, "--json: cannot write nowhere/e.json");
    no_work(e);
    fs::create_directory(d.path / "adir");
    Run s = run_cli(d, {"score", "--model", "det.sood", "--data", "train-images-idx3-ubyte", "--out", "adir"});
    check_fails(s, "it is a folder");
    no_work(s);
    check_fails(run_cli(d, {"train", "--data", "train-images-idx3-ubyte", "--steps", "1", "--out", "m.sood", "--log",
                            "nowhere/loss.csv"}),
                "--log: cannot write");
    CHECK(!fs::exists(d.path / "m.sood"));
  }
  SECTION("a resume that would change the architecture, seed or schedule is refused") {
    const std::vector<std::string> base{"train", "--data", "train-images-idx3-ubyte", "--resume", "model.sood.state",
                                        "--out", "more.sood", "--batch", "8"};
    auto with = [&](std::vector<std::string> extra) {
      auto args = base;
      args.insert(args.end(), extra.begin(), extra.end());
      return run_cli(d, args);
    };
    check_fails(with({"--width", "16", "--steps", "9"}), "--width differs from the resumed state");
    check_fails(with({"--aug", "identity", "--steps", "9"}), "augmentation rot4");
    check_fails(with({"--seed", "5", "--steps", "9"}), "seed 0");
    check_fails(with({"--levels", "5", "--steps", "9"}), "another noise schedule");
    check_fails(with({"--steps", "6"}), "already at step 6");
    CHECK(!fs::exists(d.path / "more.sood"));
    // Without those flags the state's own choices are taken: width 8 from the state, not the default 32.
    const Run ok = with({"--steps", "9", "--log-every", "3"});
    INFO(ok.out << ok.err);
    REQUIRE(ok.rc == 0);
    CHECK(ok.out.find("step 9/9") != std::string::npos);
    using Det = so::ScoreOOD<so::nn::SmallUNet<so::backend::cpu>, so::augment::Rot4, so::density::Gmm>;
    CHECK(Det::from_file(d.path / "more.sood").net().config().width == 8);
  }
  SECTION("training that diverges stops naming the step and saves no model") {
    const std::string state_before = slurp(d.path / "model.sood.state");
    const Run run = run_cli(d, {"train", "--data", "train-images-idx3-ubyte", "--width", "8", "--steps", "50", "--batch",
                                "8", "--lr", "1e30", "--checkpoint-every", "1", "--checkpoint", "div.state", "--out",
                                "div.sood"});
    check_fails(run, "training diverged at step ");
    CHECK(run.err.find("div.state at step ") != std::string::npos);
    CHECK(!fs::exists(d.path / "div.sood"));
    // The last checkpoint is a loadable state of finite weights.
    REQUIRE(fs::exists(d.path / "div.state"));
    const auto info = so::score::read_train_state_info(d.path / "div.state");
    so::nn::SmallUNet<> net({.channels = 1, .image_size = S, .width = 8});
    so::score::Trainer<so::nn::SmallUNet<>, so::augment::Rot4> trainer(net, {}, info.sigmas, {});
    trainer.load(d.path / "div.state");
    CHECK(trainer.step() == info.step);
    const auto w = net.parameters().values();
    CHECK(std::all_of(w.begin(), w.end(), [](float v) { return std::isfinite(v); }));
    CHECK(slurp(d.path / "model.sood.state") == state_before);  // other runs' files untouched
  }
}
