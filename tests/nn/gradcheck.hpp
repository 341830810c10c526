/** @file gradcheck.hpp
 *  @brief Finite-difference gradient checks for layers (test helper, double precision).
 *
 *  The checked scalar is L = sum(w ⊙ y) with a fixed random projection w, so
 *  backward(dy = w) must return dL/dx and accumulate dL/dparams. Each numeric
 *  derivative is a central difference computed as sum(w ⊙ (y+ − y−)) / (2 eps):
 *  subtracting the outputs before the weighted sum keeps outputs that do not
 *  depend on the perturbed entry at exactly zero and the round-off small.
 *
 *  Usage (single-input layer with parameters):
 *  @code
 *    auto rep = scoreood::testing::gradcheck(
 *        [&](const Tensor4<double>& x, Tensor4<double>& y) { conv.forward(x, y); },
 *        [&](const Tensor4<double>& dy, Tensor4<double>& dx) { conv.backward(dy, dx); },
 *        x, &store);
 *    REQUIRE(rep.max_rel < 1e-6);   // rep.str() names the worst entry
 *  @endcode
 *  Layers with several inputs (or a conditioning index) use gradcheck_vars()
 *  with one GradVar per input. */
#pragma once
#include <scoreood/core/rng.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/nn/parameter.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <vector>

namespace scoreood::testing {

/// Fills t with standard normals * scale (deterministic in rng).
template <class T>
void fill_normal(Tensor4<T>& t, CounterRng rng, double scale = 1.0) {
  T* p = t.data();
  for (std::size_t i = 0; i < t.size(); ++i) p[i] = T(scale * rng.normal(i));
}

/// Fills t with uniforms in [lo, hi) (deterministic in rng).
template <class T>
void fill_uniform(Tensor4<T>& t, CounterRng rng, double lo = -1.0, double hi = 1.0) {
  T* p = t.data();
  for (std::size_t i = 0; i < t.size(); ++i) p[i] = T(lo + (hi - lo) * rng.uniform(i));
}

/// Robust relative error of one pair: |a − b| / max(floor, |a| + |b|).
inline double rel_error(double a, double b, double floor = 1e-8) {
  return std::abs(a - b) / std::max(floor, std::abs(a) + std::abs(b));
}

struct GradCheckOptions {
  double eps = 1e-6;           ///< central-difference step
  std::size_t max_entries = 0; ///< per variable: 0 = check every entry, else a random subset of this size
  double floor = 1e-8;         ///< denominator floor of the element-wise relative error
  std::uint64_t seed = 20240611;
  /// Five-point stencil (8[f(+h) - f(-h)] - [f(+2h) - f(-2h)]) / 12h, truncation O(h^4): for deep
  /// nets, where the central difference cannot make both truncation and round-off small.
  bool fourth_order = false;
};

/// One variable to perturb: its values and (after backward) its analytic gradient.
struct GradVar {
  std::string name;
  std::span<double> value;                          ///< perturbed in place, restored afterwards
  std::function<std::span<const double>()> grad;    ///< resolved after backward (buffers may move)
};

struct GradVarReport {
  std::string name;
  std::size_t checked = 0;
  double max_rel = 0;        ///< max element-wise rel_error
  double norm_rel = 0;       ///< ||a − n||₂ / max(1e-30, ||a||₂ + ||n||₂) over the checked entries
  std::size_t worst_index = 0;
  double worst_analytic = 0, worst_numeric = 0;
};

struct GradCheckReport {
  std::vector<GradVarReport> vars;
  double max_rel = 0;   ///< worst element-wise error over all variables
  double norm_rel = 0;  ///< worst norm-based error over all variables

  std::string str() const {
    std::ostringstream os;
    os.precision(3);
    for (const auto& v : vars)
      os << v.name << ": checked " << v.checked << ", max_rel " << v.max_rel << ", norm_rel " << v.norm_rel
         << " (worst #" << v.worst_index << " analytic " << v.worst_analytic << " numeric " << v.worst_numeric
         << ")\n";
    return os.str();
  }
};

/// General form. `run(y)` computes the output from the current variable values
/// (it may cache for backward); `backward(dy)` must leave the analytic
/// gradients where each GradVar::grad points (parameter grads are zeroed
/// before it is called when a store is given).
inline GradCheckReport gradcheck_vars(const std::function<void(Tensor4<double>&)>& run,
                                      const std::function<void(const Tensor4<double>&)>& backward,
                                      std::vector<GradVar> vars, nn::ParameterStore<double>* store = nullptr,
                                      GradCheckOptions opt = {}) {
  CounterRng rng(opt.seed, 0);
  Tensor4<double> y;
  run(y);
  Tensor4<double> w = xt::empty<double>(y.shape());
  fill_normal(w, rng.substream(1));
  if (store) store->zero_grad();
  backward(w);  // analytic pass right after the forward whose cache it uses

  // Copy the analytic gradients before any further forward call.
  std::vector<std::vector<double>> analytic;
  for (auto& v : vars) {
    const auto g = v.grad();
    if (g.size() != v.value.size())
      throw Error("gradcheck: gradient of '" + v.name + "' has " + std::to_string(g.size()) +
                  " entries, value has " + std::to_string(v.value.size()));
    analytic.emplace_back(g.begin(), g.end());
  }

  GradCheckReport rep;
  Tensor4<double> yp, ym, yp2, ym2;
  for (std::size_t k = 0; k < vars.size(); ++k) {
    auto& v = vars[k];
    const std::size_t n = v.value.size();
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    if (opt.max_entries && opt.max_entries < n) {
      // Partial Fisher-Yates with counter-based draws: a reproducible subset.
      const CounterRng pick = rng.substream(100 + k);
      for (std::size_t i = 0; i < opt.max_entries; ++i)
        std::swap(idx[i], idx[i + pick.uniform_int(i, std::uint32_t(n - i))]);
      idx.resize(opt.max_entries);
    }
    GradVarReport r;
    r.name = v.name;
    double dn2 = 0, an2 = 0, nn2 = 0;
    for (const std::size_t i : idx) {
      const double orig = v.value[i];
      v.value[i] = orig + opt.eps;
      run(yp);
      v.value[i] = orig - opt.eps;
      run(ym);
      if (opt.fourth_order) {
        v.value[i] = orig + 2 * opt.eps;
        run(yp2);
        v.value[i] = orig - 2 * opt.eps;
        run(ym2);
      }
      v.value[i] = orig;
      double s = 0;
      const double *pp = yp.data(), *pm = ym.data(), *pw = w.data();
      for (std::size_t j = 0; j < yp.size(); ++j) s += pw[j] * (pp[j] - pm[j]);
      double num = s / (2 * opt.eps);
      if (opt.fourth_order) {
        double s2 = 0;
        const double *pp2 = yp2.data(), *pm2 = ym2.data();
        for (std::size_t j = 0; j < yp.size(); ++j) s2 += pw[j] * (pp2[j] - pm2[j]);
        num = (8 * s - s2) / (12 * opt.eps);
      }
      const double ana = analytic[k][i];
      const double e = rel_error(ana, num, opt.floor);
      if (e > r.max_rel || r.checked == 0) {
        r.max_rel = std::max(r.max_rel, e);
        r.worst_index = i;
        r.worst_analytic = ana;
        r.worst_numeric = num;
      }
      dn2 += (ana - num) * (ana - num);
      an2 += ana * ana;
      nn2 += num * num;
      ++r.checked;
    }
    r.norm_rel = std::sqrt(dn2) / std::max(1e-30, std::sqrt(an2) + std::sqrt(nn2));
    rep.max_rel = std::max(rep.max_rel, r.max_rel);
    rep.norm_rel = std::max(rep.norm_rel, r.norm_rel);
    rep.vars.push_back(std::move(r));
  }
  run(y);  // leave the layer's cache consistent with the unperturbed input
  return rep;
}

/// Single-input layer: checks dL/dx and, when `store` is given, dL/d(every parameter in it).
template <class Forward, class Backward>
GradCheckReport gradcheck(Forward&& forward, Backward&& backward, Tensor4<double> x,
                          nn::ParameterStore<double>* store = nullptr, GradCheckOptions opt = {}) {
  Tensor4<double> dx;
  std::vector<GradVar> vars;
  vars.push_back({"input", std::span<double>(x.data(), x.size()),
                  [&dx]() { return std::span<const double>(dx.data(), dx.size()); }});
  if (store && store->count() > 0) {
    // One variable per registered tensor, so the report names the parameter at fault.
    for (const auto& e : store->entries())
      vars.push_back({e.name, std::span<double>(store->value_data() + e.offset, e.size),
                      [store, e]() { return std::span<const double>(store->grad_data() + e.offset, e.size); }});
  }
  return gradcheck_vars([&](Tensor4<double>& y) { forward(x, y); },
                        [&](const Tensor4<double>& dy) { backward(dy, dx); }, std::move(vars), store, opt);
}

}  // namespace scoreood::testing
