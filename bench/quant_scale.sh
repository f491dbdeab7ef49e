#!/usr/bin/env bash
# Issue 27's scale check, for the 16-core machine (2026-12-05 16:51 UTC: 467 s, 391 of them drawing and quantizing the
# 69 billion synthetic weights before the load reused its staging copies; docs/performance.md).
# A LLaMA-2-70B-shaped LoRA step on an nf4 backbone (synthetic preset, --tp NP on one node): `plan`'s
# predicted peak per rank and per node printed beside the measured peak RSS of every rank (jobs/peakmem.sh)
# and the step's tokens/s. The issue's floor: the measured node peak within 10% of plan's.
#
# usage (device machine, packed stack loaded; shared/device/README.md): bash bench/quant_scale.sh BUILD_DIR
#   env: NP (16), MODEL (synthetic:llama2-70b), WDTYPE (nf4), MM (bf16: --matmul-dtype), SEQ (512), BATCH (1),
#        STEPS (2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
BIN=$BUILD/deltatune
NP=${NP:-16} MODEL=${MODEL:-synthetic:llama2-70b} WDTYPE=${WDTYPE:-nf4} MM=${MM:-bf16}
SEQ=${SEQ:-512} BATCH=${BATCH:-1} STEPS=${STEPS:-2}
[[ -x $BIN ]] || { echo "quant_scale.sh: $BIN not found" >&2; exit 2; }
export OPENBLAS_NUM_THREADS=1
common=(--model "$MODEL" --method lora --weights-dtype "$WDTYPE" --matmul-dtype "$MM" --tp "$NP"
  --batch-size "$BATCH")
echo "== plan"
"$BIN" plan "${common[@]}" --seq-len "$SEQ" --ranks-per-node "$NP" --compare-full no |
  grep -E "frozen weights|predicted peak|node:|tokens/s"
out=$(mktemp -d)
echo "== train ($NP ranks, $STEPS steps)"
mpirun --allow-run-as-root --bind-to core -np "$NP" jobs/peakmem.sh "$out/peak" "$BIN" train "${common[@]}" \
  --data "synthetic:rows=$((BATCH * (STEPS + 1))),len=$SEQ" --steps "$STEPS" --out "$out/run" |
  while IFS= read -r line; do  # as they come, each with the seconds since the start (a time limit keeps them)
    if [[ $line =~ ^(summary:\ [0-9]+\ steps|step\ |backbone:|method) || $line == *tok/s* ]]; then
      echo "[$SECONDS s] $line"
    fi
  done
awk '/max_rss_kib/ {s += $2; if ($2 > m) m = $2} END {printf "measured: largest rank %.2f GiB, node (sum of ranks) %.2f GiB\n", m / 1048576, s / 1048576}' "$out"/peak/rank-*.txt
rm -rf "$out"
