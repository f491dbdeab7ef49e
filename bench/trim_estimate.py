#!/usr/bin/python3
"""Tokens a step computes under --trim-padding / --micro-batch, predicted from a data file's row lengths.

  python3 bench/trim_estimate.py data/tasks/fortune-topic/train.safetensors [--batch 32] [--draws 600] [--seed 0]

For random batches (rows with replacement, as --sample-rows), prints the tokens per step of one untrimmed pass,
of one pass cut after the batch's longest row, and of passes of 8/4/2/1 rows grouped by length (each cut after
its own longest row), with the ratio to the untrimmed pass. A row's length is its last scored position + 1.
Stdlib only (safetensors header + int32 labels).
"""
import argparse
import json
import random
import struct


def row_lengths(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        base = 8 + n
        lab = head["labels"]
        assert lab["dtype"] == "I32", "labels must be int32"
        rows, T = lab["shape"]
        f.seek(base + lab["data_offsets"][0])
        data = struct.unpack("<%di" % (rows * T), f.read(4 * rows * T))
    lens = []
    for r in range(rows):
        row = data[r * T:(r + 1) * T]
        last = max((t for t in range(1, T) if row[t] != -100), default=-1)
        lens.append(last + 1)
    return lens, T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--draws", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    lens, T = row_lengths(a.data)
    rng = random.Random(a.seed)
    sizes = [a.batch, 8, 4, 2, 1]
    tot = {s: 0 for s in sizes}
    for _ in range(a.draws):
        b = sorted((rng.choice(lens) for _ in range(a.batch)), reverse=True)
        for s in sizes:
            tot[s] += sum(max(b[i:i + s]) * len(b[i:i + s]) for i in range(0, a.batch, s))
    full = a.batch * T
    print("%s: %d rows of %d tokens, mean length %.1f; batch %d, %d random batches"
          % (a.data, len(lens), T, sum(lens) / len(lens), a.batch, a.draws))
    print("  untrimmed: %d tokens per step" % full)
    for s in sizes:
        label = "one pass cut at the longest row" if s == a.batch else "passes of %d rows" % s
        t = tot[s] / a.draws
        print("  %-32s %7.0f tokens per step (%.2fx fewer)" % (label + ":", t, full / t))


if __name__ == "__main__":
    main()
