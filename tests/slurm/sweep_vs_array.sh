#!/usr/bin/env bash
# The same K tasks as one sweep job (jobs/sweep.sbatch) and as a job array
# (jobs/array.sbatch, one element per task), on a throwaway single-node Slurm
# cluster (tests/slurm/cluster.sh): K LoRA tasks (different seeds, learning
# rates and row draws) on the shipped tiny-gpt2 with the supersense task, S
# steps of B rows each, from one INI task file. Measures the time from sbatch
# to the last task's end (polling squeue every 0.1 s), REPEAT times each way,
# and prints a Markdown table (docs/jobs.md). Needs root, slurm-wlm, munge.
#
# usage: tests/slurm/sweep_vs_array.sh [BUILD] [K] [S] [B] [REPEAT]
#        (defaults: build 4 40 8 2)
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
K=${2:-4}
S=${3:-40}
B=${4:-8}
REPEAT=${5:-2}
source "$SRC/tests/slurm/cluster.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/deltatune-sweep-vs-array.XXXXXX")
chmod 0755 "$W"
trap 'dt_cluster_stop; rm -rf "$W"' EXIT
dt_cluster_start "$W/cluster" || { echo "Slurm cannot start here: $DT_CLUSTER_WHY" >&2; exit 77; }
cd "$W" || exit 1
for k in $(seq 1 "$K"); do
  cat <<EOF
[task t$k]
method = lora
seed = $k
lr = ${k}e-3
data = $SRC/data/tasks/supersense/train.safetensors
batch-size = $B
steps = $S
sample-rows = $k

EOF
done > tasks.ini
export MODEL=$SRC/data/models/tiny-gpt2 DELTATUNE=$BUILD/deltatune LOG_EVERY=1000
# run NAME SBATCH_ARGS...: seconds from sbatch until the job (every element)
# left the queue; fails unless every job and element COMPLETED
run() {
  local name=$1 id t0 t1 bad
  shift
  t0=$(date +%s.%N)
  id=$(sbatch --parsable --time=10 "$@" | cut -d';' -f1) || return 1
  while [[ -n "$(squeue -h -j "$id" -o %i 2>/dev/null)" ]]; do sleep 0.1; done
  t1=$(date +%s.%N)
  bad=$(scontrol -o show job "$id" | grep -o 'JobState=[A-Z_]*' | grep -v COMPLETED)
  [[ -z "$bad" ]] || { echo "$name: job $id: $bad" >&2; cat ./*"$id"*.out >&2; return 1; }
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }'
}
declare -A T
for r in $(seq 1 "$REPEAT"); do
  T[sweep1]+="$(OUT=$W/sweep1-$r run sweep1 -n 1 "$SRC/jobs/sweep.sbatch" tasks.ini) " || exit 1
  T[sweep2]+="$(OUT=$W/sweep2-$r run sweep2 -n 2 "$SRC/jobs/sweep.sbatch" tasks.ini) " || exit 1
  T[array]+="$(OUT_ROOT=$W/array-$r run array --array=1-"$K" -n 1 "$SRC/jobs/array.sbatch" tasks.ini) " || exit 1
done
echo "| $K LoRA tasks x $S steps x $B rows | time from sbatch to the last task's end (s), each run |"
echo "|---|---|"
echo "| sweep.sbatch, 1 job, 1 rank (\`sbatch -n 1\`) | ${T[sweep1]}|"
echo "| sweep.sbatch, 1 job, 2 ranks (\`sbatch -n 2\`) | ${T[sweep2]}|"
echo "| array.sbatch, $K elements of 1 rank (2 at a time on 2 CPUs) | ${T[array]}|"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
