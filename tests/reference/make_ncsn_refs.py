#!/usr/bin/env python3
"""Forward/backward references for the C++ NcsnRefineNet (tests/nn/test_ncsn.cpp).

Run with the Debian python (torch 1.13):  /usr/bin/python3 tests/reference/make_ncsn_refs.py
Writes tests/data/ncsn_refs.txt (refdata format, see refdata.py).

A PyTorch twin of NCSN's CondRefineNetDilated (ermongroup/ncsn,
models/cond_refinenet_dilated.py) with the published module names and
registration order, so its named_parameters() are the C++ store's entries
(torch "<norm>.embed.weight" is C++ "<norm>.embed"). Its parameter count at
ngf = 64 is checked against the independent definition in ncsn_param_count.py.

To keep the stored file small, parameters are not stored: both sides fill
them from a counter hash (splitmix64) of (tensor index, element index):
  u = (splitmix64(((k + 1) << 32) + j) >> 11) * 2^-53           in [0, 1)
  conv weight: U(+-1/sqrt(fan_in));  conv bias: U(+-0.1)
  CIN++ embed (L, 3C): gamma, alpha columns 1 + U(+-0.1), beta columns U(+-0.1)
The input x in [0, 1) uses stream 1 << 20, the output weights w (dL/dy for
L = sum(w * y)) stream 2 << 20; the per-tensor gradient projection
sum(grad * r) uses r = 2u - 1 on stream (k + 1) + (3 << 20).
Stored: per tensor [index, numel, sum of values, gradient projection], the
output for a batch of 3 at levels (0, 4, 9), computed in float64.

Comparison with the upstream model file, line by line: ermongroup/ncsn at
commit 80899cd, models/cond_refinenet_dilated.py (that repository has no
models/layers.py; every layer CondRefineNetDilated uses is defined in that
one file). Also checked by running: the upstream classes, restated outside
this repository, load this twin's state_dict with strict=True (same keys, in
the same order, same shapes) and give bit-identical outputs, parameter
gradients and input gradients in float64 for (ngf, L, channels, size) =
(4, 10, 1, 28), (4, 10, 3, 32) and (6, 5, 1, 12).
Matches:
  * ConditionalInstanceNorm2dPlus: channel means over (H, W); their mean and
    UNBIASED variance over channels (torch.var); (m - mean) / sqrt(var + 1e-5);
    instance norm without affine or running stats, eps 1e-5; embedding
    (L, 3C) split [gamma | alpha | beta]; out = gamma (h + z alpha) + beta.
    Every norm of the model is built with bias=True.
  * ConditionalResidualBlock, act ELU(alpha 1) everywhere:
    - resample None, no dilation: conv1 3x3 in->out, normalize2(out), conv2
      3x3 out->out, all with bias, padding 1; identity shortcut (in == out in
      every use);
    - resample None with dilation d: the same with dilated 3x3 convs
      (padding d, bias);
    - 'down' with dilation d (res3[0], res4[0]): conv1 in->in, normalize2(in),
      conv2 in->out and the shortcut are dilated 3x3 convs with bias and NO
      downsampling (layers 2, 3 and 4 have the same size);
    - 'down' without dilation (res2[0]): conv1 3x3 in->in, normalize2(in),
      conv2 = ConvMeanPool(3x3 in->out, padding 1) and shortcut =
      ConvMeanPool(1x1 in->out), both with bias; the mean pool is the mean of
      the four stride-2 phases [::2, ::2], [1::2, ::2], [::2, 1::2], [1::2, 1::2];
    - registration order conv1, normalize2, conv2, shortcut, normalize1;
      forward normalize1 -> ELU -> conv1 -> normalize2 -> ELU -> conv2, plus
      the shortcut.
  * CondRCUBlock: n_blocks x n_stages of (norm -> ELU -> 3x3 conv without
    bias), the residual added after each block; names "<i>_<j>_norm/_conv".
  * CondMSFBlock: per input norm -> 3x3 conv with bias -> bilinear resize
    with align_corners=True to the output size (also when the size is
    already right), summed; convs registered before norms.
  * CondCRPBlock: ELU first, then per stage norm -> 5x5 average pool (stride
    1, padding 2, count_include_pad=True; upstream names it maxpool) -> 3x3
    conv without bias, each stage's output added to the running sum; convs
    registered before norms.
  * CondRefineBlock: adapt_convs RCU(c, 2, 2) per input, output_convs
    RCU(features, 3 if end else 1, 2), msf unless start, crp CRP(features, 2);
    registered in that order; forward adapt -> msf (or the single input) ->
    crp -> output_convs.
  * CondRefineNetDilated: begin_conv, normalizer, end_conv, res1..res4 (widths
    F, 2F, 2F, 2F; dilations -, -, 2, 4), refine1([2F]) start, refine2([2F, 2F])
    -> 2F, refine3([2F, 2F]) -> F, refine4([F, F]) end, at the sizes of layer
    4, 3, 2, 1; x -> 2x - 1 first; normalizer -> ELU -> end_conv last; the
    output is not divided by sigma.
Deviations, none of which changes a value:
  * The 28-px network passes adjust_padding=True to res4[0]. Only the
    ConvMeanPool branch reads the flag (a ZeroPad2d((1, 0, 1, 0)) before its
    conv, which would also rename its parameters "conv.1.*"); res4[0] has a
    dilation and takes the dilated branch, so the flag has no effect and the
    twin leaves it out.
  * 2x - 1 is applied unconditionally: upstream skips it only with
    data.logit_transform, which every published config sets to false.
  * The twin takes (ngf, L, channels) instead of a config object and runs in
    float64; parameters are filled from the hash above instead of PyTorch's
    initialisation (upstream: conv defaults, embeddings N(1, 0.02) for gamma
    and alpha and 0 for beta).
  * Written out of place: RCU's "x += residual" as x = x + r, MSF's sum from
    torch.zeros(...) as Python's sum(...). The same values and gradients.
  * No bias=False variant of the norm, and no shortcut for resample None with
    in != out (upstream would call nn.Conv2d(in, out) without a kernel size
    there): neither occurs in the model.
  * Upstream trains through torch.nn.DataParallel, so its checkpoints prefix
    every key with "module."; the names here (and in the C++ store) are the
    bare module's.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import write_refdata  # noqa: E402

M64 = (1 << 64) - 1


def splitmix64(z):
    """Vectorised splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = (z + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(M64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_uniform(stream, n):
    j = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = splitmix64((np.uint64(stream) << np.uint64(32)) + j)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


# ---------------------------------------------------------------- the twin
class CondInstanceNormPlus(nn.Module):
    def __init__(self, c, levels):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(levels, 3 * c)

    def forward(self, x, y):
        mu = x.mean(dim=(2, 3))
        z = (mu - mu.mean(-1, keepdim=True)) / torch.sqrt(mu.var(-1, keepdim=True) + 1e-5)
        h = F.instance_norm(x, eps=1e-5)
        gamma, alpha, beta = self.embed(y).chunk(3, dim=-1)
        h = h + z[..., None, None] * alpha[..., None, None]
        return gamma[..., None, None] * h + beta[..., None, None]


def dconv(cin, cout, dilation, bias=True):
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=bias)


class ConvMeanPool(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2)

    def forward(self, x):
        h = self.conv(x)
        return (h[:, :, ::2, ::2] + h[:, :, 1::2, ::2] + h[:, :, ::2, 1::2] + h[:, :, 1::2, 1::2]) / 4.0


class ResBlock(nn.Module):
    """ConditionalResidualBlock; registration order conv1, normalize2, conv2, shortcut, normalize1."""

    def __init__(self, cin, cout, levels, down=False, dilation=None):
        super().__init__()
        if down and dilation is not None:
            self.conv1 = dconv(cin, cin, dilation)
            self.normalize2 = CondInstanceNormPlus(cin, levels)
            self.conv2 = dconv(cin, cout, dilation)
            self.shortcut = dconv(cin, cout, dilation)
        elif down:
            self.conv1 = nn.Conv2d(cin, cin, 3, padding=1)
            self.normalize2 = CondInstanceNormPlus(cin, levels)
            self.conv2 = ConvMeanPool(cin, cout, 3)
            self.shortcut = ConvMeanPool(cin, cout, 1)
        else:
            assert cin == cout
            d = dilation or 1
            self.conv1 = dconv(cin, cout, d)
            self.normalize2 = CondInstanceNormPlus(cout, levels)
            self.conv2 = dconv(cout, cout, d)
            self.shortcut = None
        self.normalize1 = CondInstanceNormPlus(cin, levels)

    def forward(self, x, y):
        h = self.conv1(F.elu(self.normalize1(x, y)))
        h = self.conv2(F.elu(self.normalize2(h, y)))
        return h + (x if self.shortcut is None else self.shortcut(x))


class RCU(nn.Module):
    def __init__(self, c, n_blocks, n_stages, levels):
        super().__init__()
        self.nb, self.ns = n_blocks, n_stages
        for i in range(n_blocks):
            for j in range(n_stages):
                setattr(self, f"{i + 1}_{j + 1}_norm", CondInstanceNormPlus(c, levels))
                setattr(self, f"{i + 1}_{j + 1}_conv", nn.Conv2d(c, c, 3, padding=1, bias=False))

    def forward(self, x, y):
        for i in range(self.nb):
            r = x
            for j in range(self.ns):
                x = getattr(self, f"{i + 1}_{j + 1}_conv")(F.elu(getattr(self, f"{i + 1}_{j + 1}_norm")(x, y)))
            x = x + r
        return x


class MSF(nn.Module):
    def __init__(self, in_planes, features, levels):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c, features, 3, padding=1) for c in in_planes])
        self.norms = nn.ModuleList([CondInstanceNormPlus(c, levels) for c in in_planes])

    def forward(self, xs, y, shape):
        return sum(F.interpolate(c(n(x, y)), size=shape, mode="bilinear", align_corners=True)
                   for x, n, c in zip(xs, self.norms, self.convs))


class CRP(nn.Module):
    def __init__(self, c, n_stages, levels):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(n_stages)])
        self.norms = nn.ModuleList([CondInstanceNormPlus(c, levels) for _ in range(n_stages)])

    def forward(self, x, y):
        x = F.elu(x)
        path = x
        for n, c in zip(self.norms, self.convs):
            path = c(F.avg_pool2d(n(path, y), 5, stride=1, padding=2))
            x = x + path
        return x


class RefineBlock(nn.Module):
    def __init__(self, in_planes, features, levels, start=False, end=False):
        super().__init__()
        self.adapt_convs = nn.ModuleList([RCU(c, 2, 2, levels) for c in in_planes])
        self.output_convs = RCU(features, 3 if end else 1, 2, levels)
        if not start:
            self.msf = MSF(in_planes, features, levels)
        self.crp = CRP(features, 2, levels)
        self.n = len(in_planes)

    def forward(self, xs, y, shape):
        hs = [a(x, y) for a, x in zip(self.adapt_convs, xs)]
        h = self.msf(hs, y, shape) if self.n > 1 else hs[0]
        return self.output_convs(self.crp(h, y), y)


class CondRefineNetDilated(nn.Module):
    def __init__(self, ngf, levels, channels):
        super().__init__()
        f = ngf
        self.begin_conv = nn.Conv2d(channels, f, 3, padding=1)
        self.normalizer = CondInstanceNormPlus(f, levels)
        self.end_conv = nn.Conv2d(f, channels, 3, padding=1)
        self.res1 = nn.ModuleList([ResBlock(f, f, levels), ResBlock(f, f, levels)])
        self.res2 = nn.ModuleList([ResBlock(f, 2 * f, levels, down=True), ResBlock(2 * f, 2 * f, levels)])
        self.res3 = nn.ModuleList([ResBlock(2 * f, 2 * f, levels, down=True, dilation=2),
                                   ResBlock(2 * f, 2 * f, levels, dilation=2)])
        self.res4 = nn.ModuleList([ResBlock(2 * f, 2 * f, levels, down=True, dilation=4),
                                   ResBlock(2 * f, 2 * f, levels, dilation=4)])
        self.refine1 = RefineBlock([2 * f], 2 * f, levels, start=True)
        self.refine2 = RefineBlock([2 * f, 2 * f], 2 * f, levels)
        self.refine3 = RefineBlock([2 * f, 2 * f], f, levels)
        self.refine4 = RefineBlock([f, f], f, levels, end=True)

    def forward(self, x, y):
        h = self.begin_conv(2 * x - 1.0)
        layers = []
        for stage in (self.res1, self.res2, self.res3, self.res4):
            for b in stage:
                h = b(h, y)
            layers.append(h)
        l1, l2, l3, l4 = layers
        r = self.refine1([l4], y, l4.shape[2:])
        r = self.refine2([l3, r], y, l3.shape[2:])
        r = self.refine3([l2, r], y, l2.shape[2:])
        r = self.refine4([l1, r], y, l1.shape[2:])
        return self.end_conv(F.elu(self.normalizer(r, y)))


def cpp_name(torch_name):
    return torch_name[:-len(".weight")] if torch_name.endswith(".embed.weight") else torch_name


def fill_parameters(net):
    with torch.no_grad():
        for k, (name, p) in enumerate(net.named_parameters()):
            u = hash_uniform(k + 1, p.numel()).reshape(p.shape)
            if name.endswith(".embed.weight"):
                c = p.shape[1] // 3
                v = 0.1 * (2 * u - 1)
                v[:, :2 * c] += 1.0
            elif name.endswith(".bias"):
                v = 0.1 * (2 * u - 1)
            else:
                fan_in = int(np.prod(p.shape[1:]))
                v = (2 * u - 1) / np.sqrt(fan_in)
            p.copy_(torch.from_numpy(v))


def main():
    import ncsn_param_count as independent

    big = CondRefineNetDilated(64, 10, 1)
    n_big = sum(p.numel() for p in big.parameters())
    n_other = sum(p.numel() for p in independent.CondRefineNetDilated().parameters())
    assert n_big == n_other, (n_big, n_other)

    torch.set_default_dtype(torch.float64)
    ngf, levels, channels, size, batch = 4, 10, 1, 28, 3
    net = CondRefineNetDilated(ngf, levels, channels).double()
    fill_parameters(net)
    x = torch.from_numpy(hash_uniform(1 << 20, batch * channels * size * size).reshape(batch, channels, size, size))
    y = torch.tensor([0, 4, 9])
    out = net(x, y)
    w = torch.from_numpy(2 * hash_uniform(2 << 20, out.numel()).reshape(out.shape) - 1)
    (out * w).sum().backward()

    arrays = {"config": [channels, size, ngf, levels], "levels": y.numpy(), "output": out.detach().numpy()}
    for k, (name, p) in enumerate(net.named_parameters()):
        r = 2 * hash_uniform((k + 1) + (3 << 20), p.numel()) - 1
        proj = float(np.dot(p.grad.numpy().reshape(-1), r))
        arrays["param." + cpp_name(name)] = [k, p.numel(), float(p.detach().sum()), proj]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "ncsn_refs.txt")
    write_refdata(path, arrays, comment=f"Generated by tests/reference/make_ncsn_refs.py (torch {torch.__version__}).\n"
                                        "CondRefineNetDilated twin, ngf=4, channels=1, image_size=28, L=10, float64;\n"
                                        "parameters from a counter hash (see the script). Do not edit.")
    print(f"{sum(p.numel() for p in net.parameters())} parameters in {len(list(net.parameters()))} tensors; "
          f"twin at ngf=64: {n_big:,} (= ncsn_param_count.py); wrote {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
