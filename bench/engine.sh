#!/usr/bin/env bash
# Single-rank engine benchmark (issue: frozen backbone engine): a GPT-2-small
# shaped synthetic model (12 layers, d=768, vocab 50257), sequence 512, one
# rank, one BLAS thread, a LoRA step (forward + backward into activations).
# Prints the machine, the BLAS kernel, the measured single-thread sgemm rate
# and the step's model GFLOP/s as a fraction of it, as one Markdown row.
#
# usage: bash bench/engine.sh [BUILD_DIR] [extra deltatune train options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
BUILD=${1:-build}
shift || true
export OPENBLAS_NUM_THREADS=1
BIN="$BUILD/deltatune"
STEPS=${STEPS:-6}
out=$("$BIN" train --model synthetic:gpt2-small --data synthetic:rows=4,len=512 \
        --batch-size 1 --steps "$STEPS" --method lora --log-every 1000 --verbose "$@")
blas=$(grep '^BLAS:' <<<"$out")
core=$(sed -E 's/.*core ([^,]+),.*/\1/' <<<"$blas")
sgemm=$(sed -E 's/.*sgemm 1024\^3 ([0-9.]+) GFLOP.*/\1/' <<<"$blas")
summ=$(grep 'median step' <<<"$out")
step=$(sed -E 's/.*median step ([0-9.]+)s.*/\1/' <<<"$summ")
tps=$(sed -E 's/.*: ([0-9.]+) tokens\/s.*/\1/' <<<"$summ")
gf=$(sed -E 's/.*tokens\/s, ([0-9.]+) GFLOP\/s.*/\1/' <<<"$summ")
frac=$(awk -v a="$gf" -v b="$sgemm" 'BEGIN { printf "%.0f%%", 100 * a / b }')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "| $cpu | $core | $sgemm | $step | $tps | $gf | $frac |"
