#!/usr/bin/env bash
# Is a slow rank its core or its rank? (issue 26: in the 13B `--tp 16` lockstep run of 2026-12-05, ranks 0 and 1,
# on cores 0 and 1, waited 0.15 s at the sums and the other ranks 4.5-10.6 s of 26.8 s: ranks 0-1 were the last
# at every barrier.) Three measurements on one host, in one call:
#   1. build/dt_gemm_peak on every core at once, with the 13B `--tp 16` shapes: each rank's own product rate and
#      its core (no communication, so a slow core shows as a low rate);
#   2. the 13B run under --comm-lockstep --verbose with rank r on core r (mpirun --bind-to core);
#   3. the same with rank r on core NP-1-r (a rankfile).
# If the slow ranks of 2 and 3 sit on the same cores, the cores are slow; if they keep their rank numbers, the
# ranks' work is.
#
# usage: bash bench/rankcore.sh BUILD     env: NP (16), MODEL (synthetic:llama2-13b), TP (NP), STEPS (2),
#        BATCH (1), GEMM_SHAPE ("512 5120 13824 32000": tokens, d, ffn, vocab for dt_gemm_peak)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:?usage: bash bench/rankcore.sh BUILD}
NP=${NP:-16} TP=${TP:-${NP:-16}} STEPS=${STEPS:-2} BATCH=${BATCH:-1}
MODEL=${MODEL:-synthetic:llama2-13b}
read -r -a GS <<<"${GEMM_SHAPE:-512 5120 13824 32000}"
export OPENBLAS_NUM_THREADS=1
echo "rankcore.sh: $(date -u +%FT%TZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(nproc) cores"
# the cores' siblings: a pair of vCPUs on one physical core would share its units
echo "rankcore.sh: cores sharing a physical core: $(cat /sys/devices/system/cpu/cpu*/topology/thread_siblings_list 2>/dev/null |
  sort -u | tr '\n' ' ')"
if [[ -x $BUILD/dt_gemm_peak ]]; then
  mpirun --bind-to core -np "$NP" "$BUILD/dt_gemm_peak" "$TP" "${GS[@]}" 2>&1 | grep -v -i pmix
else
  echo "rankcore.sh: no $BUILD/dt_gemm_peak (cmake --build $BUILD --target dt_gemm_peak); products not timed"
fi
rf=$(mktemp)
trap 'rm -f "$rf"' EXIT
h=$(hostname)
for ((r = 0; r < NP; r++)); do echo "rank $r=$h slot=$((NP - 1 - r))"; done >"$rf"
args=(train --model "$MODEL" --tp "$TP" --data "synthetic:rows=$((2 * BATCH)),len=512" --batch-size "$BATCH"
      --steps "$STEPS" --method lora --weights-dtype bf16 --matmul-dtype bf16 --comm-lockstep yes --verbose
      --log-every 1000)
for map in "rank r on core r:--bind-to core" "rank r on core $((NP - 1))-r:--rankfile $rf"; do
  # shellcheck disable=SC2086
  out=$(mpirun ${map#*:} -np "$NP" "$BUILD/deltatune" "${args[@]}" 2>&1)
  echo "rankcore.sh: $MODEL --tp $TP batch $BATCH, lockstep, ${map%%:*}:"
  grep -E "^summary: ([0-9]+ steps in|median step|waiting at the sums per rank|communication)|deltatune: error" <<<"$out" ||
    tail -5 <<<"$out"
done
