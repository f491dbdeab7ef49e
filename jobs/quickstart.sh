#!/usr/bin/env bash
# The main job on the built-in default: installs what is missing, builds, and
# fine-tunes the shipped pretrained tiny-gpt2 backbone with LoRA on the
# supersense task (WordNet noun classes) on 2 MPI ranks, then reports the
# task accuracy before and after, and shows what the model answers to three
# test prompts before and after (deltatune generate, greedy). The data is text: the task's raw JSON
# lines (data/tasks/raw/supersense.jsonl.gz, rows {"prompt", "completion",
# "split"}), tokenized by deltatune with the model's tokenizer.json once
# into the token cache (OUT/token-cache), no Python step. --max-rows 20000
# keeps the rows of data/tasks/supersense/train.safetensors, so DATA=tokenized
# (the shipped tokenized files) gives the same accuracy (docs/usage.md).
#
# usage: bash jobs/quickstart.sh   (env: STEPS=200 RANKS=2 OUT=out/quickstart DATA=jsonl|tokenized)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/env.sh

BUILD=${DT_BUILD_DIR:-build}
echo "== building deltatune ($BUILD)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target deltatune >/dev/null

STEPS=${STEPS:-200}
RANKS=${RANKS:-2}
OUT=${OUT:-out/quickstart}
MODEL=data/models/tiny-gpt2
EVAL_ROWS=${EVAL_ROWS:-500}
mkdir -p "$OUT"
case ${DATA:-jsonl} in
  jsonl) # the raw rows, unpacked once; deltatune tokenizes them (and caches the result)
    RAW=$OUT/supersense.jsonl
    [[ -s $RAW ]] || gunzip -c data/tasks/raw/supersense.jsonl.gz > "$RAW"
    TEXT=(--seq-len 48 --data-cache "$OUT/token-cache")
    TRAIN=("$RAW" --data-split train --max-rows 20000 "${TEXT[@]}")
    TEST=("$RAW" --data-split test "${TEXT[@]}") ;;
  tokenized)
    TRAIN=(data/tasks/supersense/train.safetensors)
    TEST=(data/tasks/supersense/test.safetensors) ;;
  *) echo "DATA must be jsonl or tokenized, not '$DATA'" >&2; exit 2 ;;
esac
run() { mpirun -np "$RANKS" --oversubscribe -x OPENBLAS_NUM_THREADS=1 "$BUILD/deltatune" "$@"; }

echo "== zero-shot accuracy of the backbone ($EVAL_ROWS test rows)"
run eval --model "$MODEL" --data "${TEST[@]}" --rows "$EVAL_ROWS" --batch-size 50 --method none | tee "$OUT/eval-before.txt"

echo "== LoRA fine-tuning, $STEPS steps of 32 rows on $RANKS ranks"
run train --model "$MODEL" --data "${TRAIN[@]}" --method lora --lora-rank 8 --lora-alpha 16 \
  --lr 2e-3 --batch-size 32 --steps "$STEPS" --sample-rows 1 --log-every 20 \
  --metrics "$OUT/metrics.jsonl" --out "$OUT" | tee "$OUT/train.txt"

echo "== accuracy after fine-tuning ($EVAL_ROWS test rows)"
run eval --model "$MODEL" --data "${TEST[@]}" --rows "$EVAL_ROWS" --batch-size 50 --method lora \
  --init-from "$OUT/deltas.safetensors" | tee "$OUT/eval-after.txt"

echo "== three test prompts, answered before and after fine-tuning (deltatune generate)"
SAMPLES=$OUT/test-prompts.jsonl
gunzip -c data/tasks/raw/supersense.jsonl.gz | awk '/"split": "test"/ && n < 3 {print; n++}' > "$SAMPLES"
run generate --model "$MODEL" --method none --input "$SAMPLES" --output "$OUT/answers-before.jsonl" \
  --overwrite --max-new-tokens 6
run generate --model "$MODEL" --method lora --lora-rank 8 --lora-alpha 16 \
  --init-from "$OUT/deltas.safetensors" --input "$SAMPLES" --output "$OUT/answers-after.jsonl" \
  --overwrite --max-new-tokens 6
python3 - "$SAMPLES" "$OUT/answers-before.jsonl" "$OUT/answers-after.jsonl" <<'PY' | tee "$OUT/answers.txt"
import json, sys
rows = [[json.loads(l) for l in open(p)] for p in sys.argv[1:4]]
for want, before, after in zip(*rows):
    print(want["prompt"].splitlines()[0])
    print(f"  expected: {want['completion']!r}")
    print(f"  before:   {before['completion']!r}")
    print(f"  after:    {after['completion']!r}")
PY

acc() { awk '/^exact_match/ {print $2}' "$1"; }
echo
echo "quickstart summary"
grep '^summary:' "$OUT/train.txt" | sed 's/^summary: /  /'
echo "  exact-match accuracy on $EVAL_ROWS test rows: $(acc "$OUT/eval-before.txt") -> $(acc "$OUT/eval-after.txt")"
echo "  answers to three test prompts before and after: $OUT/answers.txt"
echo "  metrics: $OUT/metrics.jsonl"
