#!/usr/bin/env python3
"""PyTorch speed of NCSN's CondRefineNetDilated, the twin of scoreood's NcsnRefineNet.

Run with the Debian python (torch 1.13 CPU):
    /usr/bin/python3 benchmarks/torch_ncsn.py --bench [--ngf 64] [--batch 128] [--json]

The network is the twin that generates the C++ network's test references
(tests/reference/make_ncsn_refs.py: module names, registration order and
forward checked against ermongroup/ncsn's models/cond_refinenet_dilated.py).
A training step is the same as benchmarks/torch_small_unet.py's (denoising
score matching, Eq. 1, one uniform level of 10 per sample, Adam lr 1e-3), a
forward pass the network alone at one level, as bench_train's
train_step/ncsn and features/ncsn time the C++ side. MACs count the
convolutions (forward hooks), as the C++ net's macs_per_image() does.
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "reference"))
sys.path.insert(0, HERE)

from make_ncsn_refs import CondRefineNetDilated  # noqa: E402
from torch_small_unet import dsm_loss, hooked_macs, sigmas  # noqa: E402


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = CondRefineNetDilated(args.ngf, args.levels, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sig = sigmas(args.levels)
    x = torch.rand(args.batch, 1, 28, 28, generator=gen)
    idx = torch.randint(0, args.levels, (args.batch,), generator=gen)
    macs = hooked_macs(model, x[:1], idx[:1])  # per image

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = dsm_loss(model, x, sig, gen)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        train_step()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        train_step()
    t_train = (time.perf_counter() - t0) / args.iters
    with torch.no_grad():
        for _ in range(args.warmup):
            model(x, idx)
        t0 = time.perf_counter()
        for _ in range(args.iters):
            model(x, idx)
        t_fwd = (time.perf_counter() - t0) / args.iters
    return {"torch": torch.__version__, "ngf": args.ngf, "levels": args.levels, "threads": args.threads,
            "batch": args.batch, "macs": macs, "params": sum(p.numel() for p in model.parameters()),
            "train_step_s": t_train, "train_images_per_s": args.batch / t_train,
            "forward_s": t_fwd, "forward_images_per_s": args.batch / t_fwd}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--levels", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench", action="store_true", help="time a training step and a forward pass")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = ap.parse_args()
    if not args.bench:
        ap.error("nothing to do: pass --bench")
    info = bench(args)
    if args.json:
        print(json.dumps(info))
    else:
        print(f"CondRefineNetDilated ngf {args.ngf}: {info['params']:,} parameters, {info['macs'] / 1e9:.3f} GMAC "
              f"per image; torch {info['torch']}, {args.threads} threads, batch {args.batch}: training step "
              f"{info['train_images_per_s']:.1f} images/s, forward {info['forward_images_per_s']:.1f} images/s")


if __name__ == "__main__":
    main()
