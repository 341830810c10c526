// SmallUNet against its PyTorch twin (benchmarks/torch_small_unet.py) on shared
// weights: outputs and parameter gradients from tests/data/small_unet_refs.txt,
// written by tests/reference/make_small_unet_refs.py (float64 torch).
#include <catch2/catch.hpp>
#include <scoreood/nn/nets/small_unet.hpp>

#include "counter_hash.hpp"
#include "refdata.hpp"

#include <xtensor/xview.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

using namespace scoreood;
using nn::SmallUNet;
using testing::hash_u;

namespace {

using RefMap = std::map<std::string, testing::RefArray>;

const RefMap& refs() {
  static const RefMap r = testing::load_refdata(std::string(SCOREOOD_TEST_DATA_DIR) + "/small_unet_refs.txt");
  return r;
}

const testing::RefArray& at(const std::string& key) {
  const auto it = refs().find(key);
  if (it == refs().end()) throw Error("small_unet_refs.txt has no '" + key + "' (rerun make_small_unet_refs.py)");
  return it->second;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// One reference case: configuration, levels, the input (from the hash) and torch's output.
struct Case {
  std::string prefix;
  nn::SmallUNetConfig cfg;
  std::vector<int> levels;
  Tensor4<double> x, want;
  double scale = 0;  ///< max |torch output|

  explicit Case(const std::string& name) : prefix(name + ".") {
    const auto& c = at(prefix + "config").values;
    cfg = {.channels = std::size_t(c[0]), .image_size = std::size_t(c[1]), .width = std::size_t(c[2]),
           .num_levels = std::size_t(c[3])};
    for (double l : at(prefix + "levels").values) levels.push_back(int(l));
    const std::size_t N = levels.size(), C = cfg.channels, S = cfg.image_size;
    x = xt::empty<double>({N, C, S, S});
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = hash_u(std::uint64_t(1) << 20, i);
    const auto& out = at(prefix + "output");
    REQUIRE(out.shape == (std::vector<std::size_t>{N, C, S, S}));
    want = xt::empty<double>({N, C, S, S});
    std::copy(out.values.begin(), out.values.end(), want.data());
    for (double v : want) scale = std::max(scale, std::abs(v));
  }
  /// torch's named_parameters() index of a C++ tensor (the hash stream of its values).
  std::size_t torch_index(const std::string& name) const { return std::size_t(at(prefix + "param." + name).values[0]); }
};

/// Fills every tensor by NAME with the script's rule (the stream is torch's index of that
/// name), then checks that the store holds exactly the reference's tensors and value sums.
template <class T>
void fill_by_name(nn::ParameterStore<T>& store, const Case& c) {
  std::size_t tensors = 0;
  for (const auto& [k, v] : refs()) tensors += k.rfind(c.prefix + "param.", 0) == 0;
  REQUIRE(store.entries().size() == tensors);
  for (const auto& e : store.entries()) {
    INFO("tensor " << e.name);
    const auto& rec = at(c.prefix + "param." + e.name).values;
    REQUIRE(std::size_t(rec[1]) == e.size);
    const std::uint64_t stream = c.torch_index(e.name) + 1;
    T* v = store.value_data() + e.offset;
    double sum = 0;
    for (std::size_t j = 0; j < e.size; ++j) {
      const double u = 2 * hash_u(stream, j) - 1;
      double x;
      if (ends_with(e.name, ".embed")) {  // (L, 3C): [gamma | alpha | beta]
        const std::size_t C3 = e.shape.at(1);
        x = 0.1 * u + ((j % C3) < 2 * (C3 / 3) ? 1.0 : 0.0);
      } else if (ends_with(e.name, ".bias")) {
        x = 0.1 * u;
      } else {  // conv weight (out, in, k, k)
        x = u / std::sqrt(double(e.shape.at(1) * e.shape.at(2) * e.shape.at(3)));
      }
      v[j] = T(x);
      sum += x;
    }
    CHECK(sum == Approx(rec[2]).epsilon(1e-12).margin(1e-12));  // relative, with a floor for sums near 0
  }
}

template <class T>
double max_abs_diff(const Tensor4<T>& a, const Tensor4<double>& b) {
  REQUIRE(a.shape() == b.shape());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a.data()[i]) - b.data()[i]));
  return m;
}

Tensor4<double> output_weights(const Case& c) {
  Tensor4<double> w = xt::empty<double>(c.want.shape());
  for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] = 2 * hash_u(std::uint64_t(2) << 20, i) - 1;
  return w;
}

const char* const kCases[] = {"w8s28", "w8s12rgb"};
const char* const kFullGrads[] = {"conv_out.bias", "conv_in.weight", "rb2.skip.weight", "rb4.norm2.embed"};

}  // namespace

TEST_CASE("SmallUNet equals its PyTorch twin in double (output, every parameter gradient)", "[small_unet][torch]") {
  for (const char* name : kCases) {
    DYNAMIC_SECTION(name) {
      const Case c(name);
      SmallUNet<backend::cpu, double> net(c.cfg, 1);
      fill_by_name(net.parameters(), c);
      // Double against double: only summation order differs, so 1e-10 of the output's scale
      // (NcsnRefineNet, deeper, meets the same bound).
      const Tensor4<double>& y = net.forward(c.x, c.levels);
      const double err = max_abs_diff(y, c.want);
      INFO("max |C++ - torch| = " << err << ", max |torch| = " << c.scale);
      CHECK(err < 1e-10 * c.scale);
      Tensor4<double> inf;
      net.infer(c.x, c.levels, inf);
      CHECK(max_abs_diff(inf, c.want) < 1e-10 * c.scale);

      // L = sum(w * y): per tensor, the projection sum(grad * r) against torch autograd.
      auto& store = net.parameters();
      store.zero_grad();
      net.backward(output_weights(c));
      double worst = 0;
      std::string worst_name;
      for (const auto& e : store.entries()) {
        const std::uint64_t stream = (c.torch_index(e.name) + 1) + (std::uint64_t(3) << 20);
        double proj = 0;
        for (std::size_t j = 0; j < e.size; ++j) proj += store.grad_data()[e.offset + j] * (2 * hash_u(stream, j) - 1);
        const double r = at(c.prefix + "param." + e.name).values[3];
        const double rel = std::abs(proj - r) / std::max(1e-12, std::abs(r));
        if (rel > worst) worst = rel, worst_name = e.name;
      }
      INFO("worst gradient projection: " << worst_name << " (relative error " << worst << ")");
      CHECK(worst < 1e-8);
      // A few tensors element by element, relative to the tensor's largest entry (measured
      // 1e-14 of it): the first and last convolutions, a strided 1x1 skip, a norm embedding.
      for (const char* g : kFullGrads) {
        const auto& ref = at(c.prefix + "grad." + g);
        const auto it = std::find_if(store.entries().begin(), store.entries().end(), [&](auto& e) { return e.name == g; });
        REQUIRE(it != store.entries().end());
        REQUIRE(ref.values.size() == it->size);
        double gmax = 0, gerr = 0;
        for (std::size_t j = 0; j < it->size; ++j) {
          gmax = std::max(gmax, std::abs(ref.values[j]));
          gerr = std::max(gerr, std::abs(store.grad_data()[it->offset + j] - ref.values[j]));
        }
        INFO(g << ": max |C++ - torch| = " << gerr << ", max |torch| = " << gmax);
        CHECK(gerr < 1e-10 * gmax);
      }
    }
  }
}

TEST_CASE("SmallUNet in float matches its PyTorch twin (infer per image, forward, gradients)", "[small_unet][torch]") {
  // Float against the float64 torch output, bounded relative to the largest output (or the
  // tensor's largest gradient entry). Float's unit round-off is 6e-8; the 16 convolutions and
  // 13 instance norms in series make it 7e-7 of the scale for the outputs and up to 1.1e-6 for
  // the gradients with the portable kernels (measured on both cases; `-s` prints the INFO
  // lines). The AVX-512 Winograd F(4x4, 3x3) kernels differ from direct convolution by up to
  // ~1e-5 per layer (nn/layers/conv2d.hpp), hence 1e-4 for outputs; a gradient sums over every
  // pixel and sample of the batch, hence 1e-3. Dropping the 14-px skip (in forward, infer and
  // backward alike, so that every self-consistency test still passes) moves the output by half
  // its scale.
  constexpr double kOut = 1e-4, kGrad = 1e-3;
  for (const char* name : kCases) {
    DYNAMIC_SECTION(name) {
      const Case c(name);
      SmallUNet<backend::cpu, float> net(c.cfg, 1);
      fill_by_name(net.parameters(), c);
      const Tensor4<float> xf = xt::cast<float>(c.x);
      Tensor4<float> y;
      net.infer(xf, c.levels, y);
      const double err = max_abs_diff(y, c.want);
      INFO("max |C++ float - torch double| = " << err << ", max |torch| = " << c.scale);
      CHECK(err < kOut * c.scale);
      // Each image alone at its level: the same values (instance norms are per sample).
      for (std::size_t n = 0; n < c.levels.size(); ++n) {
        const Tensor4<float> xn = xt::view(xf, xt::range(n, n + 1), xt::all(), xt::all(), xt::all());
        const std::vector<int> ln{c.levels[n]};
        Tensor4<float> yn;
        net.infer(xn, ln, yn);
        const Tensor4<double> wn = xt::view(c.want, xt::range(n, n + 1), xt::all(), xt::all(), xt::all());
        CHECK(max_abs_diff(yn, wn) < kOut * c.scale);
      }
      CHECK(max_abs_diff(net.forward(xf, c.levels), c.want) < kOut * c.scale);
      // Float gradients of the fully stored tensors.
      auto& store = net.parameters();
      store.zero_grad();
      net.backward(xt::cast<float>(output_weights(c)));
      for (const char* g : kFullGrads) {
        const auto& ref = at(c.prefix + "grad." + g);
        const auto it = std::find_if(store.entries().begin(), store.entries().end(), [&](auto& e) { return e.name == g; });
        REQUIRE(it != store.entries().end());
        double gmax = 0, gerr = 0;
        for (std::size_t j = 0; j < it->size; ++j) {
          gmax = std::max(gmax, std::abs(ref.values[j]));
          gerr = std::max(gerr, std::abs(double(store.grad_data()[it->offset + j]) - ref.values[j]));
        }
        INFO(g << ": max |C++ float - torch| = " << gerr << ", max |torch| = " << gmax);
        CHECK(gerr < kGrad * gmax);
      }
    }
  }
}
