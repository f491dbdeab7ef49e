#!/usr/bin/env python3
"""Reference ids for the tokenizer parity tests, made with Hugging Face
`tokenizers` (the Python binding of the Rust crate) from the tokenizer.json
files themselves.

For every row {"text": T} of CORPUS and every NAME=tokenizer.json pair, one
line of OUTDIR/refs-NAME.jsonl, in corpus order:
  {"ids": encode(T, add_special_tokens=True).ids,
   "ids_plain": encode(T, add_special_tokens=False).ids,
   "decoded": decode(ids, skip_special_tokens=False),
   "decoded_plain": decode(ids_plain, skip_special_tokens=False)}
With --bench FILE.jsonl it also times encode_batch on one thread (the rows of
FILE, field text) and prints rows/s, bytes/s and tokens/s per tokenizer.

usage: make_refs.py CORPUS OUTDIR NAME=PATH... [--bench FILE]
"""
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    args = sys.argv[1:]
    bench = None
    if "--bench" in args:
        i = args.index("--bench")
        bench = args[i + 1]
        del args[i:i + 2]
    corpus, outdir, pairs = args[0], args[1], args[2:]
    rows = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
    print(f"tokenizers {tokenizers.__version__}; {len(rows)} rows from {corpus}")
    os.makedirs(outdir, exist_ok=True)
    for pair in pairs:
        name, path = pair.split("=", 1)
        tok = Tokenizer.from_file(path)
        with open(os.path.join(outdir, f"refs-{name}.jsonl"), "w", encoding="utf-8") as f:
            for t in rows:
                try:
                    ids = tok.encode(t, add_special_tokens=True).ids
                    plain = tok.encode(t, add_special_tokens=False).ids
                    ref = {"ids": ids, "ids_plain": plain,
                           "decoded": tok.decode(ids, skip_special_tokens=False),
                           "decoded_plain": tok.decode(plain, skip_special_tokens=False)}
                except BaseException as e:  # a Rust panic: recorded, so the C test fails on it
                    ref = {"panic": str(e)}
                f.write(json.dumps(ref, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} rows written")
    if bench:
        texts = [json.loads(l)["text"] for l in open(bench, encoding="utf-8")]
        nbytes = sum(len(t.encode("utf-8")) for t in texts)
        for pair in pairs:
            name, path = pair.split("=", 1)
            tok = Tokenizer.from_file(path)
            best = first = None
            for _ in range(3):
                t0 = time.perf_counter()
                enc = tok.encode_batch(texts, add_special_tokens=True)
                dt = time.perf_counter() - t0
                first = dt if first is None else first
                best = dt if best is None else min(best, dt)
            ntok = sum(len(e.ids) for e in enc)
            print(f"bench {name}: {len(texts)} rows, {nbytes} bytes, {ntok} tokens, "
                  f"first pass {first:.3f} s, best of 3 {best:.3f} s: {nbytes / best / 1e6:.2f} MB/s, "
                  f"{ntok / best / 1e6:.3f} Mtok/s (encode_batch, RAYON_NUM_THREADS=1)")


if __name__ == "__main__":
    main()
