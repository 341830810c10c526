#!/usr/bin/env python3
"""Chooses the RotNCSN normality vector and density on a validation split.

Reads what examples/feature_selection wrote (OUTDIR/<set>.msma.npy and
<set>.elem<k>.npy), fits each candidate on the training vectors with
scikit-learn (GMM with full covariances chosen by BIC, standardised inputs,
as scoreood's Gmm; or k-NN distance) and prints the AUROC per OOD set.
--fit-sizes fits on the first N training vectors for each N given (default:
all that were dumped); --kinds limits the feature kinds. The validation
split's foreign set (cifar10_train) is used when it was dumped. The test sets
(--sets test) are for reporting only, never for choosing.

    /usr/bin/python3 scripts/select_features.py OUTDIR [--draws K] [--sets val|test]
        [--fit-sizes 2000,10000] [--kinds elem,msma+elem]
"""
import argparse
import os
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

L, G = 10, 4
p = argparse.ArgumentParser()
p.add_argument("outdir")
p.add_argument("--draws", type=int, default=1)
p.add_argument("--sets", choices=["val", "test"], default="val")
p.add_argument("--fit-sizes", default="", help="fit on the first N training vectors, for each N (comma-separated)")
p.add_argument("--kinds", default="elem,msma+elem,rot,rec+rot,msma+rot", help="feature kinds (comma-separated)")
a = p.parse_args()

ood = (["mnist", "cifar"] if a.sets == "test" else []) + ["rot90", "rot180", "rot270", "patch_shuffle"]
if a.sets == "val" and os.path.exists(f"{a.outdir}/val_cifar10_train.msma.npy"):
    ood.append("cifar10_train")
names = ["fit", f"{a.sets}_in"] + [f"{a.sets}_{t}" for t in ood]
data = {n: (np.load(f"{a.outdir}/{n}.msma.npy"), [np.load(f"{a.outdir}/{n}.elem{k}.npy") for k in range(a.draws)])
        for n in names}
dumped = len(data["fit"][0])
sizes = [int(n) for n in a.fit_sizes.split(",")] if a.fit_sizes else [dumped]
if any(n < 20 or n > dumped for n in sizes):
    p.error(f"--fit-sizes: each size must be in [20, {dumped}] (the training vectors dumped)")


def features(name, kind, draws, log):
    msma, elem = data[name]
    e = np.mean(elem[:draws], axis=0)  # the mean over noise draws, as NormalityOptions::draws
    parts = {"msma": msma, "elem": e, "rot": e.reshape(-1, L, G).sum(-1), "rec": e.reshape(-1, L, G)[:, :, 0]}
    x = np.concatenate([parts[k] for k in kind.split("+")], axis=1)
    return np.log(x) if log else x


def gmm_bic(x):
    sc = StandardScaler().fit(x)
    z = sc.transform(x)
    fits = [GaussianMixture(c, covariance_type="full", reg_covar=1e-6, n_init=3, random_state=0).fit(z)
            for c in [1, 2, 4, 6, 8, 10] if c * 10 <= len(z)]
    best = min(fits, key=lambda g: g.bic(z))
    return lambda y: -best.score_samples(sc.transform(y))


def knn(x, k=5):
    sc = StandardScaler().fit(x)
    nn = NearestNeighbors(n_neighbors=k).fit(sc.transform(x))
    return lambda y: nn.kneighbors(sc.transform(y))[0][:, -1]


print("features".ljust(30) + "     fit" + "".join(t[:8].rjust(9) for t in ood) + "      min")
for kind in a.kinds.split(","):
    for log in [False, True]:
        for draws in sorted({1, a.draws}):
            for dname, density in [("gmm", gmm_bic), ("knn", knn)]:
                for size in sizes:
                    score = density(features("fit", kind, draws, log)[:size])
                    s_in = score(features(names[1], kind, draws, log))
                    aucs = []
                    for n in names[2:]:
                        s_out = score(features(n, kind, draws, log))
                        aucs.append(roc_auc_score(np.r_[np.zeros(len(s_in)), np.ones(len(s_out))], np.r_[s_in, s_out]))
                    label = f"{kind} {'log' if log else 'lin'} K={draws} {dname}"
                    print(label.ljust(30) + f"{size:8d}" + "".join(f"{v:9.3f}" for v in aucs) + f"{min(aucs):9.3f}",
                          flush=True)
