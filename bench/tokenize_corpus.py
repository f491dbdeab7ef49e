#!/usr/bin/env python3
"""Write the throughput corpus of bench/tokenize_throughput.sh as JSON lines
{"text": ...}: every row of the shipped tasks' raw JSONL (prompt+completion)
and the parity corpus (tests/data/tokenizer/corpus.jsonl) ten times.
Deterministic: same sources, same order.

usage: tokenize_corpus.py SHARED_DIR PARITY_CORPUS > bench.jsonl
"""
import gzip
import json
import sys

shared, parity = sys.argv[1], sys.argv[2]
out = sys.stdout
for name in ("fortune-topic", "supersense"):
    with gzip.open(f"{shared}/tasks/raw/{name}.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out.write(json.dumps({"text": r["prompt"] + r["completion"]}, ensure_ascii=False) + "\n")
rows = open(parity, encoding="utf-8").read().split("\n")[:-1]
for _ in range(10):
    for line in rows:
        out.write(line + "\n")
