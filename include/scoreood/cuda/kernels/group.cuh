/** @file group.cuh
 *  @brief Group actions on NCHW images on the device: the dihedral group D4
 *  (rotations by multiples of 90 degrees, horizontal flips) and patch
 *  permutations. Every action is a permutation of pixels, so its adjoint (the
 *  backward pass) is the inverse action.
 *
 *  Element g in [0, 8): rotate counter-clockwise by k = g % 4 quarter turns
 *  (torch.rot90(x, k, dims=(2, 3))), then, when g >= 4, flip horizontally:
 *    k = 1: out[i][j] = in[j][W-1-i]     k = 2: out[i][j] = in[H-1-i][W-1-j]
 *    k = 3: out[i][j] = in[H-1-j][i]     flip:  out[i][j] = in[i][W-1-j]
 *  Odd k needs square images (H == W). */
#pragma once
#include <scoreood/cuda/kernels/common.cuh>

namespace scoreood::gpu {

/// The element undoing g: (4 - k) % 4 for a rotation, g itself for a reflection.
SCOREOOD_HOST_DEVICE inline int dihedral_inverse(int g) { return g < 4 ? (4 - g) % 4 : g; }

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
    int j = int(idx % W);
    const int i = int((idx / W) % H);
    const std::size_t plane = idx / (std::size_t(W) * H);
    const int n = int(plane / s.channels);
    const int g = elements ? elements[n] : g_all;
    if (g < 0 || g >= 8) {
      out[idx] = T(NAN);
      continue;
    }
    if (g >= 4) j = W - 1 - j;  // the flip acts after the rotation
    int si = i, sj = j;
    switch (g & 3) {
      case 1: si = j; sj = W - 1 - i; break;
      case 2: si = H - 1 - i; sj = W - 1 - j; break;
      case 3: si = H - 1 - j; sj = i; break;
      default: break;
    }
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

}  // namespace kernels

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
