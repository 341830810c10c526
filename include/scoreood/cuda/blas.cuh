/** @file blas.cuh
 *  @brief cuBLAS for the large matrix products: an owning handle and a
 *  row-major single-precision GEMM (the library's matrices are row-major,
 *  cuBLAS is column-major: C^T = op(B)^T op(A)^T is computed instead).
 *  cuBLAS's default math mode keeps float32 GEMMs off TF32. */
#pragma once
#include <scoreood/cuda/error.cuh>

#if !SCOREOOD_HAVE_CUBLAS
#error "scoreood/cuda/blas.cuh needs cuBLAS (cublas_v2.h on the include path)"
#endif

#include <string>
#include <utility>

namespace scoreood::gpu {

/// An owning cuBLAS handle bound to a stream.
class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream = nullptr) {
    SCOREOOD_CUBLAS_CHECK(cublasCreate(&h_));
    SCOREOOD_CUBLAS_CHECK(cublasSetStream(h_, stream));
  }
  ~CublasHandle() {
    if (h_) (void)cublasDestroy(h_);
  }
  CublasHandle(CublasHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  CublasHandle& operator=(CublasHandle&& o) noexcept {
    if (this != &o) {
      if (h_) (void)cublasDestroy(h_);
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const noexcept { return h_; }
  void set_stream(cudaStream_t s) { SCOREOOD_CUBLAS_CHECK(cublasSetStream(h_, s)); }

 private:
  cublasHandle_t h_ = nullptr;
};

/// Row-major C (m x n) = alpha * op(A) op(B) + beta * C, op(A) m x k, op(B) k x n.
/// A is stored m x k (k x m when trans_a), B k x n (n x k when trans_b); all dense.
inline void gemm(const CublasHandle& h, bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                 const float* b, float beta, float* c) {
  if (m < 0 || n < 0 || k < 0)
    throw ShapeError("gemm: negative size m " + std::to_string(m) + ", n " + std::to_string(n) + ", k " +
                     std::to_string(k));
  if (m == 0 || n == 0) return;
  const int lda = trans_a ? m : k, ldb = trans_b ? k : n;
  SCOREOOD_CUBLAS_CHECK(cublasSgemm(h.get(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                    n, m, k, &alpha, b, ldb, a, lda, &beta, c, n));
}

}  // namespace scoreood::gpu
