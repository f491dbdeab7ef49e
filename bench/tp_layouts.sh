#!/usr/bin/env bash
# Ranks x threads x tensor-parallel layouts of one training workload, side by side (issue 12: "threads vs ranks").
# Every layout uses all the cores it names (ranks x threads); one table row each: median step, tokens/s, peak
# RSS (largest rank x ranks), the ranks' proportional set size at the end (shared pages once), the communication share (rank 0's tensor-group sums and gradient buckets).
#
# usage: bash bench/tp_layouts.sh BUILD_DIR [LAYOUT ...]
#   LAYOUT = RANKS:TP:THREADS[:EXTRA], EXTRA = train options with ',' for spaces, e.g.
#            16:16:1:--weights-dtype,bf16,--matmul-dtype,bf16   8:8:2:--weights-dtype,bf16,--matmul-dtype,bf16
#   env: MODEL (the 1.31B GPT-2 shape), BATCH (4), SEQ (512), STEPS (4), METHOD ("--method lora --lora-rank 8
#        --lora-alpha 16 --lora-targets c_attn")
# THREADS > 1 binds each rank to THREADS cores (--map-by slot:PE=THREADS) and sets OPENBLAS_NUM_THREADS and
# OMP_NUM_THREADS (oneDNN) to THREADS; the norms, attention outside its GEMMs and the other elementwise passes run
# on one thread per rank.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/summary.sh
BUILD=${1:?usage: bash bench/tp_layouts.sh BUILD_DIR [RANKS:TP:THREADS[:EXTRA] ...]}
shift
BIN=$BUILD/deltatune
[[ -x $BIN ]] || { echo "tp_layouts.sh: $BIN not found" >&2; exit 2; }
MODEL=${MODEL:-synthetic:gpt2:layers=24,d=2048,heads=16,vocab=50257,ctx=1024}
BATCH=${BATCH:-4}
SEQ=${SEQ:-512}
STEPS=${STEPS:-4}
METHOD=${METHOD:-"--method lora --lora-rank 8 --lora-alpha 16 --lora-targets c_attn"}
layouts=("$@")
[[ ${#layouts[@]} -gt 0 ]] || layouts=(16:16:1 16:8:1 8:8:2 4:4:4)
t0=$(date +%s)
rows=()
for lay in "${layouts[@]}"; do
  IFS=: read -r np tp th extra <<<"$lay"
  extra=${extra//,/ }
  bind=(--bind-to core)
  [[ $th -gt 1 ]] && bind=(--map-by "slot:PE=$th" --bind-to core)
  # shellcheck disable=SC2086
  out=$(OPENBLAS_NUM_THREADS=$th OMP_NUM_THREADS=$th mpirun -np "$np" "${bind[@]}" -x OPENBLAS_NUM_THREADS \
          -x OMP_NUM_THREADS "$BIN" train --model "$MODEL" --tp "$tp" --data "synthetic:rows=$((BATCH * 2)),len=$SEQ" \
          --batch-size "$BATCH" --steps "$STEPS" $METHOD --log-every 1000 $extra 2>&1) || true
  if ! res=$(dt_summary "$out"); then
    echo "tp_layouts.sh: $lay failed:" >&2
    tail -5 <<<"$out" >&2
    rows+=("$np x $th|$tp|$extra|failed|-|-|-|-")
    continue
  fi
  read -r st tps _ rss _ _ _ comm pss <<<"$res"
  echo "layout $lay: $res" >&2
  rows+=("$np x $th|$tp|${extra:--}|$st|$tps|$(awk -v a="$rss" -v n="$np" 'BEGIN { printf "%.0f", a * n }') ($np x $rss)|$pss|$comm%")
done
echo
echo "$(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $MODEL, batch $BATCH x $SEQ, $METHOD, $STEPS steps" \
     "(median of steps 1-$((STEPS - 1))); $(($(date +%s) - t0)) s in all"
echo
echo "| ranks x threads | --tp | options | median step (s) | tokens/s | peak RSS total (MB) | memory of the node, PSS (MB) | communication |"
echo "|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r a b c d e f g h <<<"$r"
  echo "| $a | $b | $c | $d | $e | $f | $g | $h |"
done
