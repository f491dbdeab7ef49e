#!/usr/bin/env bash
# The steps that need the 16-core machine (shared/device/README.md), run as one device call:
#   bash bench/device.sh STEP[:SECONDS] ...      ($OUT set; .stack/ and build/deltatune carried)
# Each step runs under its own time limit (default 120 s) with its output in $OUT/<step>.log; a step that
# fails or runs out of time is reported and the next one runs. Steps:
#   fixtures  tests/parity/device_run.sh: the transformers fixtures ($OUT/fixtures.tar.gz; env FIXTURES: families)
#   genref    tests/refs/hf_generate_check.py: generate() + PEFT against tests/data/generate ($OUT/hf_generate.json)
#   nf4ref    tests/refs/nf4_peft_ref.py: PEFT's NF4 quantizer on a checked-in tensor ($OUT/nf4_peft.safetensors)
#   bnb4ref   tests/refs/bnb4_device_ref.py: bitsandbytes' own nf4 + double quantization of the checked-in
#             references, if it imports ($OUT/bnb4_nf4_dq.safetensors, $OUT/bnb4_model/; else $OUT/bnb4_absent.txt)
#   peer      bench/peer_device.sh (env: SHAPES, DT_RUNS, PEFT_RUNS, DT_TP, STEPS as that script takes them)
#   quant70b  bench/quant_scale.sh (env: SEQ, STEPS)
#   counts    tests/refs/preset_param_counts.py: transformers' parameter counts of the presets' configs
#   generate  bench/generate_device.sh: deltatune generate beside transformers' generate() (env: GEN_MODELS)
#   floors    bench/floors.sh: issue 26's floors beside PEFT with each step's lockstep limit (env: SECTIONS,
#             STEPS, STEPS13; GEN_TABLE=$OUT/generate.log takes the 13B generation figure from `generate`)
#   presets   `eval` of each family's real-shaped synthetic preset on 16 ranks --tp 16, bf16 (env: PRESETS)
#   rankcore  bench/rankcore.sh: is a slow rank its core or its rank (env as that script takes them; pack
#             build/dt_gemm_peak into the stack beside deltatune for its products' part)
#   ab        bench/ab.sh: two binaries alternating on one training run (env: AB_A, the binary before a change,
#             default .stack/deltatune.old; AB_B, default build/deltatune; AB_ROUNDS, default 2; AB_ARGS, the
#             train arguments; A_EXTRA, B_EXTRA: options of one side only, as bench/ab.sh takes them)
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?bench/device.sh: OUT must be set (the device call sets it)}"
if [[ ! -d .stack/stack ]]; then
  tar -C .stack -xJf .stack/stack.tar.xz || { echo "device.sh: no .stack/stack.tar.xz (carry .stack)"; exit 2; }
fi
# shellcheck disable=SC1091
. .stack/env.sh .stack/stack
# env.sh names the AVX-512 kernel only where none is set; the 6/143/8 hosts of 2026-12-06 arrived with
# OPENBLAS_CORETYPE=Haswell in their environment (AVX2 fp32 products): measure the kernel a user is told to
# use (deltatune's own warning, shared/guide/stack.md)
if grep -qw avx512f /proc/cpuinfo && [[ ${OPENBLAS_CORETYPE:-} != SkylakeX ]]; then
  echo "device.sh: OPENBLAS_CORETYPE was ${OPENBLAS_CORETYPE:-unset}; using SkylakeX"
  export OPENBLAS_CORETYPE=SkylakeX
fi
export PYTHONUNBUFFERED=1
echo "device.sh: $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) cores)," \
  "$(uname -r), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
# the bf16 products' instructions and the host's identity: two 2026-12-05 leases' bf16 steps differed by 1.45x
# where the code did not (docs/performance.md), so a figure says which kind of host made it
echo "device.sh: bf16 instructions: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
  grep -E '^(amx_bf16|amx_tile|avx512_bf16|avx512f)$' | sort | tr '\n' ' '); CPU family/model/stepping" \
  "$(awk -F': ' '/^cpu family|^model\t|^stepping/ {printf "%s/", $2} /^stepping/ {exit}' /proc/cpuinfo)," \
  "$(grep -m1 '^cpu MHz' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') MHz"
mkdir -p build && cp -n .stack/stack/bin/deltatune build/ 2>/dev/null
[[ -e .stack/stack/bin/dt_gemm_peak ]] && cp -n .stack/stack/bin/dt_gemm_peak build/

step() {
  case $1 in
    fixtures) sh tests/parity/device_run.sh ${FIXTURES:-} ;;
    genref) python3 tests/refs/hf_generate_check.py "$OUT/hf_generate.json" ;;
    counts) python3 tests/refs/preset_param_counts.py ;;
    nf4ref) python3 tests/refs/nf4_peft_ref.py "$OUT/nf4_peft.safetensors" ;;
    bnb4ref) python3 tests/refs/bnb4_device_ref.py "$OUT" ;;
    peer) bash bench/peer_device.sh build ;;
    quant70b) bash bench/quant_scale.sh build ;;
    floors) bash bench/floors.sh build ;;
    rankcore) bash bench/rankcore.sh build ;;
    generate)
      for m in ${GEN_MODELS:-1.3b}; do
        MPIRUN="mpirun --bind-to core" bash bench/generate_device.sh build "$m"
      done ;;
    presets)
      for p in ${PRESETS:-qwen2.5-14b mistral-7b opt-13b gpt-neox-20b pythia-12b gemma-7b bloom-7b1}; do
        t=$SECONDS
        mpirun -np 16 --bind-to core build/deltatune eval --model "synthetic:$p" --weights-dtype bf16 \
          --matmul-dtype bf16 --tp 16 --data synthetic:rows=2,len=128 --batch-size 1 2>&1 |
          grep -E "^loss|rror" | sed "s/^/$p: /"
        echo "$p: $((SECONDS - t)) s (load and evaluate 2 x 128 tokens)"
      done ;;
    ab)
      # shellcheck disable=SC2086
      bash bench/ab.sh "${AB_A:-.stack/deltatune.old}" "${AB_B:-build/deltatune}" "${AB_ROUNDS:-2}" ${AB_ARGS:?AB_ARGS: the train arguments} ;;
    *) echo "device.sh: unknown step '$1'"; return 2 ;;
  esac
}

for s in "$@"; do
  name=${s%%:*} limit=120
  [[ $s == *:* ]] && limit=${s##*:}
  t0=$SECONDS
  timeout --kill-after=5 "$limit" bash -c "$(declare -f step); step $name" >"$OUT/$name.log" 2>&1
  rc=$?
  echo "device.sh: $name rc $rc in $((SECONDS - t0)) s (limit $limit)"
  tail -n 25 "$OUT/$name.log"
done
