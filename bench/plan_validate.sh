#!/usr/bin/env bash
# deltatune plan's time and memory model against measured training steps
# (docs/plan.md): calibrate the machine constants on this allocation
# (plan --calibrate at the largest rank count, and at 1 rank), run train on
# each layout, plan the same layouts, print one Markdown row per layout.
# usage: bash bench/plan_validate.sh BIN OUTDIR "1 2 4 8 16" [STEPS]
#   layouts are "ranks" (tp = ranks) or "ranks:tp"; on the 16-core machine
#   (shared/device/README.md) with mpirun from the packed stack.
set -uo pipefail
BIN=${1:?binary}
OUT=${2:?output folder}
LAYOUTS=${3:-"1 2 4 8 16"}
STEPS=${4:-3}
MODEL=${MODEL:-synthetic:gpt2:layers=24,d=2048,heads=16,ffn=8192,vocab=50257,ctx=1024}
SEQ=${SEQ:-512}
METHOD=${METHOD:-lora}
BIND=${BIND:---bind-to core}
export OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"
max=1
for l in $LAYOUTS; do r=${l%%:*}; ((r > max)) && max=$r; done
mpirun -np "$max" $BIND --oversubscribe "$BIN" plan --calibrate --machine "$OUT/machine$max.json" \
  > "$OUT/calibrate$max.txt" 2>&1
"$BIN" plan --calibrate --machine "$OUT/machine1.json" > "$OUT/calibrate1.txt" 2>&1
echo "| ranks | tp | dp | batch | step measured (s) | step predicted, $max-rank constants (s) | step predicted, 1-rank constants (s) | comm measured | comm predicted | peak RSS measured (MiB) | peak RSS predicted (MiB) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for l in $LAYOUTS; do
  r=${l%%:*}; tp=${l#*:}; [[ $l == *:* ]] || tp=$r
  dp=$((r / tp)); batch=$dp
  out=$(mpirun -np "$r" $BIND --oversubscribe "$BIN" train --model "$MODEL" \
        --data "synthetic:rows=$((4 * batch)),len=$SEQ" --batch-size "$batch" --steps "$STEPS" \
        --method "$METHOD" --tp "$tp" --log-every 1000 2>&1)
  echo "$out" > "$OUT/train_${r}_${tp}.txt"
  step=$(sed -nE 's/^summary: median step ([0-9.]+)s.*/\1/p' <<<"$out")
  comm=$(sed -nE 's/^summary: communication .*\(([0-9.]+)%.*/\1/p' <<<"$out")
  rss=$(sed -nE 's/.*peak RSS per rank ([0-9.]+) MB.*/\1/p' <<<"$out")
  pred() {
    "$BIN" plan --model "$MODEL" --method "$METHOD" --ranks-per-node "$r" --tp "$tp" \
      --batch-size "$batch" --seq-len "$SEQ" --data-rows $((4 * batch)) --machine "$1" --json \
      --compare-full no
  }
  pa=$(pred "$OUT/machine$max.json"); pb=$(pred "$OUT/machine1.json")
  echo "$pa" > "$OUT/plan_${r}_${tp}.json"
  row=$(python3 - "$pa" "$pb" <<'EOF'
import json, sys
a, b = json.loads(sys.argv[1])["plan"], json.loads(sys.argv[2])["plan"]
t = a["time"]
comm = (t["tp_sums_s"] + t["reductions_s"]) / t["step_s"] * 100
print("%.3f|%.3f|%.1f%%|%.0f" % (t["step_s"], b["time"]["step_s"], comm,
                                a["memory_per_rank"]["peak_rss"] / 2**20))
EOF
)
  IFS='|' read -r sa sb cp ra <<<"$row"
  echo "| $r | $tp | $dp | $batch | ${step:-failed} | $sa | $sb | ${comm:-?}% | $cp | ${rss:-?} | $ra |"
done
