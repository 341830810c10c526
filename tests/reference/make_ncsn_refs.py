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
    import ncsn_param_count as colleague

    big = CondRefineNetDilated(64, 10, 1)
    n_big = sum(p.numel() for p in big.parameters())
    n_other = sum(p.numel() for p in colleague.CondRefineNetDilated().parameters())
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
