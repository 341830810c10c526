"""Writes named arrays in the plain-text format read by tests/nn/refdata.hpp."""
import numpy as np


def write_refdata(path, arrays, comment=""):
    with open(path, "w") as f:
        for line in comment.strip().splitlines():
            f.write("# " + line + "\n")
        for name, a in arrays.items():
            a = np.asarray(a, dtype=np.float64)
            f.write(f"{name} {a.ndim} " + " ".join(str(d) for d in a.shape) + "\n")
            flat = a.reshape(-1)
            for i in range(0, flat.size, 6):
                f.write(" ".join(repr(float(v)) for v in flat[i:i + 6]) + "\n")
