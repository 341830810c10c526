#!/usr/bin/env python3
"""Parameter count (and conv MACs) of NCSN's CondRefineNetDilated for 28x28, 1 channel.

Run with the Debian python (torch 1.13):  /usr/bin/python3 tests/reference/ncsn_param_count.py
Writes tests/data/ncsn_param_count.txt (refdata format, see refdata.py) for the
C++ net's test, and prints a per-module breakdown.

The network follows the published definition (ermongroup/ncsn,
models/cond_refinenet_dilated.py), re-expressed here; ngf = 64, L = 10. Points
that matter for a faithful C++ port:
  * Every normalisation is CIN++ with an (L, 3C) embedding.
  * res2[0] ('down', no dilation): conv1 3x3 C->C; conv2 = conv 3x3 C->2C then a
    2x2 mean pool; shortcut = conv 1x1 C->2C then a 2x2 mean pool (both with bias).
  * res3[0] and res4[0] are declared 'down' but, having a dilation, take the
    dilated branch: conv1, conv2 and the shortcut are all dilated 3x3 convs
    (padding = dilation) WITHOUT any downsampling. So layers 2, 3, 4 are all 14x14.
  * The 28-px variant passes adjust_padding=True to res4[0] only, and that flag
    is read only by the ConvMeanPool branch (a ZeroPad2d((1, 0, 1, 0)) before the
    conv, for odd sizes such as 7 -> 4). Since res4[0] has dilation 4 it takes
    the dilated branch, so the flag has NO effect: the 28-px network is the same
    as the 32-px one. (It would matter only without dilation at 7 px.)
  * Residual conv units and chained-residual-pooling convs have no bias; the
    multi-resolution fusion convs and all other convs have one. CRP pools are
    5x5 average pools, stride 1, padding 2 (count_include_pad=True) although
    NCSN names them maxpool. MSF upsamples bilinearly with align_corners=True.
  * The input is mapped to 2x - 1 first (logit_transform off); the output is not
    divided by sigma.
"""
import os
import sys
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refdata import write_refdata  # noqa: E402


class CIN(nn.Module):
    """Conditional instance norm++ (see make_norm_refs.py)."""

    def __init__(self, c, levels):
        super().__init__()
        self.norm = nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
        self.embed = nn.Embedding(levels, 3 * c)
        with torch.no_grad():
            self.embed.weight[:, :2 * c].normal_(1, 0.02)
            self.embed.weight[:, 2 * c:].zero_()

    def forward(self, x, y):
        m = x.mean(dim=(2, 3))
        z = (m - m.mean(1, keepdim=True)) / torch.sqrt(m.var(1, keepdim=True) + 1e-5)
        g, a, b = self.embed(y).chunk(3, dim=-1)
        return g[..., None, None] * (self.norm(x) + z[..., None, None] * a[..., None, None]) + b[..., None, None]


def conv3(cin, cout, bias, dilation=1):
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=bias)


def mean_pool2(x):
    return (x[:, :, ::2, ::2] + x[:, :, 1::2, ::2] + x[:, :, ::2, 1::2] + x[:, :, 1::2, 1::2]) / 4


class ConvThenPool(nn.Module):
    """Conv (same padding, optionally after a (1,0,1,0) zero pad), then 2x2 mean pool."""

    def __init__(self, cin, cout, k, adjust_padding=False):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 0, 1, 0)) if adjust_padding else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=True)

    def forward(self, x):
        return mean_pool2(self.conv(self.pad(x)))


class CondResBlock(nn.Module):
    def __init__(self, cin, cout, levels, down=False, dilation=None, adjust_padding=False):
        super().__init__()
        self.cin, self.cout, self.down = cin, cout, down
        self.norm1 = CIN(cin, levels)
        if down and dilation is not None:       # declared 'down', but no resampling happens
            self.conv1 = conv3(cin, cin, True, dilation)
            self.norm2 = CIN(cin, levels)
            self.conv2 = conv3(cin, cout, True, dilation)
            make_shortcut = partial(conv3, bias=True, dilation=dilation)
        elif down:
            self.conv1 = conv3(cin, cin, True)
            self.norm2 = CIN(cin, levels)
            self.conv2 = ConvThenPool(cin, cout, 3, adjust_padding)
            make_shortcut = partial(ConvThenPool, k=1, adjust_padding=adjust_padding)
        else:
            d = dilation or 1
            self.conv1 = conv3(cin, cout, True, d)
            self.norm2 = CIN(cout, levels)
            self.conv2 = conv3(cout, cout, True, d)
            # (Never built here: without 'down' no block changes its channel count.)
            make_shortcut = (partial(conv3, bias=True, dilation=dilation) if dilation is not None
                             else partial(nn.Conv2d, kernel_size=1))
        self.shortcut = make_shortcut(cin, cout) if (cin != cout or down) else None

    def forward(self, x, y):
        h = self.conv1(F.elu(self.norm1(x, y)))
        h = self.conv2(F.elu(self.norm2(h, y)))
        return h + (x if self.shortcut is None else self.shortcut(x))


class RCU(nn.Module):
    """Conditional residual conv unit: n_blocks x (2 x (CIN -> ELU -> conv3x3 no bias)) + identity."""

    def __init__(self, c, n_blocks, levels, n_stages=2):
        super().__init__()
        self.norms = nn.ModuleList([CIN(c, levels) for _ in range(n_blocks * n_stages)])
        self.convs = nn.ModuleList([conv3(c, c, False) for _ in range(n_blocks * n_stages)])
        self.n_blocks, self.n_stages = n_blocks, n_stages

    def forward(self, x, y):
        k = 0
        for _ in range(self.n_blocks):
            r = x
            for _ in range(self.n_stages):
                x = self.convs[k](F.elu(self.norms[k](x, y)))
                k += 1
            x = x + r
        return x


class CRP(nn.Module):
    """Chained residual pooling: ELU, then n_stages x (CIN -> avgpool5 -> conv3x3 no bias), summed."""

    def __init__(self, c, levels, n_stages=2):
        super().__init__()
        self.norms = nn.ModuleList([CIN(c, levels) for _ in range(n_stages)])
        self.convs = nn.ModuleList([conv3(c, c, False) for _ in range(n_stages)])
        self.pool = nn.AvgPool2d(5, stride=1, padding=2)

    def forward(self, x, y):
        x = F.elu(x)
        path = x
        for n, c in zip(self.norms, self.convs):
            path = c(self.pool(n(path, y)))
            x = x + path
        return x


class MSF(nn.Module):
    """Multi-resolution fusion: per input CIN -> conv3x3 (bias) -> bilinear resize, summed."""

    def __init__(self, in_planes, features, levels):
        super().__init__()
        self.norms = nn.ModuleList([CIN(c, levels) for c in in_planes])
        self.convs = nn.ModuleList([conv3(c, features, True) for c in in_planes])

    def forward(self, xs, y, shape):
        out = 0
        for x, n, c in zip(xs, self.norms, self.convs):
            out = out + F.interpolate(c(n(x, y)), size=shape, mode="bilinear", align_corners=True)
        return out


class RefineBlock(nn.Module):
    def __init__(self, in_planes, features, levels, start=False, end=False):
        super().__init__()
        self.adapt = nn.ModuleList([RCU(c, 2, levels) for c in in_planes])
        self.msf = None if start else MSF(in_planes, features, levels)
        self.crp = CRP(features, levels)
        self.out = RCU(features, 3 if end else 1, levels)

    def forward(self, xs, y, shape):
        hs = [a(x, y) for a, x in zip(self.adapt, xs)]
        h = self.msf(hs, y, shape) if self.msf is not None else hs[0]
        return self.out(self.crp(h, y), y)


class CondRefineNetDilated(nn.Module):
    def __init__(self, ngf=64, levels=10, channels=1, image_size=28):
        super().__init__()
        f = ngf
        self.begin_conv = nn.Conv2d(channels, f, 3, padding=1)
        self.res1 = nn.ModuleList([CondResBlock(f, f, levels), CondResBlock(f, f, levels)])
        self.res2 = nn.ModuleList([CondResBlock(f, 2 * f, levels, down=True), CondResBlock(2 * f, 2 * f, levels)])
        self.res3 = nn.ModuleList([CondResBlock(2 * f, 2 * f, levels, down=True, dilation=2),
                                   CondResBlock(2 * f, 2 * f, levels, dilation=2)])
        self.res4 = nn.ModuleList([CondResBlock(2 * f, 2 * f, levels, down=True, dilation=4,
                                                adjust_padding=(image_size == 28)),
                                   CondResBlock(2 * f, 2 * f, levels, dilation=4)])
        self.refine1 = RefineBlock([2 * f], 2 * f, levels, start=True)
        self.refine2 = RefineBlock([2 * f, 2 * f], 2 * f, levels)
        self.refine3 = RefineBlock([2 * f, 2 * f], f, levels)
        self.refine4 = RefineBlock([f, f], f, levels, end=True)
        self.normalizer = CIN(f, levels)
        self.end_conv = nn.Conv2d(f, channels, 3, padding=1)

    def forward(self, x, y):
        h = self.begin_conv(2 * x - 1)
        l1 = h
        for b in self.res1:
            l1 = b(l1, y)
        l2 = l1
        for b in self.res2:
            l2 = b(l2, y)
        l3 = l2
        for b in self.res3:
            l3 = b(l3, y)
        l4 = l3
        for b in self.res4:
            l4 = b(l4, y)
        r = self.refine1([l4], y, l4.shape[2:])
        r = self.refine2([l3, r], y, l3.shape[2:])
        r = self.refine3([l2, r], y, l2.shape[2:])
        r = self.refine4([l1, r], y, l1.shape[2:])
        return self.end_conv(F.elu(self.normalizer(r, y)))


def main():
    torch.manual_seed(0)
    net = CondRefineNetDilated()
    total = sum(p.numel() for p in net.parameters())
    rows = [(name, sum(p.numel() for p in m.parameters())) for name, m in net.named_children()]
    macs = [0]

    def hook(mod, inp, out):
        macs[0] += out[0].numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        x = torch.rand(1, 1, 28, 28)
        y = torch.zeros(1, dtype=torch.long)
        out = net(x, y)
    assert out.shape == x.shape
    print(f"CondRefineNetDilated ngf=64, 1 channel, 28 px, L=10: {total:,} parameters, "
          f"{macs[0] / 1e9:.3f} GMAC per image (convolutions only)")
    for name, n in rows:
        print(f"  {name:12s} {n:>10,}")
    # NCSN's CIFAR-10 configuration: ngf = 128, 3 channels, 32 px (hooks still attached).
    cifar = CondRefineNetDilated(ngf=128, channels=3, image_size=32)
    for m in cifar.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    macs[0], conv_macs_28 = 0, macs[0]
    with torch.no_grad():
        assert cifar(torch.rand(1, 3, 32, 32), torch.zeros(1, dtype=torch.long)).shape == (1, 3, 32, 32)
    cifar_total = sum(p.numel() for p in cifar.parameters())
    print(f"CondRefineNetDilated ngf=128, 3 channels, 32 px, L=10: {cifar_total:,} parameters, "
          f"{macs[0] / 1e9:.3f} GMAC per image")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "ncsn_param_count.txt")
    arrays = {"total": [total], "conv_macs": [conv_macs_28]}
    arrays.update({"module." + n: [c] for n, c in rows})
    arrays.update({"cifar.total": [cifar_total], "cifar.conv_macs": [macs[0]]})
    write_refdata(path, arrays, comment=f"Generated by tests/reference/ncsn_param_count.py (torch {torch.__version__}).\n"
                                        "NCSN CondRefineNetDilated, ngf=64, channels=1, image_size=28, L=10;\n"
                                        "cifar.*: ngf=128, channels=3, image_size=32, L=10.\n"
                                        "Do not edit.")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
