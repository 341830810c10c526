#!/usr/bin/env python3
"""PyTorch twin of scoreood's SmallUNet: the same architecture, loss and optimiser,
for side-by-side speed and training-curve comparisons with the C++ library.

Run with the Debian python (torch 1.13 CPU):
    /usr/bin/python3 benchmarks/torch_small_unet.py                 # parameters and MACs
    /usr/bin/python3 benchmarks/torch_small_unet.py --bench [--json]
    /usr/bin/python3 benchmarks/torch_small_unet.py --train 200 --log torch_loss.csv

Architecture (C = --width, default 32; L = 10 levels; 1 channel; 28 px):
    conv3x3(1->C)                                     x28  -> a28
    ResBlock(C)                                       28   -> a28 (skip)
    ResBlock(C->2C, stride 2)                         14   -> a14 (skip)
    ResBlock(2C->2C, stride 2)                        7
    ResBlock(2C)                                      7
    nearest-upsample x2, + a14                        14
    ResBlock(2C->C)                                   14
    nearest-upsample x2, + a28                        28
    ResBlock(C)                                       28
    CIN++ -> ELU -> conv3x3(C->1)
ResBlock = CIN++ -> ELU -> conv3x3(stride) -> CIN++ -> ELU -> conv3x3, plus the
identity, or a 1x1 conv with the same stride when the shape changes. Every conv
has a bias and "same" padding. CIN++ is NCSN's ConditionalInstanceNorm2dPlus
(see tests/reference/make_norm_refs.py for the reference of the C++ layer).

Loss (Eq. 1, per sample): 0.5 sigma^2 || s(x~, i) + (x~ - x) / sigma^2 ||^2 summed
over pixels, averaged over the batch; sigma geometric 1 -> 0.01 over L = 10,
one uniform level per sample; Adam lr 1e-3, batch 128.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST_TRAIN = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


# ----------------------------------------------------------------- layers
class CondInstanceNormPP(nn.Module):
    """NCSN's conditional instance norm++; embedding rows [gamma | alpha | beta]."""

    def __init__(self, channels, levels):
        super().__init__()
        self.c = channels
        self.norm = nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
        self.embed = nn.Embedding(levels, 3 * channels)
        with torch.no_grad():
            self.embed.weight[:, :2 * channels].normal_(1, 0.02)
            self.embed.weight[:, 2 * channels:].zero_()

    def forward(self, x, y):
        m = x.mean(dim=(2, 3))
        z = (m - m.mean(dim=1, keepdim=True)) / torch.sqrt(m.var(dim=1, keepdim=True) + 1e-5)
        gamma, alpha, beta = self.embed(y).chunk(3, dim=-1)
        h = self.norm(x) + z[:, :, None, None] * alpha[:, :, None, None]
        return gamma[:, :, None, None] * h + beta[:, :, None, None]


class ResBlock(nn.Module):
    def __init__(self, cin, cout, levels, stride=1):
        super().__init__()
        self.norm1 = CondInstanceNormPP(cin, levels)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.norm2 = CondInstanceNormPP(cout, levels)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, stride=stride) if (cin != cout or stride != 1) else None

    def forward(self, x, y):
        h = self.conv1(F.elu(self.norm1(x, y)))
        h = self.conv2(F.elu(self.norm2(h, y)))
        return h + (x if self.skip is None else self.skip(x))


class SmallUNet(nn.Module):
    def __init__(self, width=32, levels=10, channels=1):
        super().__init__()
        C = width
        self.conv_in = nn.Conv2d(channels, C, 3, padding=1)
        self.enc28 = ResBlock(C, C, levels)
        self.down14 = ResBlock(C, 2 * C, levels, stride=2)
        self.down7 = ResBlock(2 * C, 2 * C, levels, stride=2)
        self.mid7 = ResBlock(2 * C, 2 * C, levels)
        self.up14 = ResBlock(2 * C, C, levels)
        self.dec28 = ResBlock(C, C, levels)
        self.norm_out = CondInstanceNormPP(C, levels)
        self.conv_out = nn.Conv2d(C, channels, 3, padding=1)

    def forward(self, x, y):
        a28 = self.enc28(self.conv_in(x), y)
        a14 = self.down14(a28, y)
        h = self.mid7(self.down7(a14, y), y)
        h = F.interpolate(h, scale_factor=2, mode="nearest") + a14
        h = self.up14(h, y)
        h = F.interpolate(h, scale_factor=2, mode="nearest") + a28
        h = self.dec28(h, y)
        return self.conv_out(F.elu(self.norm_out(h, y)))


# ----------------------------------------------------------------- counts
def conv_macs(cin, cout, k, hout, wout):
    return cin * cout * k * k * hout * wout


def hand_count(width=32, levels=10, channels=1, size=28):
    """Parameters and conv MACs from the architecture description alone (no torch)."""
    C = width
    params, macs = 0, 0

    def conv(cin, cout, k, hout):
        nonlocal params, macs
        params += cin * cout * k * k + cout
        macs += conv_macs(cin, cout, k, hout, hout)

    def norm(c):
        nonlocal params
        params += levels * 3 * c

    def block(cin, cout, hout, stride=1):
        norm(cin)
        conv(cin, cout, 3, hout)
        norm(cout)
        conv(cout, cout, 3, hout)
        if cin != cout or stride != 1:
            conv(cin, cout, 1, hout)

    s1, s2, s4 = size, (size + 1) // 2, ((size + 1) // 2 + 1) // 2
    conv(channels, C, 3, s1)
    block(C, C, s1)
    block(C, 2 * C, s2, 2)
    block(2 * C, 2 * C, s4, 2)
    block(2 * C, 2 * C, s4)
    block(2 * C, C, s2)
    block(C, C, s1)
    norm(C)
    conv(C, channels, 3, s1)
    return params, macs


def hooked_macs(model, x, y):
    """Conv MACs measured on a real forward pass: out elements * (cin/groups) * kh * kw."""
    total = [0]

    def hook(mod, inp, out):
        total[0] += out.numel() // out.shape[0] * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x, y)
    for h in hs:
        h.remove()
    return total[0]


# ----------------------------------------------------------------- training pieces
def sigmas(levels=10, hi=1.0, lo=0.01):
    return torch.tensor(np.geomspace(hi, lo, levels), dtype=torch.float32)


def dsm_loss(model, x, sig, gen):
    """Eq. 1 with one uniform level per sample; returns the batch-mean loss."""
    n = x.shape[0]
    idx = torch.randint(0, len(sig), (n,), generator=gen)
    s = sig[idx].view(n, 1, 1, 1)
    z = torch.randn(x.shape, generator=gen)
    xt = x + s * z
    score = model(xt, idx)
    # 0.5 s^2 ||score + (xt - x)/s^2||^2 = 0.5 ||s*score + z||^2
    per = 0.5 * ((s * score + z) ** 2).sum(dim=(1, 2, 3))
    return per.mean()


def load_idx_images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n, h, w = np.frombuffer(data[:16], dtype=">u4")
    if magic != 2051:
        raise ValueError(f"{path}: not an IDX image file (magic {magic})")
    imgs = np.frombuffer(data[16:16 + n * h * w], dtype=np.uint8).reshape(n, 1, h, w)
    return torch.from_numpy(imgs.astype(np.float32) / 255.0)


# ----------------------------------------------------------------- modes
def report_counts(args):
    torch.manual_seed(0)
    model = SmallUNet(args.width, args.levels)
    n_params = sum(p.numel() for p in model.parameters())
    hp, hm = hand_count(args.width, args.levels)
    x = torch.zeros(1, 1, 28, 28)
    y = torch.zeros(1, dtype=torch.long)
    mm = hooked_macs(model, x, y)
    ok = (n_params == hp) and (mm == hm)
    return model, {"width": args.width, "levels": args.levels, "params": n_params, "params_by_hand": hp,
                   "macs": mm, "macs_by_hand": hm, "counts_agree": ok}


def bench(args, info):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = SmallUNet(args.width, args.levels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sig = sigmas(args.levels)
    x = torch.rand(args.batch, 1, 28, 28, generator=gen)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = dsm_loss(model, x, sig, gen)
        loss.backward()
        opt.step()
        return loss

    for _ in range(args.warmup):
        train_step()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        train_step()
    t_train = (time.perf_counter() - t0) / args.iters

    idx = torch.randint(0, args.levels, (args.batch,), generator=gen)
    with torch.no_grad():
        for _ in range(args.warmup):
            model(x, idx)
        t0 = time.perf_counter()
        for _ in range(args.iters):
            model(x, idx)
        t_fwd = (time.perf_counter() - t0) / args.iters
    info.update({"torch": torch.__version__, "threads": args.threads, "batch": args.batch,
                 "train_step_s": t_train, "train_images_per_s": args.batch / t_train,
                 "forward_s": t_fwd, "forward_images_per_s": args.batch / t_fwd,
                 "forward_gmac_per_s": info["macs"] * args.batch / t_fwd / 1e9})
    return info


def train(args, info):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    data = load_idx_images(args.data)
    model = SmallUNet(args.width, args.levels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sig = sigmas(args.levels)
    log = open(args.log, "w") if args.log else None
    if log:
        log.write("step,loss\n")
    perm, pos = torch.randperm(len(data), generator=gen), 0
    t0 = time.perf_counter()
    for step in range(1, args.train + 1):
        if pos + args.batch > len(data):
            perm, pos = torch.randperm(len(data), generator=gen), 0
        x = data[perm[pos:pos + args.batch]]
        pos += args.batch
        opt.zero_grad(set_to_none=True)
        loss = dsm_loss(model, x, sig, gen)
        loss.backward()
        opt.step()
        if log:
            log.write(f"{step},{loss.item():.6f}\n")
        if step % 10 == 0 or step == args.train:
            print(f"step {step:6d}  loss {loss.item():.4f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    if log:
        log.close()
    info.update({"train_steps": args.train, "final_loss": loss.item(), "train_seconds": time.perf_counter() - t0})
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--levels", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench", action="store_true", help="time a training step and a forward pass")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--train", type=int, metavar="STEPS", default=0, help="train on Fashion-MNIST")
    ap.add_argument("--data", default=FMNIST_TRAIN)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", metavar="FILE", help="CSV step,loss of --train")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()

    _, info = report_counts(args)
    if not args.json:
        print(f"SmallUNet width {args.width}, {args.levels} levels: {info['params']:,} parameters "
              f"(by hand {info['params_by_hand']:,}), {info['macs'] / 1e6:.3f} MMAC per image "
              f"(by hand {info['macs_by_hand'] / 1e6:.3f}; convolutions only)")
    if not info["counts_agree"]:
        print("ERROR: hand counts and the torch model disagree", file=sys.stderr)
        sys.exit(1)
    if args.bench:
        bench(args, info)
        if not args.json:
            print(f"torch {info['torch']}, {args.threads} threads, batch {args.batch}: "
                  f"training step {info['train_images_per_s']:.1f} images/s ({info['train_step_s'] * 1e3:.0f} ms/step), "
                  f"forward {info['forward_images_per_s']:.1f} images/s ({info['forward_gmac_per_s']:.1f} GMAC/s)")
    if args.train:
        train(args, info)
    if args.json:
        print(json.dumps(info))


if __name__ == "__main__":
    main()
