#!/usr/bin/env python3
"""scripts/budget-curve redraws its table and plot from finished points.

    budget_curve_table.py SCRIPT WORKDIR

Writes two point records as the script leaves them (one scored on the test
sets only, one on the validation split only, batch 64),
runs `budget-curve --plot-only --val`, and checks the Markdown and TSV tables
(a column per set, a dash where a point was not scored, minutes read back
from steps, batch and --rate) and the SVG (a panel per validation set when
not every point has test figures). Then the flag checks: --no-test without
--val and a cosine decay without --separate are refused.
"""
import json
import os
import shutil
import subprocess
import sys

TEST = {"mnist": 0.981, "cifar10": 0.972, "rot90": 0.991, "rot180": 0.995, "rot270": 0.997, "patch_shuffle": 0.962}
VAL = {"cifar10_train": 0.979, "rot90": 0.993, "rot180": 0.998, "rot270": 0.996, "patch_shuffle": 0.968}


def run(script, *args, ok=True):
    r = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if ok and r.returncode != 0:
        sys.exit(f"budget-curve {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def main():
    script, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    points, out = os.path.join(work, "points"), os.path.join(work, "out")
    os.makedirs(os.path.join(points, "w32"))
    # --minutes 5,10 at --rate 836: steps round(5 * 60 * 836 / 64) = 3919 and 7838 of batch 64.
    recs = [{"width": 32, "budget": 3919, "steps": 3919, "batch": 64, "train_seconds": 600.0,
             "images_per_second": 418.0, "final_loss": 330.25, "auroc": TEST},
            {"width": 32, "budget": 7838, "steps": 7838, "batch": 64, "train_seconds": 1200.0,
             "images_per_second": 418.0, "final_loss": 325.5, "validation_auroc": VAL}]
    for r in recs:
        with open(os.path.join(points, "w32", f"steps{r['budget']}.json"), "w") as f:
            json.dump(r, f)
    run(script, "--widths", "32", "--minutes", "5,10", "--rate", "836", "--batch", "64", "--val",
        "--work", points, "--out", out, "--plot-only")

    md = open(os.path.join(out, "budget-curve.md")).read().splitlines()
    head = [c.strip() for c in md[0].strip("|").split("|")]
    assert head[:6] == ["width", "minutes at 836 img/s", "steps", "train minutes here", "img/s here", "final loss"], head
    assert head[6:] == ["MNIST", "CIFAR-10 (gray)", "rot90", "rot180", "rot270", "patch shuffle 14x7",
                        "val CIFAR-10 train (gray)", "val rot90", "val rot180", "val rot270", "val patch shuffle"], head
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md[2:]]
    assert len(rows) == 2, md
    assert rows[0][:6] == ["32", "5.0", "3919", "10.0", "418", "330.2"], rows[0]
    assert rows[0][6:] == ["0.981", "0.972", "0.991", "0.995", "0.997", "0.962"] + ["—"] * 5, rows[0]
    assert rows[1][1] == "10.0" and rows[1][6:12] == ["—"] * 6, rows[1]
    assert rows[1][12:] == ["0.979", "0.993", "0.998", "0.996", "0.968"], rows[1]
    tsv = open(os.path.join(out, "budget-curve.tsv")).read().splitlines()
    assert [line.split("\t") for line in tsv[1:]] == rows, tsv

    svg = open(os.path.join(out, "budget-curve.svg")).read()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>"), svg[:80]
    assert "SmallUNet, Rot4" in svg and "val patch shuffle" in svg and ">MNIST<" not in svg, svg[:400]
    assert svg.count("<polyline") == 5, svg.count("<polyline")  # one line per panel, one width
    assert svg.count("<circle") == 5, svg.count("<circle")  # only the point with validation figures

    r = run(script, "--no-test", "--dry-run", ok=False)
    assert r.returncode != 0 and "--no-test scores nothing without --val" in r.stderr, r.stderr
    r = run(script, "--train-args", "--decay cosine", "--dry-run", ok=False)
    assert r.returncode != 0 and "--separate" in r.stderr, r.stderr
    shutil.rmtree(work)
    print("budget-curve table and plot: ok")


if __name__ == "__main__":
    main()
