#!/usr/bin/env bash
# Multi-task sweep vs the same tasks trained one after the other: K LoRA
# tasks (different seeds and learning rates) on the shipped tiny-gpt2 with
# the supersense task, each B rows x 48 tokens per step for S steps.
# usage: bash bench/sweep.sh [BUILD] [K] [S] [B] [RANKS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
BIN=${1:-build}/deltatune
K=${2:-4}
S=${3:-40}
B=${4:-8}
R=${5:-1}
T=$(mktemp -d)
RUN=()
[[ $R -gt 1 ]] && RUN=(mpirun -np "$R" --oversubscribe)
export OPENBLAS_NUM_THREADS=1
: >"$T/tasks.ini"
for k in $(seq 1 "$K"); do
  cat >>"$T/tasks.ini" <<INI
[task t$k]
method = lora
seed = $k
lr = ${k}e-3
data = data/tasks/supersense/train.safetensors
batch-size = $B
steps = $S
sample-rows = $k

INI
done
t0=$(date +%s.%N)
"${RUN[@]}" "$BIN" sweep --model data/models/tiny-gpt2 --tasks "$T/tasks.ini" --log-every 1000 >/dev/null
t1=$(date +%s.%N)
for k in $(seq 1 "$K"); do
  "${RUN[@]}" "$BIN" train --model data/models/tiny-gpt2 --data data/tasks/supersense/train.safetensors \
    --method lora --seed "$k" --lr "${k}e-3" --batch-size "$B" --steps "$S" --sample-rows "$k" \
    --log-every 1000 >/dev/null
done
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v k="$K" -v s="$S" -v bb="$B" -v r="$R" 'BEGIN {
  printf "| %d LoRA tasks x %d steps x %d rows, %d rank(s) | sweep %.1f s | one after the other %.1f s | %.2fx |\n",
         k, s, bb, r, b - a, c - b, (c - b) / (b - a) }'
rm -rf "$T"
