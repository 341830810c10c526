#!/usr/bin/python3
"""Reference values for tests/dataio/test_dataio_transforms.cpp.

Run from the repository root with Debian's Python (torch 1.13 CPU, numpy):
    /usr/bin/python3 tests/data/gen_dataio_reference.py
Writes tests/data/dataio_resize_bilinear.txt: for each case a header line
`case N C H W h w`, then the N*C*H*W input values and the N*C*h*w values of
torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear",
align_corners=False, antialias=False), all float32 printed with 9 digits.
If ../shared/data/cifar10/test_batch.bin.gz exists it also writes
tests/data/dataio_cifar_gray28.txt: the first two CIFAR-10 test images made
gray (BT.601: 0.299 R + 0.587 G + 0.114 B) and resized to 28x28 the same way.
"""
import gzip
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def fmt(a):
    return " ".join("%.9g" % v for v in np.asarray(a, dtype=np.float32).ravel())


def resize(x, h, w):
    return F.interpolate(torch.from_numpy(x), size=(h, w), mode="bilinear",
                         align_corners=False, antialias=False).numpy()


def main():
    rng = np.random.default_rng(20240607)
    cases = [
        ((1, 1, 32, 32), (28, 28)),  # CIFAR -> Fashion-MNIST size (downscale)
        ((2, 3, 5, 7), (3, 4)),      # batch, channels, uneven downscale
        ((1, 1, 3, 3), (5, 5)),      # upscale (clamped borders)
        ((1, 2, 4, 6), (7, 3)),      # up in H, down in W
        ((1, 1, 1, 1), (2, 3)),      # a single pixel
    ]
    with open(os.path.join(HERE, "dataio_resize_bilinear.txt"), "w") as f:
        for shape, (h, w) in cases:
            x = rng.random(shape, dtype=np.float32)
            y = resize(x, h, w)
            f.write("case %d %d %d %d %d %d\n" % (*shape, h, w))
            f.write(fmt(x) + "\n")
            f.write(fmt(y) + "\n")

    cifar = os.path.join(HERE, "..", "..", "..", "shared", "data", "cifar10", "test_batch.bin.gz")
    if os.path.exists(cifar):
        with gzip.open(cifar, "rb") as g:
            raw = np.frombuffer(g.read(2 * 3073), dtype=np.uint8).reshape(2, 3073)
        img = raw[:, 1:].reshape(2, 3, 32, 32).astype(np.float32) / np.float32(255)
        gray = (np.float32(0.299) * img[:, 0] + np.float32(0.587) * img[:, 1]
                + np.float32(0.114) * img[:, 2])[:, None]
        y = resize(gray.astype(np.float32), 28, 28)
        with open(os.path.join(HERE, "dataio_cifar_gray28.txt"), "w") as f:
            f.write("labels %d %d\n" % (raw[0, 0], raw[1, 0]))
            f.write(fmt(y) + "\n")


if __name__ == "__main__":
    main()
