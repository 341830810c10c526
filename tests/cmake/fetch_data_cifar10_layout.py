#!/usr/bin/env python3
"""scripts/fetch-data lays CIFAR-10 out as the examples read it.

    fetch_data_cifar10_layout.py SCRIPT WORKDIR

Builds a cifar10/ folder that fetch-data takes for an already verified
download (its stamp and the six batches at their official sizes) from
synthetic records whose classes are unevenly spread over the batches, runs
`fetch-data WORKDIR cifar10`, and checks what it wrote: test_batch.bin.gz is
test_batch.bin gzipped, and train_subset_10000.bin.gz holds the first 1,000
training records of each class in batch order, record i of class i % 10.
A second run keeps both files (no rewrite), and no .tmp file is left.
"""
import gzip
import os
import shutil
import subprocess
import sys

REC, N = 3073, 10000
SHA = "sha256:c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"


def record(index, label):
    body = index.to_bytes(4, "little") * (3072 // 4)  # the record's global index, repeated
    return bytes([label]) + body


def main():
    script, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    d = os.path.join(work, "cifar10")
    os.makedirs(d)
    by_class = [[] for _ in range(10)]
    for b in range(1, 6):
        recs = []
        for i in range(N):
            g = (b - 1) * N + i
            # batch 1 has no class 9: the subset must reach into later batches for it
            label = i % 9 if b == 1 else (g * 7) % 10
            recs.append(record(g, label))
            by_class[label].append(g)
        with open(os.path.join(d, f"data_batch_{b}.bin"), "wb") as f:
            f.write(b"".join(recs))
    test = b"".join(record(10**6 + i, i % 10) for i in range(N))
    with open(os.path.join(d, "test_batch.bin"), "wb") as f:
        f.write(test)
    with open(os.path.join(d, "batches.meta.txt"), "w") as f:
        f.write("\n".join(f"class{c}" for c in range(10)) + "\n")
    with open(os.path.join(d, ".cifar-10-binary.tar.gz.verified"), "w") as f:
        f.write(SHA + "\n")

    def fetch():
        r = subprocess.run(["bash", script, work, "cifar10"], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"fetch-data failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r.stdout

    out = fetch()
    assert "train_subset_10000.bin.gz" in out, out
    with gzip.open(os.path.join(d, "test_batch.bin.gz")) as f:
        assert f.read() == test, "test_batch.bin.gz is not test_batch.bin"
    with gzip.open(os.path.join(d, "train_subset_10000.bin.gz")) as f:
        sub = f.read()
    assert len(sub) == N * REC, len(sub)
    for k in range(1000):
        for c in range(10):
            r = sub[(k * 10 + c) * REC:(k * 10 + c + 1) * REC]
            g = by_class[c][k]
            assert r == record(g, c), f"subset record {k * 10 + c}: expected training record {g} (class {c})"
    assert max(by_class[9][:1000]) >= N, "the synthetic batches must put class 9 after batch 1"
    stamps = {n: os.stat(os.path.join(d, n)).st_mtime_ns for n in ("test_batch.bin.gz", "train_subset_10000.bin.gz")}
    out = fetch()
    assert "wrote" not in out, out
    for n, t in stamps.items():
        assert os.stat(os.path.join(d, n)).st_mtime_ns == t, f"{n} was rewritten"
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")], os.listdir(d)
    shutil.rmtree(work)
    print("fetch-data CIFAR-10 layout: ok")


if __name__ == "__main__":
    main()
