/** @file backend.hpp
 *  @brief The backend seam: tags, their storage, and one dispatch point per
 *  operation that the layers, networks, trainer and features are written over.
 *
 *  A backend is a tag (`backend::cpu`, `backend::cuda`) with
 *    - traits<B>:   `tensor<T>` (NCHW storage: Tensor4<T> on the host, a device
 *                   tensor on CUDA), `storage<T>` (a flat array: std::vector<T>,
 *                   a device buffer) and `context` (what every call needs: empty
 *                   on the CPU; a stream, library handles, plan caches and
 *                   scratch on CUDA);
 *    - ops<B>:      static functions, each taking the context first, listed by
 *                   concepts::BackendOps (concepts.hpp). Parameters are raw
 *                   pointers into a ParameterStore<T, B>, tensors are tensor_t<B, T>.
 *  traits<cpu> is below; ops<cpu> lives in cpu/backend.hpp, the CUDA ones in
 *  cuda/backend.cuh (compiled by nvcc only). This header names no kernel. A
 *  third backend is a third pair of specialisations: the networks do not change.
 *
 *  The tags live in `scoreood::backend` because `scoreood::cpu` and
 *  `scoreood::gpu` are the namespaces of the kernels themselves. */
#pragma once
#include <scoreood/core/tensor.hpp>

#include <concepts>
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace scoreood::backend {

/// The CPU: packed GEMM, Winograd and hand-vectorised kernels over OpenMP. Always available.
struct cpu {
  static constexpr std::string_view name = "cpu";
};
/// CUDA: hand-written kernels plus cuDNN convolutions (translation units compiled by nvcc).
struct cuda {
  static constexpr std::string_view name = "cuda";
};

/// True for the backend tags above and nothing else: concepts::Backend is closed.
template <class B>
inline constexpr bool is_backend = false;
template <>
inline constexpr bool is_backend<cpu> = true;
template <>
inline constexpr bool is_backend<cuda> = true;

}  // namespace scoreood::backend

namespace scoreood::concepts {
/// A backend tag: `backend::cpu` or `backend::cuda`, and nothing else by accident (a closed trait).
template <class B>
concept Backend = backend::is_backend<B> && requires {
  { B::name } -> std::convertible_to<std::string_view>;
};
}  // namespace scoreood::concepts

namespace scoreood::backend {

/// Storage and context of a backend (specialised in cpu/backend.hpp, cuda/backend.cuh).
template <class B>
struct traits;
/// The operations of a backend (specialised beside traits).
template <class B>
struct ops;

/// The CPU's: host tensors and arrays, and an empty context (its scratch is per thread, cpu/threading.hpp).
template <>
struct traits<cpu> {
  template <class T>
  using tensor = Tensor4<T>;
  template <class T>
  using storage = std::vector<T>;
  struct context {};
};

template <class B, class T>
using tensor_t = typename traits<B>::template tensor<T>;
template <class B, class T>
using storage_t = typename traits<B>::template storage<T>;
template <class B>
using context_t = typename traits<B>::context;

// ------------------------------------------------------------ operation arguments

/// A 2-D convolution, PyTorch semantics (weight [out, in, k, k], bias [out]).
struct ConvParams {
  std::size_t in = 0, out = 0, kernel = 3, stride = 1;
  std::size_t pad = 0;  ///< resolved padding on every side
  std::size_t dilation = 1;
  bool bias = true;
  bool winograd = true;  ///< the CPU may use F(4x4, 3x3) where it applies (Conv2d::set_algorithm)
};

/// Instance norm++ parameters of every sample: sample n reads gamma + levels[n] * stride (alpha, beta
/// likewise; beta may be null). A conditional norm has stride = its embedding row; a plain one stride 0.
template <class T>
struct NormParams {
  std::size_t channels = 0;
  const T* gamma = nullptr;
  const T* alpha = nullptr;
  const T* beta = nullptr;
  std::size_t stride = 0;
  std::span<const int> levels;  ///< host memory; one per sample (all 0 for a plain norm)
};
/// Where the gradients of NormParams go (same layout; accumulated).
template <class T>
struct NormGrads {
  T* gamma = nullptr;
  T* alpha = nullptr;
  T* beta = nullptr;
};

/// A 2-D average pool (PyTorch's AvgPool2d).
struct PoolParams {
  std::size_t kernel = 2, stride = 2, pad = 0;
  bool count_include_pad = true;
};

/// Adam's hyper-parameters for one step (bias corrections folded in by the caller).
struct AdamStep {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  double bias1 = 1, bias2 = 1;  ///< 1 - beta1^t, 1 - beta2^t
};

}  // namespace scoreood::backend
