#!/usr/bin/env bash
# Multi-task sweep vs the same tasks trained one after the other, for
# K = 1, 2, 4, 8 LoRA tasks (different seeds, learning rates and row draws)
# on the shipped tiny-gpt2 with the supersense task, each B rows x 48 tokens
# per step for S steps. For every K: total wall time, total tokens/s
# (K x S x B x 48 / wall time), CPU time (user + system: the machine may be
# shared) and peak RSS (GNU time %M; for the sequential runs the largest of
# the K runs, i.e. the peak of the whole sequence), as a Markdown table.
# usage: bash bench/sweep.sh [BUILD] [S] [B] [RANKS] [KS]
#   e.g. bash bench/sweep.sh build-sweep 20 4 1 "1 2 4 8"
# env: MODEL [data/models/tiny-gpt2], DATA [supersense train], SEQ (tokens per
#   row of DATA, for tokens/s) [48], DT_EXTRA (options for sweep and train)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
BIN=${1:-build}/deltatune
S=${2:-20}
B=${3:-4}
R=${4:-1}
KS=${5:-1 2 4 8}
TIME=/usr/bin/time
[[ -x $TIME ]] || { echo "bench/sweep.sh: needs GNU time ($TIME)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RUN=()
[[ $R -gt 1 ]] && RUN=(mpirun -np "$R" --oversubscribe)
export OPENBLAS_NUM_THREADS=1
MODEL=${MODEL:-data/models/tiny-gpt2}
DATA=${DATA:-data/tasks/supersense/train.safetensors}
SEQ=${SEQ:-48}
read -r -a EXTRA <<<"${DT_EXTRA:-}" # more options for both sweep and train, e.g. "--recompute yes"

# timed FILE CMD...: run CMD, append "wall cpu maxrss_kb" to FILE
timed() {
  local f=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  "$TIME" -f "%U %S %M" -o "$T/time.txt" "$@" >"$T/log.txt" 2>&1 ||
    { cat "$T/log.txt" >&2; echo "bench/sweep.sh: failed: $*" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'END { printf "%.3f %.3f %d\n", b - a, $1 + $2, $3 }' "$T/time.txt" >>"$f"
}

echo "| K tasks | sweep wall | sweep tokens/s | sweep CPU | sweep peak RSS | sequential wall | sequential tokens/s | sequential CPU | sequential peak RSS | speed-up | memory ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for K in $KS; do
  : >"$T/tasks.ini"
  for k in $(seq 1 "$K"); do
    cat >>"$T/tasks.ini" <<INI
[task t$k]
method = lora
seed = $k
lr = ${k}e-3
data = $DATA
batch-size = $B
steps = $S
sample-rows = $k

INI
  done
  : >"$T/sweep.txt"
  : >"$T/seq.txt"
  # with mpirun, GNU time measures mpirun: %M is then not a rank's peak
  timed "$T/sweep.txt" "${RUN[@]}" "$BIN" sweep --model "$MODEL" --tasks "$T/tasks.ini" --log-every 1000000 "${EXTRA[@]}"
  for k in $(seq 1 "$K"); do
    timed "$T/seq.txt" "${RUN[@]}" "$BIN" train --model "$MODEL" --data "$DATA" --method lora \
      --seed "$k" --lr "${k}e-3" --batch-size "$B" --steps "$S" --sample-rows "$k" --log-every 1000000 "${EXTRA[@]}"
  done
  tokens=$((K * S * B * SEQ))
  awk -v K="$K" -v tok="$tokens" -v f2="$T/seq.txt" '
    NR == 1 { sw = $1; sc = $2; sm = $3 }
    END {
      while ((getline l < f2) > 0) { split(l, a, " "); qw += a[1]; qc += a[2]; if (a[3] > qm) qm = a[3] }
      printf "| %d | %.1f s | %.0f | %.1f s | %.0f MB | %.1f s | %.0f | %.1f s | %.0f MB | %.2fx | %.2fx |\n",
             K, sw, tok / sw, sc, sm / 1024, qw, tok / qw, qc, qm / 1024, qw / sw, sm / qm
    }' "$T/sweep.txt"
done
echo
echo "($MODEL, $S steps x $B rows x $SEQ tokens per task, ${DT_EXTRA:-no extra options}, $R rank(s), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
