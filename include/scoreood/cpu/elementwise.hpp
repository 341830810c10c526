/** @file elementwise.hpp
 *  @brief Cheap element-wise tensor helpers the networks chain between layers.
 *
 *  All are memory-bound: they run as one SIMD loop, split across threads only
 *  when the tensor is large enough (64k elements) to amortise the fork. Shapes
 *  are checked and a mismatch throws ShapeError naming the helper. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/tensor.hpp>
#include <scoreood/cpu/threading.hpp>

#include <algorithm>
#include <cstddef>
#include <string>

namespace scoreood::cpu {

/// Raw SIMD loops over n contiguous elements. They are plain functions on
/// purpose: the same loop written inside a lambda that captures its pointers
/// is often left scalar by GCC (measured 10x slower for ELU's backward).
namespace kernels {
template <class T>
void add_to(T* y, const T* x, std::size_t n) {  ///< y += x
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) y[i] += x[i];
}
template <class T>
void axpy(T a, const T* x, T* y, std::size_t n) {  ///< y += a * x
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) y[i] += a * x[i];
}
template <class T>
void add(const T* a, const T* b, T* o, std::size_t n) {  ///< o = a + b
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) o[i] = a[i] + b[i];
}
template <class T>
void add_scalar(T* y, T v, std::size_t n) {  ///< y += v
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) y[i] += v;
}
template <class T>
void scale(T* y, T a, std::size_t n) {  ///< y *= a
#pragma omp simd
  for (std::size_t i = 0; i < n; ++i) y[i] *= a;
}
template <class T>
T sum(const T* x, std::size_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (std::size_t i = 0; i < n; ++i) s += x[i];
  return s;
}
}  // namespace kernels

namespace detail {
/// Calls f(begin, end) over [0, n) in parallel chunks (serial below 64k elements).
/// Put SIMD loops in kernels:: functions, not in the lambda body.
template <class F>
void chunked(std::size_t n, F&& f) {
  constexpr std::size_t grain = 1 << 16;
  const std::size_t chunks = (n + grain - 1) / grain;
  if (chunks <= 1) {
    f(std::size_t{0}, n);
    return;
  }
  parallel_for(chunks, [&](std::size_t c) { f(c * grain, std::min(n, (c + 1) * grain)); }, 1e9);
}

template <class A, class B>
void check_same(const char* what, const A& a, const B& b) {
  if (shape_of(a) != shape_of(b))
    throw ShapeError(std::string(what) + ": shapes " + to_string(shape_of(a)) + " and " + to_string(shape_of(b)) +
                     " differ");
}

template <class T>
void resize_like(Tensor4<T>& t, const Shape4& s) {
  if (shape_of(t) != s) t.resize(s);
}
}  // namespace detail

/// y += x
template <class T>
void add_inplace(Tensor4<T>& y, const Tensor4<T>& x) {
  detail::check_same("add_inplace", y, x);
  T* yd = y.data();
  const T* xd = x.data();
  detail::chunked(y.size(), [=](std::size_t b, std::size_t e) { kernels::add_to(yd + b, xd + b, e - b); });
}

/// y += alpha * x
template <class T>
void axpy(T alpha, const Tensor4<T>& x, Tensor4<T>& y) {
  detail::check_same("axpy", y, x);
  T* yd = y.data();
  const T* xd = x.data();
  detail::chunked(y.size(), [=](std::size_t b, std::size_t e) { kernels::axpy(alpha, xd + b, yd + b, e - b); });
}

/// out = a + b (out resized; may alias a or b)
template <class T>
void add(const Tensor4<T>& a, const Tensor4<T>& b, Tensor4<T>& out) {
  detail::check_same("add", a, b);
  if (&out != &a && &out != &b) detail::resize_like(out, shape_of(a));
  const T *ad = a.data(), *bd = b.data();
  T* od = out.data();  // read after the resize: out may be a or b
  detail::chunked(a.size(), [=](std::size_t b, std::size_t e) { kernels::add(ad + b, bd + b, od + b, e - b); });
}

/// y *= alpha
template <class T>
void scale_inplace(Tensor4<T>& y, T alpha) {
  T* yd = y.data();
  detail::chunked(y.size(), [=](std::size_t b, std::size_t e) { kernels::scale(yd + b, alpha, e - b); });
}

/// out = x (out resized to x's shape; no reallocation when it already fits)
template <class T>
void copy(const Tensor4<T>& x, Tensor4<T>& out) {
  if (&x == &out) return;
  detail::resize_like(out, shape_of(x));
  const T* xd = x.data();
  T* od = out.data();
  detail::chunked(x.size(), [=](std::size_t b, std::size_t e) { std::copy(xd + b, xd + e, od + b); });
}

/// t = value everywhere
template <class T>
void fill(Tensor4<T>& t, T value) {
  T* d = t.data();
  detail::chunked(t.size(), [=](std::size_t b, std::size_t e) { std::fill(d + b, d + e, value); });
}

/// Resizes t to s (no-op when it already has that shape) and zeroes it.
template <class T>
void zeros(Tensor4<T>& t, const Shape4& s) {
  detail::resize_like(t, s);
  fill(t, T(0));
}

}  // namespace scoreood::cpu
