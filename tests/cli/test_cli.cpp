// The scoreood program, run as a user would: metrics and inspect against the
// library, error paths (exit 1 and one "scoreood: ..." line on stderr), a tiny
// end-to-end train -> fit -> score -> eval whose scores match the library's, and
// score / fit thresholds / explain / inspect on a folder of PNG files.
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

/// Image i of `px` (n x s x s bytes) as an s x s colour PNG dir/<prefix><first + i>.png, tinted
/// so that the three channels differ (the model, gray 8x8, sees them converted).
std::vector<fs::path> write_colour_pngs(const fs::path& dir, const std::string& prefix, const std::vector<unsigned char>& px,
                                        std::uint32_t n, std::uint32_t s, std::size_t first = 0) {
  fs::create_directories(dir);
  std::vector<fs::path> files;
  so::Images x = so::Images::from_shape({n, std::size_t(3), s, s});
  const float tint[3] = {1.0f, 0.6f, 0.3f};
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t p = 0; p < std::size_t(s) * s; ++p)
        x.data()[(i * 3 + c) * s * s + p] = tint[c] * float(px[i * s * s + p]) / 255.0f;
  for (std::size_t i = 0; i < n; ++i) {
    files.push_back(dir / (prefix + std::to_string(first + i) + ".png"));
    so::data::write_png(files.back(), x, i);
  }
  return files;
}

void write_scores_file(const std::string& path, const std::vector<double>& v) { so::metrics::write_scores(path, v); }

/// One line of `scoreood score --out`: PATH<TAB>SCORE[<TAB>0|1] (flag -1 when there is no third column).
struct ScoreLine {
  std::string path;
  double score = 0;
  int flag = -1;
};
std::vector<ScoreLine> read_score_table(const fs::path& p) {
  std::vector<ScoreLine> out;
  std::istringstream is(slurp(p));
  std::string line;
  while (std::getline(is, line)) {
    std::vector<std::string> cols;
    std::istringstream ls(line);
    for (std::string c; std::getline(ls, c, '\t');) cols.push_back(c);
    REQUIRE((cols.size() == 2 || cols.size() == 3));
    ScoreLine l{cols[0], std::stod(cols[1]), -1};
    if (cols.size() == 3) {
      REQUIRE((cols[2] == "0" || cols[2] == "1"));
      l.flag = cols[2] == "1";
    }
    out.push_back(l);
  }
  return out;
}
std::vector<double> scores_of(const std::vector<ScoreLine>& t) {
  std::vector<double> v;
  for (const auto& l : t) v.push_back(l.score);
  return v;
}

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
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--steps", "1", "--decay", "linear"}),
              "--decay: unknown 'linear'");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--steps", "1", "--lr-end", "1e-5"}),
              "--lr-end is for --decay cosine");
  check_fails(run_cli(d, {"train", "--data", "x", "--out", "m", "--steps", "1", "--decay", "cosine", "--lr-end", "0.1"}),
              "--lr-end must be in [0, --lr]");
  // A misspelt flag is named, not the flag it was meant to be.
  check_fails(run_cli(d, {"train", "--data", "x", "--ouut", "m", "--steps", "1"}), "unknown option --ouut");
  check_fails(run_cli(d, {"--data-root", (d / "nowhere")}), "not a directory");
  check_fails(run_cli(d, {"--data-root"}), "--data-root needs a value");
  check_fails(run_cli(d, {"--device", "tpu", "inspect", "x"}), "--device");
  check_fails(run_cli(d, {"inspect", "--data-root", d.path.string(), "x"}), "unknown option --data-root");  // before the command only
  check_fails(run_cli(d, {"inspect", "a", "b"}), "unexpected argument 'b'");
  check_fails(run_cli(d, {"eval", "--model", "m", "--in", "x", "--transforms", "rot45"}), "rot45");
  check_fails(run_cli(d, {"eval", "--model", "m", "--in", "x", "--ood", "a=p", "q=r"}), "unexpected argument 'q=r'");
  check_fails(run_cli(d, {"eval", "--model", "m", "--in", "x", "--ood", "a=p", "--ood=rot90=q", "--transforms", "rot90"}),
              "eval: two sets are named 'rot90'");
  check_fails(run_cli(d, {"fit", "--model", "m", "--data", "x", "--out", "o", "--density", "flow"}), "unknown density 'flow'");
  std::ofstream(d / "junk.sood") << "this is not a detector";
  check_fails(run_cli(d, {"score", "--model", "junk.sood", "--data", "x", "--out", "s"}), "junk.sood");
  for (const char* cmd : {"metrics", "inspect", "train", "fit", "score", "eval", "explain"}) {
    const Run h = run_cli(d, {cmd, "--help"});
    CHECK(h.rc == 0);
    CHECK(h.out.rfind("usage: scoreood " + std::string(cmd), 0) == 0);
    CHECK(run_cli(d, {cmd, "-h"}).out == h.out);
  }
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--help"}, {"help"}, {"--data-root", ".", "--help"}}) {
    const Run h = run_cli(d, args);
    CHECK(h.rc == 0);
    CHECK(h.out.rfind("usage: scoreood [--data-root DIR] [--device cpu|cuda] COMMAND", 0) == 0);
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

  // --device cuda: without a CUDA build (or without a GPU) one line that says which, and no file.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--device", "cuda", "score", "--model", "det.sood", "--data", "noise-images-idx3-ubyte",
                                 "--out", "gpu.txt"},
        {"--device", "cuda", "train", "--data", "train-images-idx3-ubyte", "--width", "8", "--steps", "1", "--out",
         "gpu.sood"}}) {
    const Run g = run_cli(d, args);
    if (g.rc == 0) continue;  // a CUDA build on a machine with a GPU
    INFO(g.err);
    CHECK((g.err.find("built without the CUDA backend") != std::string::npos ||
           g.err.find("no CUDA device is available") != std::string::npos));
    check_fails(g, "--device cuda");
    CHECK(!fs::exists(d.path / "gpu.txt"));
    CHECK(!fs::exists(d.path / "gpu.sood"));
  }
  // The explicit default is the CPU.
  r = run_cli(d, {"--device", "cpu", "score", "--model", "det.sood", "--data", "noise-images-idx3-ubyte", "--out",
                  "noise-cpu.txt"});
  REQUIRE(r.rc == 0);

  r = run_cli(d, {"score", "--model", "det.sood", "--data", "noise-images-idx3-ubyte", "--out", "noise.txt"});
  REQUIRE(r.rc == 0);
  CHECK(slurp(d.path / "noise.txt") == slurp(d.path / "noise-cpu.txt"));
  // IDX images have no file: NAME[i]; 40 images with the default --holdout 0.1 hold out too few
  // for a threshold, so there is no third column.
  const auto table = read_score_table(d.path / "noise.txt");
  REQUIRE(table.size() == M);
  CHECK(table.front().path == "noise-images-idx3-ubyte[0]");
  CHECK(table.back().path == "noise-images-idx3-ubyte[15]");
  CHECK(table.front().flag == -1);
  const auto cli_scores = scores_of(table);

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

  // Images of another size are converted to the model's, as the library converts them.
  r = run_cli(d, {"score", "--model", "det.sood", "--data", "big-images-idx3-ubyte", "--out", "b.txt"});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  const auto big = so::data::load(d / "big-images-idx3-ubyte", {.channels = 1, .image_size = S});
  REQUIRE(big.images.shape()[2] == S);
  const auto lib_big = det.score(big.images), cli_big = scores_of(read_score_table(d.path / "b.txt"));
  REQUIRE(cli_big.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(cli_big[i] == Approx(lib_big[i]).epsilon(1e-6).margin(0));

  // metrics reads score's table as it reads plain score files.
  write_scores_file(d / "test.txt", lib_test);
  r = run_cli(d, {"metrics", "--in", "test.txt", "--out", "noise.txt", "--json"});
  INFO(r.err);
  REQUIRE(r.rc == 0);
  CHECK(json::parse(r.out)["n_out"] == M);
  CHECK(json::parse(r.out)["auroc"].get<double>() == Approx(want.auroc).margin(1e-12).epsilon(0));

  // --limit.
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
    Run j = run_cli(d, {"score", "--model", "det.sood", "--data", "train-images-idx3-ubyte", "--out", "s.txt", "--json",
                        "nowhere/s.json"});
    check_fails(j, "--json: cannot write nowhere/s.json");
    no_work(j);
    CHECK(!fs::exists(d.path / "s.txt"));
    std::ofstream(d / "afile") << "x";
    Run x = run_cli(d, {"explain", "--model", "det.sood", "--data", "train-images-idx3-ubyte", "--out", "afile"});
    check_fails(x, "--out: cannot write in afile: it is not a folder");
    no_work(x);
    check_fails(run_cli(d, {"explain", "--model", "det.sood", "--data", "train-images-idx3-ubyte", "--out", "nowhere/maps"}),
                "no such folder nowhere");
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

TEST_CASE("scoreood on a folder of colour PNGs: inspect, fit with a threshold, score, explain", "[cli][image_io]") {
  TempDir d;
  constexpr std::uint32_t S = 8, N = 40, P = 12;  // the model's 8x8 gray; the files' 12x12 colour
  write_idx_images(d / "train-images-idx3-ubyte", blobs(N, S, 1), N, S);
  write_colour_pngs(d.path / "train", "t-", blobs(N, P, 1), N, P);
  // imgs/: three blobs and three noise images, and a corrupt file that sorts among them.
  auto files = write_colour_pngs(d.path / "imgs", "img-", blobs(3, P, 2), 3, P);
  const auto more = write_colour_pngs(d.path / "imgs", "img-", noise(3, S, 3), 3, S, 3);  // another size
  files.insert(files.end(), more.begin(), more.end());
  std::ofstream(d / "imgs/img-2b.png") << "not a png";
  // Paths are written as the folder was named on the command line (relative to the test's folder).
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back("imgs/" + f.filename().string());
  const std::string bad = "imgs/img-2b.png";

  SECTION("inspect tells folders and lists apart") {
    Run r = run_cli(d, {"inspect", "imgs"});
    INFO(r.out << r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("kind        folder\n") != std::string::npos);
    CHECK(number_after(r.out, "count") == 7);
    CHECK(r.out.find("3x12x12 (CxHxW)") != std::string::npos);
    r = run_cli(d, {"inspect", "imgs:gray:size=8"});
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("1x8x8 (CxHxW)") != std::string::npos);
    std::ofstream(d / "list.txt") << "# two of them\nimgs/img-0.png\nimgs/img-4.png\n";
    r = run_cli(d, {"inspect", "list.txt"});
    INFO(r.out << r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("kind        list\n") != std::string::npos);
    CHECK(number_after(r.out, "count") == 2);
    CHECK(r.out.find("3x12x12 (CxHxW)") != std::string::npos);
  }

  // Four noise levels: a quarter of the network passes of the default ten.
  Run r = run_cli(d, {"train", "--data", "train-images-idx3-ubyte", "--width", "8", "--steps", "20", "--batch", "16",
                      "--lr", "2e-3", "--seed", "3", "--levels", "4", "--out", "model.sood"});
  INFO(r.out << r.err);
  REQUIRE(r.rc == 0);
  using Det = so::ScoreOOD<so::nn::SmallUNet<so::backend::cpu>, so::augment::Rot4, so::density::Gaussian>;
  const so::data::LoadOptions as_model{.channels = 1, .image_size = S, .skip_bad = true};
  const auto train = so::data::load(d / "train", as_model);
  REQUIRE(train.size() == N);

  SECTION("fit --holdout --keep stores the library's threshold; bad ranges are refused") {
    auto fit = [&](std::vector<std::string> extra, const std::string& out) {
      std::vector<std::string> args{"fit", "--model", "model.sood", "--data", "train", "--features", "msma,rot",
                                    "--density", "gaussian", "--out", out};
      args.insert(args.end(), extra.begin(), extra.end());
      return run_cli(d, args);
    };
    for (const double keep : {0.5, 0.9}) {
      const std::string out = "det" + std::to_string(int(keep * 10)) + ".sood";
      r = fit({"--holdout", "0.25", "--keep", keep == 0.5 ? "0.5" : "0.9"}, out);
      INFO(r.out << r.err);
      REQUIRE(r.rc == 0);
      CHECK(r.out.find("on 30 of 40 images") != std::string::npos);
      const auto det = Det::from_file(d.path / out);
      REQUIRE(det.threshold());
      CHECK(det.threshold()->held_out == 10);  // 0.25 of the 40 images
      CHECK(det.threshold()->keep == keep);
      CHECK(number_after(r.out, "threshold ") == det.threshold()->value);  // printed exactly
      CHECK(r.out.find("keeps " + std::string(keep == 0.5 ? "0.5" : "0.9") + " of 10 held-out images") !=
            std::string::npos);
      // The library, fitting the same network on the same converted images with the same options,
      // holds out the same images and keeps the same share of them.
      using Placeholder = so::ScoreOOD<so::nn::SmallUNet<so::backend::cpu>, so::augment::Rot4, so::density::Gmm>;
      const auto trained = Placeholder::from_file(d.path / "model.sood");
      Det lib(so::schedule::ExplicitList{trained.sigmas()},
              {.net = trained.net().config(),
               .features = so::score::FeatureSet::parse("msma,rot"),
               .seed = so::read_detector_info(d.path / "model.sood").seed});
      so::io::ByteWriter w;
      trained.net().save(w);
      so::io::ByteReader rd(w.bytes(), "net");
      lib.net().load(rd);
      lib.fit_density(train.images, {.holdout = 0.25, .keep = keep});
      REQUIRE(lib.threshold());
      CHECK(det.threshold()->value == Approx(lib.threshold()->value).epsilon(1e-6).margin(0));
      // The threshold is a held-out score: ceil(keep * 10) of the 10 are at or below it, so at
      // least that many of all 40 are.
      const auto s = det.score(train.images);
      const auto at_or_below = std::count_if(s.begin(), s.end(), [&](double v) { return v <= det.threshold()->value; });
      CHECK(at_or_below >= (keep == 0.5 ? 5 : 9));
    }
    CHECK(Det::from_file(d.path / "det5.sood").threshold()->value <= Det::from_file(d.path / "det9.sood").threshold()->value);
    r = fit({"--holdout", "0"}, "none.sood");
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("no threshold (--holdout 0)") != std::string::npos);
    CHECK(!Det::from_file(d.path / "none.sood").threshold());
    r = fit({}, "few.sood");  // 0.1 of 40 is 4 images: too few for a threshold, and said so
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("no threshold: --holdout 0.1 of 40 images is 4 images") != std::string::npos);
    check_fails(fit({"--holdout", "1"}, "x.sood"), "fit: --holdout must be in [0, 1)");
    check_fails(fit({"--holdout", "-0.1"}, "x.sood"), "--holdout must be in [0, 1)");
    check_fails(fit({"--keep", "0"}, "x.sood"), "fit: --keep must be in (0, 1]");
    check_fails(fit({"--keep", "1.5"}, "x.sood"), "--keep must be in (0, 1]");
    check_fails(fit({"--keep", "most"}, "x.sood"), "--keep: 'most' is not a number");
    CHECK(!fs::exists(d.path / "x.sood"));
  }

  SECTION("score and explain a folder, file by file") {
    r = run_cli(d, {"fit", "--model", "model.sood", "--data", "train", "--features", "msma,rot", "--density", "gaussian",
                    "--holdout", "0.25", "--keep", "0.9", "--out", "det.sood"});
    INFO(r.out << r.err);
    REQUIRE(r.rc == 0);
    const auto det = Det::from_file(d.path / "det.sood");
    REQUIRE(det.threshold());
    const auto good = so::data::load(d / "imgs", as_model);  // the six readable files, converted
    REQUIRE(good.size() == 6);
    const auto lib = det.score(good.images);
    const auto lib_ood = det.is_ood(good.images);

    // Without --skip-bad the corrupt file is an error naming it, and nothing is written.
    Run f = run_cli(d, {"score", "--model", "det.sood", "--data", "imgs", "--out", "s.tsv", "--json", "s.json"});
    check_fails(f, bad);
    for (const char* name : {"s.tsv", "s.json", "s.tsv.tmp", "s.json.tmp"}) CHECK(!fs::exists(d.path / name));

    r = run_cli(d, {"score", "--model", "det.sood", "--data", "imgs", "--skip-bad", "--out", "s.tsv", "--json", "s.json"});
    INFO(r.out << r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("skipped 1 unreadable image file of imgs") != std::string::npos);
    CHECK(r.out.find("\n  " + bad) != std::string::npos);
    CHECK(r.out.find("score 7/7") != std::string::npos);
    const auto table = read_score_table(d.path / "s.tsv");
    REQUIRE(table.size() == 6);
    for (std::size_t i = 0; i < 6; ++i) {
      CHECK(table[i].path == names[i]);  // path order, the corrupt file left out
      CHECK(table[i].score == Approx(lib[i]).epsilon(1e-6).margin(0));
      CHECK(table[i].flag == int(lib_ood[i]));
    }
    CHECK(table[3].flag + table[4].flag + table[5].flag == 3);  // the noise images are out of distribution
    CHECK(std::any_of(table.begin(), table.end(), [](const ScoreLine& l) { return l.flag == 0; }));
    const json j = json::parse(slurp(d.path / "s.json"));
    REQUIRE(j.is_array());
    REQUIRE(j.size() == 6);
    for (std::size_t i = 0; i < 6; ++i) {
      CHECK(j[i]["path"] == table[i].path);
      CHECK(j[i]["score"].get<double>() == table[i].score);  // both full precision
      CHECK(j[i]["is_ood"].get<bool>() == bool(table[i].flag));
    }

    // Streamed in batches of 3 files (the corrupt one among them): the same scores as the whole set.
    r = run_cli(d, {"score", "--model", "det.sood", "--data", "imgs", "--skip-bad", "--batch", "3", "--out", "b.tsv"});
    REQUIRE(r.rc == 0);
    const auto batched = read_score_table(d.path / "b.tsv");
    REQUIRE(batched.size() == 6);
    for (std::size_t i = 0; i < 6; ++i) {
      CHECK(batched[i].path == names[i]);
      CHECK(batched[i].score == Approx(lib[i]).epsilon(1e-6).margin(0));
    }

    // explain: one image-beside-map PNG per readable file of the first five, and maps.tsv.
    check_fails(run_cli(d, {"explain", "--model", "det.sood", "--data", "imgs", "--out", "maps"}), bad);
    CHECK(!fs::exists(d.path / "maps"));
    check_fails(run_cli(d, {"explain", "--model", "det.sood", "--data", "imgs", "--out", "maps", "--terms", "all"}),
                "--terms: unknown 'all'");
    r = run_cli(d, {"explain", "--model", "det.sood", "--data", "imgs", "--skip-bad", "--limit", "5", "--out", "maps"});
    INFO(r.out << r.err);
    REQUIRE(r.rc == 0);
    CHECK(r.out.find("skipped 1 unreadable image file") != std::string::npos);
    std::vector<std::string> pngs;
    for (const auto& e : fs::directory_iterator(d.path / "maps")) pngs.push_back(e.path().filename().string());
    std::sort(pngs.begin(), pngs.end());
    CHECK(pngs == std::vector<std::string>{"img-0.png", "img-1.png", "img-2.png", "img-3.png", "maps.tsv"});
    for (int i = 0; i < 4; ++i) {
      const auto info = so::data::read_image_info(d.path / "maps" / pngs[std::size_t(i)]);
      CHECK(info.width == (2 * S + 2) * 4);  // image | 2-pixel gap | map, 4x enlarged
      CHECK(info.height == S * 4);
      CHECK(info.channels == 3);
    }
    const so::Images maps = det.anomaly_map(so::data::first_n(good.images, 4));
    std::istringstream tsv(slurp(d.path / "maps" / "maps.tsv"));
    std::string line;
    std::getline(tsv, line);
    CHECK(line == "path\tscore\tmap_max\tmax_x\tmax_y\timage");
    for (std::size_t i = 0; i < 4; ++i) {
      REQUIRE(std::getline(tsv, line));
      std::istringstream ls(line);
      std::string path, png;
      double score = 0, top = 0;
      std::size_t x = 0, y = 0;
      std::getline(ls, path, '\t');
      ls >> score >> top >> x >> y >> png;
      CHECK(path == names[i]);
      CHECK(png == pngs[i]);
      CHECK(score == Approx(lib[i]).epsilon(1e-6).margin(0));
      const float* m = maps.data() + i * S * S;
      const std::size_t at = std::size_t(std::max_element(m, m + S * S) - m);
      CHECK(top == Approx(m[at]).epsilon(1e-5));
      CHECK(y * S + x == at);
    }
    CHECK(!std::getline(tsv, line));
  }
}
