#!/usr/bin/env bash
# Two deltatune binaries on the same training run, alternating A B A B ..., so that a change of the code is
# measured against the code before it on one host in one call (two 16-core hosts of one day ran the same bf16
# step 1.45x apart: docs/performance.md).
#
# usage: bash bench/ab.sh BIN_A BIN_B ROUNDS TRAIN_ARGS...
#   env: NP (16), MPIRUN ("mpirun --bind-to core"), A_EXTRA and B_EXTRA (options for A's runs only and
#   B's only: one binary given twice with and without an option, e.g. B_EXTRA="--tp-heads whole")
# Prints one line a run (label, median step, tokens/s, communication share of the steps, the spread of the waiting
# over the ranks), then the median step of each binary over its rounds and B / A; with OUT set, each run's
# whole output in $OUT/ab-<A|B><round>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/summary.sh
[[ $# -ge 4 ]] || { echo "usage: bash bench/ab.sh BIN_A BIN_B ROUNDS TRAIN_ARGS..." >&2; exit 2; }
A=$1 B=$2 ROUNDS=$3
shift 3
for b in "$A" "$B"; do [[ -x $b ]] || { echo "ab.sh: $b is not an executable" >&2; exit 2; }; done
NP=${NP:-16}
read -r -a MPIRUN <<<"${MPIRUN:-mpirun --bind-to core}"
export OPENBLAS_NUM_THREADS=1
steps_a=() steps_b=()
for ((r = 1; r <= ROUNDS; r++)); do
  for lab in A B; do
    bin=$A extra=${A_EXTRA:-}
    [[ $lab == B ]] && bin=$B extra=${B_EXTRA:-}
    # shellcheck disable=SC2086
    out=$("${MPIRUN[@]}" -np "$NP" "$bin" train --log-every 1000 "$@" $extra 2>&1) || true
    [[ -n ${OUT:-} ]] && printf '%s\n' "$out" >"$OUT/ab-$lab$r.log"
    if ! res=$(dt_summary "$out"); then
      echo "ab.sh: run $lab$r failed" >&2
      { grep -m 3 "deltatune: error" <<<"$out" || tail -5 <<<"$out"; } >&2
      exit 1
    fi
    read -r st tps _ _ _ _ _ comm _ <<<"$res"
    wait_line=$(grep -m1 "^summary: communication over the ranks" <<<"$out" | sed 's/^summary: //' || true)
    echo "ab.sh: $lab$r ($bin $extra): median step ${st}s, $tps tokens/s, communication $comm% of the steps; $wait_line"
    grep -E "^summary: waiting at the sums per rank" <<<"$out" | sed "s/^/ab.sh: $lab$r /" || true
    if [[ $lab == A ]]; then steps_a+=("$st"); else steps_b+=("$st"); fi
  done
done
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ma=$(med "${steps_a[@]}") mb=$(med "${steps_b[@]}")
echo "ab.sh: median step A $ma s ($A ${A_EXTRA:-}), B $mb s ($B ${B_EXTRA:-}), B / A $(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", b / a}')"
