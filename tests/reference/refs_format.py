"""Writer for the plain-text reference files read by tests/reference/ref_file.hpp.

Format (one record per line, '#' starts a comment line):
    case <name>
    <key> <ndim> <d1> ... <dn> <v1> <v2> ...   (row-major values, repr() precision)
    end
A scalar has ndim 0 and one value. Keys are single words.
"""
import numpy as np


class RefWriter:
    def __init__(self, path, header):
        self.f = open(path, "w")
        for line in header.strip().splitlines():
            self.f.write("# " + line + "\n")

    def case(self, name):
        self.f.write(f"case {name}\n")

    def put(self, key, value):
        a = np.asarray(value, dtype=np.float64)
        dims = " ".join(str(d) for d in a.shape)
        vals = " ".join(repr(float(v)) for v in a.ravel())
        head = f"{key} {a.ndim}" + (f" {dims}" if a.ndim else "")
        self.f.write(f"{head} {vals}\n")

    def end(self):
        self.f.write("end\n")

    def close(self):
        self.f.close()
