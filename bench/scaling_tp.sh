#!/usr/bin/env bash
# Tensor-parallel strong scaling (issue: tensor parallelism): a synthetic
# ~1.3B-parameter GPT-2-shaped backbone (24 layers, d=2048, 16 heads, ffn
# 8192, vocab 50257), LoRA r=8 on c_attn, fixed global batch of BATCH rows
# (default 1) x 512
# tokens, tp = ranks, one BLAS thread per rank. Prints one Markdown row per
# rank count: median step, tokens/s, speedup over the first count,
# efficiency, communication share (tensor-group sums + gradient buckets,
# rank 0; inside psgemm for --tp-gemm pxgemm it is not separable) and peak
# RSS per rank.
# usage: bash bench/scaling_tp.sh BIN GEMM "1 2 4 8 16" [STEPS]
#   (on the 16-core machine, see shared/device/README.md: mpirun from the
#    packed stack, --bind-to core)
set -uo pipefail
BIN=${1:?binary}
GEMM=${2:-local}
RANKS=${3:-"1 2 4 8 16"}
STEPS=${STEPS:-${4:-3}}
MODEL=${MODEL:-synthetic:gpt2:layers=24,d=2048,heads=16,ffn=8192,vocab=50257,ctx=1024}
BATCH=${BATCH:-1}
DATA=${DATA:-synthetic:rows=$((4 * BATCH)),len=512}
export OPENBLAS_NUM_THREADS=1
base=""
echo "| ranks (tp) | formulation | median step (s) | tokens/s | speedup | efficiency | comm share | peak RSS/rank (MB) |"
echo "|---|---|---|---|---|---|---|---|"
for r in $RANKS; do
  out=$(mpirun -np "$r" --bind-to core --oversubscribe "$BIN" train --model "$MODEL" --data "$DATA" \
        --batch-size "$BATCH" --steps "$STEPS" --method lora --tp "$r" --tp-gemm "$GEMM" --log-every 1000 2>&1)
  step=$(sed -nE 's/^summary: median step ([0-9.]+)s.*/\1/p' <<<"$out")
  tps=$(sed -nE 's/^summary: median step [0-9.]+s: ([0-9.]+) tokens.*/\1/p' <<<"$out")
  comm=$(sed -nE 's/^summary: communication .*\(([0-9.]+)%.*/\1/p' <<<"$out")
  rss=$(sed -nE 's/.*peak RSS per rank ([0-9.]+) MB.*/\1/p' <<<"$out")
  if [[ -z "$step" ]]; then echo "| $r | $GEMM | failed: $(tail -2 <<<"$out" | tr '\n' ' ') |"; continue; fi
  [[ -z "$base" ]] && base=$tps && base_r=$r
  sp=$(awk -v a="$tps" -v b="$base" 'BEGIN{printf "%.2f", a/b}')
  eff=$(awk -v s="$sp" -v r="$r" -v b="$base_r" 'BEGIN{printf "%.0f%%", 100*s/(r/b)}')
  echo "| $r | $GEMM | $step | $tps | $sp | $eff | ${comm:-0}% | ${rss:-?} |"
done
