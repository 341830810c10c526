#!/usr/bin/python3
"""The convolutions of bench_layers.cpp in PyTorch (CPU, 2 threads), side by side.

    /usr/bin/python3 benchmarks/torch_layers.py [--bench build/benchmarks/bench_layers] [--shapes a,b]

Times forward (no grad) and backward (data + filter, i.e. the grad of a
conv2d w.r.t. its input and weight) per shape. With --bench it also runs
scoreood's bench_layers on the same shapes in the same run and prints
the speed-up (torch time / scoreood time; > 1 means scoreood is faster).
The machine is shared: compare ratios from one run, not absolute times.
On a loaded machine use --threads 1 --cpu: both sides are then timed in
CPU time of one thread, which other processes disturb much less.
"""
import os
import argparse
import json
import subprocess
import time

import torch
import torch.nn.functional as F

# name, batch, cin, cout, h, w, k, stride, dilation -- keep in sync with bench_layers.cpp
SHAPES = [
    ("unet_1to32_k3_28", 128, 1, 32, 28, 28, 3, 1, 1),
    ("unet_32to32_k3_28", 128, 32, 32, 28, 28, 3, 1, 1),
    ("unet_32to64_k3s2_28", 128, 32, 64, 28, 28, 3, 2, 1),
    ("unet_64to64_k3_14", 128, 64, 64, 14, 14, 3, 1, 1),
    ("unet_64to64_k3_7", 128, 64, 64, 7, 7, 3, 1, 1),
    ("unet_96to32_k1_28", 128, 96, 32, 28, 28, 1, 1, 1),
    ("unet_32to64_k1s2_28", 128, 32, 64, 28, 28, 1, 2, 1),
    ("ncsn_64to64_k3_28", 128, 64, 64, 28, 28, 3, 1, 1),
    ("ncsn_128to128_k3d2_14", 128, 128, 128, 14, 14, 3, 1, 2),
    ("ncsn_128to128_k3d4_14", 128, 128, 128, 14, 14, 3, 1, 4),
]


CLOCK = time.perf_counter


def best_time(fn, min_time=0.5, reps=3):
    fn()  # warm-up (oneDNN primitive creation)
    best = float("inf")
    for _ in range(reps):
        n, t0 = 0, CLOCK()
        while True:
            fn()
            n += 1
            dt = CLOCK() - t0
            if dt >= min_time / reps:
                break
        best = min(best, dt / n)
    return best


def torch_times(shape):
    _, n, cin, cout, h, w, k, s, d = shape
    pad = d * (k - 1) // 2
    x = torch.randn(n, cin, h, w)
    conv = torch.nn.Conv2d(cin, cout, k, stride=s, padding=pad, dilation=d)
    with torch.no_grad():
        fwd = best_time(lambda: conv(x))
    xg = x.clone().requires_grad_()
    y = conv(xg)
    dy = torch.randn_like(y)

    def backward():
        # Recomputes the graph's backward only: grad w.r.t. input and weight (and bias).
        torch.autograd.grad(y, [xg, conv.weight, conv.bias], dy, retain_graph=True)

    bwd = best_time(backward)
    macs = n * cout * y.shape[2] * y.shape[3] * cin * k * k
    return fwd, bwd, macs


def scoreood_times(bench, names, threads, cpu):
    filt = "BM_Conv(Forward|Backward)/(" + "|".join(names) + ")/"
    out = subprocess.run([bench, f"--benchmark_filter={filt}", "--benchmark_format=json",
                          "--benchmark_min_time=0.5", "--benchmark_repetitions=3",
                          "--benchmark_report_aggregates_only=false"],
                         check=True, capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS=str(threads))).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        kind, name = b["name"].split("/")[0:2]
        t = b["cpu_time" if cpu else "real_time"] * {"ms": 1e-3, "us": 1e-6, "ns": 1e-9, "s": 1.0}[b["time_unit"]]
        key = (name, kind)
        res[key] = min(res.get(key, float("inf")), t)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", help="path to scoreood's bench_layers; runs it and prints ratios")
    ap.add_argument("--shapes", help="comma-separated subset of shape names")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpu", action="store_true", help="time in thread CPU time (needs --threads 1)")
    args = ap.parse_args()
    if args.cpu:
        if args.threads != 1:
            ap.error("--cpu needs --threads 1")
        global CLOCK
        CLOCK = time.thread_time
    torch.set_num_threads(args.threads)
    shapes = [s for s in SHAPES if not args.shapes or s[0] in args.shapes.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn={torch.backends.mkldnn.is_available()}"
          f", {'thread CPU' if args.cpu else 'wall'} time")
    head = f"{'shape':24} {'torch fwd ms':>12} {'GFLOP/s':>8} {'torch bwd ms':>12} {'GFLOP/s':>8}"
    if args.bench:
        head += f" {'ours fwd ms':>11} {'speedup':>7} {'ours bwd ms':>11} {'speedup':>7}"
    print(head)
    for s in shapes:
        # Interleaved per shape, so both sides see the same machine load.
        ours = scoreood_times(args.bench, [s[0]], args.threads, args.cpu) if args.bench else {}
        fwd, bwd, macs = torch_times(s)
        line = f"{s[0]:24} {fwd * 1e3:12.2f} {2 * macs / fwd * 1e-9:8.1f} {bwd * 1e3:12.2f} {4 * macs / bwd * 1e-9:8.1f}"
        if ours:
            of, ob = ours[(s[0], "BM_ConvForward")], ours[(s[0], "BM_ConvBackward")]
            line += f" {of * 1e3:11.2f} {fwd / of:7.2f} {ob * 1e3:11.2f} {bwd / ob:7.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
