#!/usr/bin/env python3
"""Compares a scoreood training loss log with the PyTorch twin's.

scoreood's CSV (`scoreood train --log`) holds the mean loss of each logging
window (step,loss,seconds); the twin's (`torch_small_unet.py --train --log`)
one row per step. Both are reduced to 10-step window means and compared.

    python3 benchmarks/compare_loss.py benchmarks/results/fmnist300_scoreood.csv \
        benchmarks/results/fmnist300_torch.csv
Exits 1 when the mean loss of the last 50 steps differs by more than --tolerance.
"""
import argparse
import csv
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scoreood_csv")
    ap.add_argument("torch_csv")
    ap.add_argument("--tolerance", type=float, default=0.10, help="relative, on the last 50 steps")
    a = ap.parse_args()
    ours = {int(r["step"]): float(r["loss"]) for r in csv.DictReader(open(a.scoreood_csv))}
    theirs = [float(r["loss"]) for r in csv.DictReader(open(a.torch_csv))]
    steps = sorted(ours)
    if not steps or steps[-1] != len(theirs):
        sys.exit(f"the logs cover different runs ({steps[-1] if steps else 0} vs {len(theirs)} steps)")
    if any(b - a_ != 10 for a_, b in zip([0] + steps, steps)):
        sys.exit("scoreood's log must have one row every 10 steps (--log-every 10)")
    print(f"{'step':>6} {'scoreood':>10} {'pytorch':>10}")
    for s in steps:
        if s % 50 == 0 or s == 10:
            print(f"{s:6d} {ours[s]:10.2f} {sum(theirs[s - 10:s]) / 10:10.2f}")
    last = [s for s in steps if s > steps[-1] - 50]
    mine = sum(ours[s] for s in last) / len(last)
    ref = sum(theirs[-50:]) / 50
    rel = abs(mine - ref) / ref
    print(f"last 50 steps: scoreood {mine:.2f}, pytorch {ref:.2f}, relative difference {rel:.3f}")
    sys.exit(0 if rel <= a.tolerance else 1)


if __name__ == "__main__":
    main()
