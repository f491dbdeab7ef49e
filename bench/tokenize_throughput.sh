#!/usr/bin/env bash
# Tokenizer throughput on one thread (docs/performance.md, "Tokenizing"):
# dt_tokenize_bench on the shipped tiny models' tokenizer and the LLaMA-2,
# LLaMA-3 and Qwen3 files (fetched by tests/data/tokenizer/fetch.sh), over a
# corpus of 89,343 rows / 9.2 MB (bench/tokenize_corpus.py: the shipped
# tasks' raw rows and the parity corpus ten times). HF tokenizers' side of
# the comparison is tests/data/tokenizer/make_refs.py --bench on the same
# corpus (Python tokenizers exists only on the accelerator machine).
# usage: bench/tokenize_throughput.sh [BUILD_DIR] [SHARED_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build} shared=${2:-../shared}
cmake --build "$build" --target dt_tokenize_bench >/dev/null
bash tests/data/tokenizer/fetch.sh "$build/tokenizers"
corpus=$(mktemp --suffix=.jsonl)
trap 'rm -f "$corpus"' EXIT
python3 bench/tokenize_corpus.py "$shared" tests/data/tokenizer/corpus.jsonl >"$corpus"
grep -m1 'model name' /proc/cpuinfo
for t in tests/data/tokenizer/tiny "$build"/tokenizers/{llama2,llama3,qwen3}; do
  "$build"/dt_tokenize_bench "$t" "$corpus" 3
done
