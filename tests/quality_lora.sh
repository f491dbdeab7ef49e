#!/usr/bin/env bash
# Quality on a real task, short (issue 11; the full table is bench/quality.sh): LoRA r=8 on q,v of the shipped
# pretrained tiny-llama, supersense (WordNet noun classes), STEPS steps of BATCH random rows (--sample-rows),
# lr 2e-3, on 2 MPI ranks. Asserts
#   - zero-shot exact match on the first ROWS test rows (eval of the bare backbone) is below ZS_MAX;
#   - after training, exact match on the same rows is at least EM_MIN (docs/quality.md says how it was set);
#   - the training loss falls: mean of the last 10 steps below LOSS_RATIO x the first step's loss.
# usage: quality_lora.sh DELTATUNE SOURCE_DIR MPIRUN...        (env overrides: STEPS BATCH ROWS EM_MIN SEED)
set -uo pipefail
BIN=$1
SRC=$(cd "$2" && pwd)
shift 2
MPIRUN=("$@")
STEPS=${STEPS:-60}
BATCH=${BATCH:-16}
ROWS=${ROWS:-200}
EM_MIN=${EM_MIN:-0.25}
SEED=${SEED:-1}
ZS_MAX=0.02
LOSS_RATIO=0.35
MODEL=$SRC/data/models/tiny-llama
TASK=$SRC/data/tasks/supersense
S=$(mktemp -d "${TMPDIR:-/tmp}/deltatune-quality.XXXXXX")
trap 'rm -rf "$S"' EXIT
export OPENBLAS_NUM_THREADS=1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
em() { sed -n 's/^exact_match \([0-9.]*\) .*/\1/p' "$1"; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
for f in "$MODEL/model.safetensors" "$TASK/train.safetensors" "$TASK/test.safetensors"; do
  [[ -f $f ]] || { echo "FAIL: missing $f"; exit 1; }
done

"${MPIRUN[@]}" -np 2 "$BIN" eval --model "$MODEL" --data "$TASK/test.safetensors" --rows "$ROWS" --batch-size 50 \
  --method none >"$S/before.txt" 2>&1 || { cat "$S/before.txt"; fail "zero-shot eval exited $?"; }
zs=$(em "$S/before.txt")
echo "zero-shot exact match on $ROWS rows: ${zs:-?}"
[[ -n $zs ]] && ! ge "$zs" "$ZS_MAX" && ok "zero-shot exact match $zs < $ZS_MAX" ||
  fail "zero-shot exact match '${zs}' is not below $ZS_MAX"

"${MPIRUN[@]}" -np 2 "$BIN" train --model "$MODEL" --data "$TASK/train.safetensors" --method lora --lora-rank 8 \
  --lora-alpha 16 --lora-targets q_proj,v_proj --lr 2e-3 --batch-size "$BATCH" --steps "$STEPS" --sample-rows "$SEED" \
  --seed "$SEED" --log-every 20 --metrics "$S/metrics.jsonl" --out "$S/run" >"$S/train.txt" 2>&1 ||
  { cat "$S/train.txt"; fail "train exited non-zero"; }
grep -E '^(step|summary: [0-9]+ steps)' "$S/train.txt"
read -r first last n < <(awk -F'"loss": ' 'NF > 1 { split($2, a, ","); l[n++] = a[1] }
  END { s = 0; k = n < 10 ? n : 10; for (i = n - k; i < n; i++) s += l[i]; printf "%s %.4f %d\n", l[0], k ? s / k : 0, n }' \
  "$S/metrics.jsonl")
[[ ${n:-0} -eq $STEPS ]] && ok "$n metrics lines" || fail "metrics has ${n:-0} lines, expected $STEPS"
awk -v f="$first" -v l="$last" -v r="$LOSS_RATIO" 'BEGIN { exit !(f > 0 && l < r * f) }' &&
  ok "loss falls: $first -> $last (mean of the last 10 steps) < $LOSS_RATIO x first" ||
  fail "loss does not fall enough: $first -> $last (want < $LOSS_RATIO x first)"

"${MPIRUN[@]}" -np 2 "$BIN" eval --model "$MODEL" --data "$TASK/test.safetensors" --rows "$ROWS" --batch-size 50 \
  --method lora --lora-rank 8 --lora-alpha 16 --lora-targets q_proj,v_proj --init-from "$S/run/deltas.safetensors" \
  >"$S/after.txt" 2>&1 || { cat "$S/after.txt"; fail "eval after training exited non-zero"; }
ft=$(em "$S/after.txt")
grep -E '^(loss|token_accuracy|exact_match)' "$S/after.txt"
[[ -n $ft ]] && ge "$ft" "$EM_MIN" && ok "exact match after $STEPS steps: $ft >= $EM_MIN" ||
  fail "exact match after $STEPS steps '${ft}' is below $EM_MIN"

[[ $fails -eq 0 ]] && echo "quality_lora: all passed" || echo "quality_lora: $fails failure(s)"
exit $((fails > 0))
