#!/usr/bin/env bash
# Generation throughput of deltatune generate (issue 23): PROMPTS prompts of
# PROMPT_LEN random token ids, NEW new tokens each (EOS off, so every prompt
# runs to NEW), greedy, BATCH prompts at a time per data-parallel replica,
# one BLAS thread per rank. One line per run:
#   ranks tp model batch prompts prompt_len new_tokens seconds tokens/s
# (seconds: the generation itself, after loading; tokens/s: new tokens of
# every replica per second). Run it beside transformers' generate() on the
# same shape for docs/performance.md.
#
# usage: bash bench/generate.sh [BUILD_DIR] RANKS:TP [RANKS:TP ...]
#   env: MODEL (default synthetic:gpt2-small; e.g. a 1.3B shape
#        synthetic:gpt2:layers=24,d=2048,heads=16,ffn=8192,vocab=50257,ctx=2048
#        or synthetic:llama2-13b, or a HF folder), PROMPTS=16, PROMPT_LEN=64,
#        NEW=64, BATCH=8, METHOD="--method lora" (options of the method),
#        WEIGHTS=fp32|bf16, MPIRUN="mpirun --oversubscribe", KEEP_PROMPTS=FILE (a copy of
#        the prompts, for a peer run on the same ones)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
BUILD=build
if [[ $# -gt 0 && $1 != *:* ]]; then BUILD=$1; shift; fi
(( $# > 0 )) || set -- 1:1
MODEL=${MODEL:-synthetic:gpt2-small}
PROMPTS=${PROMPTS:-16} PROMPT_LEN=${PROMPT_LEN:-64} NEW=${NEW:-64} BATCH=${BATCH:-8}
METHOD=${METHOD:---method lora}
WEIGHTS=${WEIGHTS:-fp32}
MPIRUN=${MPIRUN:-mpirun --oversubscribe}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# random prompt ids below 1000 (inside every vocabulary), the same every run
awk -v n="$PROMPTS" -v len="$PROMPT_LEN" 'BEGIN { srand(1); for (i = 0; i < n; i++) {
  s = "{\"prompt_ids\": ["; for (j = 0; j < len; j++) s = s (j ? ", " : "") int(rand() * 1000);
  print s "]}" } }' > "$T/prompts.jsonl"
[[ -n ${KEEP_PROMPTS:-} ]] && cp "$T/prompts.jsonl" "$KEEP_PROMPTS"
echo "# ranks tp model batch prompts prompt_len new_tokens seconds tokens/s"
for layout in "$@"; do
  ranks=${layout%%:*} tp=${layout##*:}
  # shellcheck disable=SC2086
  line=$($MPIRUN -np "$ranks" -x OPENBLAS_NUM_THREADS=1 "$BUILD/deltatune" generate --model "$MODEL" \
           $METHOD --weights-dtype "$WEIGHTS" --tp "$tp" --input "$T/prompts.jsonl" \
           --output "$T/out.jsonl" --overwrite --max-new-tokens "$NEW" --batch-size "$BATCH" \
           --eos none 2>&1 | grep '^generate:')
  tok=$(sed -E 's/.* ([0-9]+) new tokens.*/\1/' <<<"$line")
  sec=$(sed -E 's/.* in ([0-9.]+)s .*/\1/' <<<"$line")
  tps=$(sed -E 's/.*\(([0-9.]+) tokens\/s.*/\1/' <<<"$line")
  echo "$ranks $tp $MODEL $BATCH $PROMPTS $PROMPT_LEN $tok $sec $tps"
done
