#!/usr/bin/env python3
"""Side-by-side speed of scoreood's networks and their PyTorch twins, in one run.

    /usr/bin/python3 benchmarks/compare_pytorch.py [path/to/bench_train] [--rounds 2] [--net ncsn]

Runs the C++ Google Benchmark program (train_step and features of SmallUNet,
width 32, batch 128) and benchmarks/torch_small_unet.py --bench --json (same
architecture, loss and optimiser, 2 threads) alternately, C++, torch, C++,
torch, ... so that noise from other processes on a shared machine hits both,
then prints images/s of each, the ratio (ours / torch; > 1 means scoreood is
faster) and GFLOP/s (2 x MACs of the convolutions; a training step counts 3x
the forward). The best round of each side is reported (the one least disturbed
by other load), and every round is listed. --net ncsn does the same for
NcsnRefineNet (ngf 64, batch 128; a step takes seconds, so bench_train times
few iterations) against benchmarks/torch_ncsn.py. Run it with the Debian python
(torch 1.13 CPU); the C++ program is found in build*/benchmarks/ when no path
is given (the most recently built one).

--isa avx512|avx2|baseline runs scoreood's kernels on that tier (SCOREOOD_ISA)
and caps PyTorch at the same instruction set (ONEDNN_MAX_CPU_ISA for oneDNN's
convolutions, ATEN_CPU_CAPABILITY for ATen's own kernels), so that the two
sides use the same vector width.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Per network: the C++ benchmarks' names, the torch script and its size flags.
NETS = {
    "small_unet": {"train": "train_step/small_unet/width:32/batch:128",
                   "features": "features/small_unet/width:32/batch:128",
                   "script": "torch_small_unet.py", "args": ["--width", "32", "--batch", "128"]},
    "ncsn": {"train": "train_step/ncsn/ngf:64/batch:128", "features": "features/ncsn/ngf:64/batch:128",
             "script": "torch_ncsn.py", "args": ["--ngf", "64", "--batch", "128"]},
}


def find_bench(path):
    if path:
        if not os.access(path, os.X_OK):
            sys.exit(f"compare_pytorch: {path}: not an executable")
        return path
    found = [p for p in glob.glob(os.path.join(ROOT, "build*", "benchmarks", "bench_train")) if os.access(p, os.X_OK)]
    if not found:
        sys.exit("compare_pytorch: no build*/benchmarks/bench_train; build the target bench_train "
                 "(-DSCOREOOD_BUILD_BENCHMARKS=ON) or pass its path")
    return max(found, key=os.path.getmtime)


# PyTorch's caps for each of scoreood's ISA tiers (oneDNN ISA names; ATen's capability).
TORCH_ISA = {"avx512": ("AVX512_CORE", "avx512"), "avx2": ("AVX2", "avx2"), "baseline": ("SSE41", "default")}


def isa_env(isa, torch_side):
    env = dict(os.environ)
    if isa:
        if torch_side:
            env["ONEDNN_MAX_CPU_ISA"], env["ATEN_CPU_CAPABILITY"] = TORCH_ISA[isa]
            env["DNNL_MAX_CPU_ISA"] = env["ONEDNN_MAX_CPU_ISA"]
        else:
            env["SCOREOOD_ISA"] = isa
    return env


def run_cpp(net, bench, min_time, threads=None, isa=None):
    train, features = NETS[net]["train"], NETS[net]["features"]
    env = isa_env(isa, torch_side=False)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [bench, "--benchmark_format=json", f"--benchmark_min_time={min_time}",
           f"--benchmark_filter=^(train_step/{net}/|features/{net}/)"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        name = b["name"].removesuffix("/real_time")
        name = name.split("/iterations:")[0]  # benchmarks with a fixed iteration count carry it in the name
        if name in (train, features):
            res[name] = {"images_per_s": b["items_per_second"], "gflops": b["GFLOPS"]}
    if set(res) != {train, features}:
        sys.exit(f"compare_pytorch: {bench} did not report {train} and {features}")
    return res


def run_torch(net, threads, iters, isa=None):
    n = NETS[net]
    cmd = [sys.executable, os.path.join(HERE, n["script"]), "--bench", "--json", *n["args"],
           "--threads", str(threads), "--iters", str(iters)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=isa_env(isa, torch_side=True)).stdout
    info = json.loads(out.strip().splitlines()[-1])
    flop_fwd = 2.0 * info["macs"] * info["batch"]
    return {n["train"]: {"images_per_s": info["train_images_per_s"],
                         "gflops": 3 * flop_fwd / info["train_step_s"] * 1e-9},
            n["features"]: {"images_per_s": info["forward_images_per_s"],
                            "gflops": flop_fwd / info["forward_s"] * 1e-9}}


def load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench", nargs="?", help="path of bench_train (default: newest build*/benchmarks/bench_train)")
    ap.add_argument("--rounds", type=int, default=2, help="C++/torch alternations (default 2)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads (the C++ side uses OpenMP's default unless --same-threads)")
    ap.add_argument("--same-threads", action="store_true",
                    help="also run the C++ side with OMP_NUM_THREADS=--threads (e.g. --threads 1 --same-threads: "
                         "a one-core comparison, less sensitive to other load on a shared machine)")
    ap.add_argument("--min-time", type=float, default=2.0, help="Google Benchmark min time per benchmark, s")
    ap.add_argument("--iters", type=int, help="timed torch iterations (default 10; 2 for --net ncsn)")
    ap.add_argument("--net", choices=sorted(NETS), default="small_unet",
                    help="the network: SmallUNet width 32 (default) or NcsnRefineNet ngf 64, batch 128")
    ap.add_argument("--json", action="store_true", help="also print all rounds as JSON")
    ap.add_argument("--isa", choices=sorted(TORCH_ISA), help="both sides on this instruction-set tier "
                    "(default: each picks the best the CPU has)")
    args = ap.parse_args()
    bench = find_bench(args.bench)
    net = args.net
    iters = args.iters or (2 if net == "ncsn" else 10)
    TRAIN, FEATURES = NETS[net]["train"], NETS[net]["features"]

    rounds = []
    for r in range(args.rounds):
        l0 = load()
        cpp = run_cpp(net, bench, args.min_time, args.threads if args.same_threads else None, args.isa)
        l1 = load()
        tor = run_torch(net, args.threads, iters, args.isa)
        rounds.append({"cpp": cpp, "torch": tor, "load_before": l0, "load_between": l1, "load_after": load()})
        print(f"round {r + 1}: load {l0:.2f}/{l1:.2f}/{rounds[-1]['load_after']:.2f}  "
              f"C++ train {cpp[TRAIN]['images_per_s']:.0f}, features {cpp[FEATURES]['images_per_s']:.0f} img/s; "
              f"torch train {tor[TRAIN]['images_per_s']:.0f}, features {tor[FEATURES]['images_per_s']:.0f} img/s",
              flush=True)

    print(f"\nbench: {os.path.relpath(bench, ROOT)}; best of {args.rounds} rounds per side; "
          f"OMP_NUM_THREADS={args.threads if args.same_threads else os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"torch threads {args.threads}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
          f"isa {args.isa or 'best of each side'}" + (f" (torch ONEDNN_MAX_CPU_ISA={TORCH_ISA[args.isa][0]} "
                                                       f"ATEN_CPU_CAPABILITY={TORCH_ISA[args.isa][1]})"
                                                       if args.isa else ""))
    if os.environ.get("OMP_WAIT_POLICY"):
        print("note: both sides inherit OMP_WAIT_POLICY; with 'passive' torch's short parallel regions run "
              "about 25 % slower (benchmarks/README.md), so quote ratios from runs without it")
    print(f"{'benchmark':<44} {'scoreood img/s':>14} {'torch img/s':>12} {'ratio':>6} "
          f"{'scoreood GFLOP/s':>17} {'torch GFLOP/s':>14}")
    for name in (TRAIN, FEATURES):
        c = max((r["cpp"][name] for r in rounds), key=lambda x: x["images_per_s"])
        t = max((r["torch"][name] for r in rounds), key=lambda x: x["images_per_s"])
        ratio = c["images_per_s"] / t["images_per_s"]
        print(f"{name:<44} {c['images_per_s']:>14.1f} {t['images_per_s']:>12.1f} {ratio:>6.2f} "
              f"{c['gflops']:>17.1f} {t['gflops']:>14.1f}")
    # Per-round ratios show how much of the spread is machine noise.
    for name in (TRAIN, FEATURES):
        rs = [r["cpp"][name]["images_per_s"] / r["torch"][name]["images_per_s"] for r in rounds]
        print(f"per-round ratio {name}: " + ", ".join(f"{x:.2f}" for x in rs))
    if args.json:
        print(json.dumps(rounds))


if __name__ == "__main__":
    main()
