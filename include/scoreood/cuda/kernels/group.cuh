/** @file group.cuh
 *  @brief Group actions on NCHW images on the device: the dihedral group D4
 *  (rotations by multiples of 90 degrees, horizontal flips) and patch
 *  permutations. Every action is a permutation of pixels, so its adjoint (the
 *  backward pass) is the inverse action. Also the two batch builders of the
 *  CUDA backend that move pixels under a group: the DSM training batch and the
 *  noisy group copies of a clean batch behind the normality features.
 *
 *  Element g in [0, 8), as augment::Rot4 / augment::Dihedral8 (augment/geometry.hpp):
 *  g < 4 rotates counter-clockwise by g quarter turns (np.rot90(x, g, axes=(H, W)));
 *  g >= 4 flips horizontally, then rotates by g - 4:
 *    1: out[i][j] = in[j][W-1-i]       2: in[H-1-i][W-1-j]     3: in[H-1-j][i]
 *    4: in[i][W-1-j] (flip)            5: in[j][i] (transpose)
 *    6: in[H-1-i][j] (vertical flip)   7: in[H-1-j][W-1-i] (anti-transpose)
 *  Odd g needs square images (H == W). */
#pragma once
#include <scoreood/core/rng.hpp>
#include <scoreood/cuda/kernels/common.cuh>

namespace scoreood::gpu {

/// The element undoing g: (4 - k) % 4 for a rotation, g itself for a reflection.
SCOREOOD_HOST_DEVICE inline int dihedral_inverse(int g) { return g < 4 ? (4 - g) % 4 : g; }

/// Source pixel (si, sj) of output pixel (i, j) under element g (table above); g in [0, 8).
SCOREOOD_HOST_DEVICE inline void d4_source(int g, int H, int W, int i, int j, int& si, int& sj) {
  switch (g) {
    case 1: si = j; sj = W - 1 - i; break;
    case 2: si = H - 1 - i; sj = W - 1 - j; break;
    case 3: si = H - 1 - j; sj = i; break;
    case 4: si = i; sj = W - 1 - j; break;
    case 5: si = j; sj = i; break;
    case 6: si = H - 1 - i; sj = j; break;
    case 7: si = H - 1 - j; sj = W - 1 - i; break;
    default: si = i; sj = j; break;
  }
}

/// Image batch geometry for the group actions.
struct ImageShape {
  int batch = 0, channels = 0, height = 0, width = 0;
  std::size_t size() const { return std::size_t(batch) * channels * height * width; }
};

namespace kernels {

/// One thread per output pixel; g = elements[n] (or g_all when elements is null).
/// An element outside [0, 8) poisons that sample with NaN.
template <typename T>
__global__ void dihedral(const T* in, T* out, ImageShape s, const int* elements, int g_all) {
  const int H = s.height, W = s.width;
  const std::size_t n_all = std::size_t(s.batch) * s.channels * H * W;
  for (std::size_t idx = detail::global_index(); idx < n_all; idx += detail::global_stride()) {
    const int j = int(idx % W);
    const int i = int((idx / W) % H);
    const std::size_t plane = idx / (std::size_t(W) * H);
    const int n = int(plane / s.channels);
    const int g = elements ? elements[n] : g_all;
    if (g < 0 || g >= 8) {
      out[idx] = T(NAN);
      continue;
    }
    int si, sj;
    d4_source(g, H, W, i, j, si, sj);
    out[idx] = in[(plane * H + si) * W + sj];
  }
}

/// Patches of ph x pw on a (H/ph) x (W/pw) grid, numbered row-major. Forward:
/// output patch q is input patch perm[q]; inverse: output patch perm[q] is
/// input patch q. perm for sample n starts at table + n * table_stride.
template <typename T>
__global__ void patch_permute(const T* in, T* out, ImageShape s, int ph, int pw, const int* table,
                              std::size_t table_stride, bool inverse) {
  const int H = s.height, W = s.width;
  const int gw = W / pw, patches = (H / ph) * gw;
  const std::size_t n_all = std::size_t(s.batch) * s.channels * H * W;
  for (std::size_t idx = detail::global_index(); idx < n_all; idx += detail::global_stride()) {
    const int j = int(idx % W), i = int((idx / W) % H);
    const std::size_t plane = idx / (std::size_t(W) * H);
    const int n = int(plane / s.channels);
    const int* perm = table + std::size_t(n) * table_stride;
    const int q = (i / ph) * gw + j / pw;
    const int src = perm[q];
    if (src < 0 || src >= patches) {
      // Bad table entry: poison (inverse mode: the destination is unknown, so
      // this patch's own pixels are poisoned instead).
      out[idx] = T(NAN);
      continue;
    }
    if (!inverse) {
      const int si = (src / gw) * ph + i % ph, sj = (src % gw) * pw + j % pw;
      out[idx] = in[(plane * H + si) * W + sj];
    } else {
      const int di = (src / gw) * ph + i % ph, dj = (src % gw) * pw + j % pw;
      out[(plane * H + di) * W + dj] = in[idx];
    }
  }
}

/// The DSM training batch (score::make_dsm_batch on the device), one thread per output pixel:
/// sample b takes image index[b] of `data`, noise z = rng.normal(b P + q) at the flat index q of
/// each UN-transformed pixel, and the network input is element code[b] applied to x + sigma_b z:
///   input[b, o] = data[index[b], q] + sigma[b] * z_q,   noise[b, q] = z_q,   q = d4_source(code[b], o).
/// Every q of an image is the source of exactly one o, so noise is written once everywhere.
template <typename T>
__global__ void dsm_batch(const T* data, const int* index, const int* code, const T* sigma, T* input, T* noise,
                          ImageShape s, CounterRng rng) {
  const int H = s.height, W = s.width;
  const std::size_t HW = std::size_t(H) * W, P = std::size_t(s.channels) * HW, n_all = std::size_t(s.batch) * P;
  for (std::size_t o = detail::global_index(); o < n_all; o += detail::global_stride()) {
    const std::size_t b = o / P, r = o % P, c = r / HW;
    const int i = int((r % HW) / W), j = int(r % W);
    int si, sj;
    d4_source(code[b], H, W, i, j, si, sj);
    const std::size_t q = c * HW + std::size_t(si) * W + std::size_t(sj);
    const T z = T(rng.normal(b * P + q));
    input[o] = data[std::size_t(index[b]) * P + q] + sigma[b] * z;
    noise[b * P + q] = z;
  }
}

/// The noisy group copies of B clean images (score::detail::network_passes on the device):
/// z_b = rng.normal((first + b) P + q), copy g of image b = element code[g] of x_b + sigma z_b,
/// stored group-major at (g B + b); z (B images) written by the copies of g = 0.
template <typename T>
__global__ void group_copies(const T* x, const int* code, int groups, T sigma, T* out, T* z, ImageShape s,
                             CounterRng rng, std::uint64_t first) {
  const int H = s.height, W = s.width, B = s.batch;
  const std::size_t HW = std::size_t(H) * W, P = std::size_t(s.channels) * HW;
  const std::size_t n_all = std::size_t(groups) * B * P;
  for (std::size_t o = detail::global_index(); o < n_all; o += detail::global_stride()) {
    const std::size_t k = o / P, r = o % P, c = r / HW;
    const int g = int(k / std::size_t(B));
    const std::size_t b = k % std::size_t(B);
    const int i = int((r % HW) / W), j = int(r % W);
    int si, sj;
    d4_source(code[g], H, W, i, j, si, sj);
    const std::size_t q = c * HW + std::size_t(si) * W + std::size_t(sj);
    const T zq = T(rng.normal((first + b) * P + q));
    out[o] = x[b * P + q] + sigma * zq;
    if (g == 0) z[b * P + q] = zq;
  }
}

}  // namespace kernels

/// DSM batch from a training set on the device (see kernels::dsm_batch). data: the
/// training images; index, code, sigma: s.batch values each on the device (image index,
/// D4 element, noise level); input and noise: s.batch images of data's image shape.
template <typename T>
void dsm_batch(const T* data, const int* index, const int* code, const T* sigma, T* input, T* noise,
               const ImageShape& s, const CounterRng& rng, cudaStream_t stream = nullptr) {
  detail::require_shape(s.batch >= 0 && s.channels >= 1 && s.height >= 1 && s.width >= 1, "dsm_batch",
                        "image sizes must be positive");
  if (s.size() == 0) return;
  kernels::dsm_batch<<<detail::grid_for(s.size()), kBlock, 0, stream>>>(data, index, code, sigma, input, noise, s, rng);
  SCOREOOD_CUDA_CHECK_LAUNCH("dsm_batch");
}

/// Noisy group copies (see kernels::group_copies): x holds s.batch clean images, code `groups`
/// D4 elements on the device (code[0] the identity), out groups * s.batch images, z s.batch images.
template <typename T>
void group_copies(const T* x, const int* code, int groups, T sigma, T* out, T* z, const ImageShape& s,
                  const CounterRng& rng, std::uint64_t first_image, cudaStream_t stream = nullptr) {
  detail::require_shape(s.batch >= 0 && s.channels >= 1 && s.height >= 1 && s.width >= 1 && groups >= 1,
                        "group_copies", "image sizes and the number of group elements must be positive");
  const std::size_t n = s.size() * std::size_t(groups);
  if (n == 0) return;
  kernels::group_copies<<<detail::grid_for(n), kBlock, 0, stream>>>(x, code, groups, sigma, out, z, s, rng,
                                                                    first_image);
  SCOREOOD_CUDA_CHECK_LAUNCH("group_copies");
}

/// out = g_n . in for every sample (elements: `batch` ints on the device, or
/// null to apply g_all to all). in and out must not overlap.
template <typename T>
void dihedral(const T* in, T* out, const ImageShape& s, const int* elements, int g_all = 0,
              cudaStream_t stream = nullptr) {
  detail::require_shape(s.batch >= 0 && s.channels >= 1 && s.height >= 1 && s.width >= 1, "dihedral",
                        "image sizes must be positive");
  detail::require(elements != nullptr || (g_all >= 0 && g_all < 8), "dihedral",
                  "group element " + std::to_string(g_all) + " is outside [0, 8)");
  const bool odd_possible = elements != nullptr || (g_all & 1);
  detail::require_shape(!odd_possible || s.height == s.width, "dihedral",
                        "quarter turns need square images, got " + std::to_string(s.height) + "x" +
                            std::to_string(s.width));
  if (s.size() == 0) return;
  kernels::dihedral<<<detail::grid_for(s.size()), kBlock, 0, stream>>>(in, out, s, elements, g_all);
  SCOREOOD_CUDA_CHECK_LAUNCH("dihedral");
}

/// out = rot90^k(in), the same k for the whole batch (k taken modulo 4).
template <typename T>
void rot90(const T* in, T* out, const ImageShape& s, int k, cudaStream_t stream = nullptr) {
  dihedral(in, out, s, nullptr, ((k % 4) + 4) % 4, stream);
}

/// out = horizontal flip of in.
template <typename T>
void hflip(const T* in, T* out, const ImageShape& s, cudaStream_t stream = nullptr) {
  dihedral(in, out, s, nullptr, 4, stream);
}

/// Patch permutation (see kernels::patch_permute); `inverse` applies the
/// inverse permutation, which is also the backward pass. table: device ints,
/// (H/ph)*(W/pw) per sample, table_stride apart (0: one table for all).
/// Every entry must be in range and each table a permutation.
template <typename T>
void patch_permute(const T* in, T* out, const ImageShape& s, int ph, int pw, const int* table,
                   std::size_t table_stride, bool inverse = false, cudaStream_t stream = nullptr) {
  detail::require_shape(ph >= 1 && pw >= 1 && s.height % ph == 0 && s.width % pw == 0, "patch_permute",
                        "patch " + std::to_string(ph) + "x" + std::to_string(pw) + " does not tile " +
                            std::to_string(s.height) + "x" + std::to_string(s.width));
  if (s.size() == 0) return;
  kernels::patch_permute<<<detail::grid_for(s.size()), kBlock, 0, stream>>>(in, out, s, ph, pw, table, table_stride,
                                                                            inverse);
  SCOREOOD_CUDA_CHECK_LAUNCH("patch_permute");
}

}  // namespace scoreood::gpu
