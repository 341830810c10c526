/** @file gemm.hpp
 *  @brief Row-major GEMM over Eigen: C = alpha * op(A) * op(B) + beta * C.
 *
 *  Eigen's GEMM uses the widest SIMD the translation unit is compiled for
 *  (AVX-512 with -march=native) and splits one product across OpenMP threads
 *  unless it is called inside a parallel region, in which case it runs on the
 *  calling thread — the convolution kernels rely on that. */
#pragma once
#include <Eigen/Core>

#include <cstddef>

namespace scoreood::cpu {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMatMap = Eigen::Map<const RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using MatMap = Eigen::Map<RowMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// Views a row-major rows x cols block with leading dimension ld (>= cols).
template <class T>
ConstMatMap<T> cmap(const T* p, std::size_t rows, std::size_t cols, std::size_t ld) {
  return ConstMatMap<T>(p, Eigen::Index(rows), Eigen::Index(cols), Eigen::OuterStride<>(Eigen::Index(ld)));
}
template <class T>
MatMap<T> map(T* p, std::size_t rows, std::size_t cols, std::size_t ld) {
  return MatMap<T>(p, Eigen::Index(rows), Eigen::Index(cols), Eigen::OuterStride<>(Eigen::Index(ld)));
}

/// C[m x n] = alpha * op(A) * op(B) + beta * C, everything row-major.
/// op(A) is m x k (A stored k x m when trans_a), op(B) is k x n (B stored n x k when trans_b).
/// beta == 0 overwrites C without reading it (C may hold garbage).
template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
          std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
  auto C = map(c, m, n, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == T(0)) C.setZero();
    else C *= beta;
    return;
  }
  if (beta == T(0)) C.setZero();
  else if (beta != T(1)) C *= beta;
  const auto A = trans_a ? cmap(a, k, m, lda) : cmap(a, m, k, lda);
  const auto B = trans_b ? cmap(b, n, k, ldb) : cmap(b, k, n, ldb);
  // Four explicit cases so each is one Eigen GEMM call with the transposes folded in.
  if (!trans_a && !trans_b) C.noalias() += alpha * A * B;
  else if (trans_a && !trans_b) C.noalias() += alpha * A.transpose() * B;
  else if (!trans_a && trans_b) C.noalias() += alpha * A * B.transpose();
  else C.noalias() += alpha * A.transpose() * B.transpose();
}

}  // namespace scoreood::cpu
