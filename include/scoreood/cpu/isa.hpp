/** @file isa.hpp
 *  @brief Which instruction-set tier the CPU kernels run: chosen at run time.
 *
 *  The hot kernels (convolutions, instance norm++, ELU, upsampling: see
 *  cpu/kernels.hpp) are compiled once per tier in every build, each copy under
 *  its own target attributes, so a program built with the compiler's default
 *  flags runs the AVX-512 kernels on an AVX-512 CPU and the AVX2 ones on an
 *  AVX2 CPU, as PyTorch does. The tier is taken once, at first use, from what
 *  the CPU reports (cpuid via __builtin_cpu_supports); SCOREOOD_ISA=avx512|avx2|
 *  baseline in the environment asks for a tier (for tests and measuring; a tier
 *  the CPU lacks is refused with an error at first use), and set_active()
 *  switches it in a running program (tests run each tier in turn).
 *
 *  Tiers exist on x86-64 with GCC or Clang; elsewhere there is one, baseline
 *  (the portable loops, vectorised by the compiler for the build's flags). */
#pragma once
#include <scoreood/core/error.hpp>

#include <atomic>
#include <cstdlib>
#include <string>
#include <string_view>

#if !defined(SCOREOOD_NO_ISA_DISPATCH) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SCOREOOD_ISA_DISPATCH 1
#else
#define SCOREOOD_ISA_DISPATCH 0
#endif

// The target regions the tiers are compiled in (cpu/kernels.hpp). GCC's
// #pragma GCC target and Clang's attribute push give every function defined
// inside, templates and lambdas included, the tier's instruction set.
#if SCOREOOD_ISA_DISPATCH && defined(__clang__)
#define SCOREOOD_TARGET_PUSH(features) \
  _Pragma(SCOREOOD_TARGET_STR(clang attribute push(__attribute__((target(features))), apply_to = function)))
#define SCOREOOD_TARGET_POP _Pragma("clang attribute pop")
#elif SCOREOOD_ISA_DISPATCH
#define SCOREOOD_TARGET_PUSH(features) _Pragma("GCC push_options") _Pragma(SCOREOOD_TARGET_STR(GCC target(features)))
#define SCOREOOD_TARGET_POP _Pragma("GCC pop_options")
#endif
#define SCOREOOD_TARGET_STR(x) #x
#define SCOREOOD_TARGET_AVX2 "avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt"
#define SCOREOOD_TARGET_AVX512 "avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt"

namespace scoreood::cpu::isa {

/// The tiers, in increasing order of what they need.
enum class Tier { baseline = 0, avx2 = 1, avx512 = 2 };

inline constexpr std::string_view name(Tier t) {
  switch (t) {
    case Tier::avx512: return "avx512";
    case Tier::avx2: return "avx2";
    default: return "baseline";
  }
}

/// Whether this CPU (and this build) can run tier t.
inline bool supported(Tier t) {
#if SCOREOOD_ISA_DISPATCH
  switch (t) {
    case Tier::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Tier::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
  }
#else
  return t == Tier::baseline;
#endif
}

/// The best tier this CPU runs.
inline Tier detected() {
  if (supported(Tier::avx512)) return Tier::avx512;
  if (supported(Tier::avx2)) return Tier::avx2;
  return Tier::baseline;
}

/// "avx512", "avx2" or "baseline" as a tier; throws Error on anything else.
inline Tier parse(std::string_view s) {
  for (Tier t : {Tier::baseline, Tier::avx2, Tier::avx512})
    if (s == name(t)) return t;
  throw Error("SCOREOOD_ISA: '" + std::string(s) + "' is not a tier (avx512, avx2 or baseline)");
}

namespace detail {
/// The tier SCOREOOD_ISA asks for, else the detected one; checked against the CPU.
inline Tier initial() {
  const char* env = std::getenv("SCOREOOD_ISA");
  if (!env || !*env) return detected();
  const Tier t = parse(env);
  if (!supported(t))
    throw Error("SCOREOOD_ISA=" + std::string(env) + ": this CPU does not have it (best tier here: " +
                std::string(name(detected())) + ")");
  return t;
}
inline std::atomic<int>& current() {
  static std::atomic<int> tier{int(initial())};
  return tier;
}
}  // namespace detail

/// The tier the kernels run now.
inline Tier active() { return Tier(detail::current().load(std::memory_order_relaxed)); }

/// Makes t the tier of every later kernel call in this process and returns the previous one.
/// Throws Error when the CPU cannot run t. Calls already running finish on their tier.
inline Tier set_active(Tier t) {
  if (!supported(t))
    throw Error("cpu::isa::set_active: this CPU cannot run tier " + std::string(name(t)) + " (best: " +
                std::string(name(detected())) + ")");
  return Tier(detail::current().exchange(int(t), std::memory_order_relaxed));
}

/// Sets a tier for a scope (tests), then restores the previous one.
class ScopedTier {
 public:
  explicit ScopedTier(Tier t) : previous_(set_active(t)) {}
  ~ScopedTier() { detail::current().store(int(previous_), std::memory_order_relaxed); }
  ScopedTier(const ScopedTier&) = delete;
  ScopedTier& operator=(const ScopedTier&) = delete;

 private:
  Tier previous_;
};

}  // namespace scoreood::cpu::isa
