#!/usr/bin/env bash
# Side by side with transformers + PEFT on the 16-core machine (issue 12, device part). One invocation runs, on
# each shape, the issue's workload (GPT-2-shaped model, vocab 50257, seq 512, batch 4, LoRA r=8 alpha 16 on
# c_attn, AdamW, every position scored, median step of steps 1..) through
#   - PEFT (bench/peer/peft_peer.py, all cores as torch threads): fp32, and bf16 autocast;
#   - deltatune on NP MPI ranks (--tp DT_TP, one OpenBLAS thread each; NP / DT_TP replicas) in the layouts of
#     DT_RUNS:
#       fp32        frozen weights fp32, one pass of the batch
#       fp32-mb1    + --micro-batch 1 (activations of one row)
#       fp32-lean   + --micro-batch 1 --recompute (activations of one row, recomputed in backward)
#       bf16-lean   + --weights-dtype bf16 (bf16 storage of the frozen matrices, fp32 math)
#       bf16-mm     --weights-dtype bf16 --matmul-dtype bf16 (bf16 products, fp32 accumulation: oneDNN)
#       bf16-mm-mb1 + --micro-batch 1 (activations of one row, no recompute)
#       bf16-mm-lean + --micro-batch 1 --recompute yes
#       int8, nf4   --weights-dtype int8 / nf4 (quantized block matrices, dequantized tile by tile, fp32 math)
#       int8-mm, nf4-mm  + --matmul-dtype bf16 (each matrix dequantized whole into bf16, bf16 products;
#                   issue 27's floor: the nf4 step at least 0.8x the bf16-mm step on the 1.31B shape)
# and prints a Markdown table: median step, tokens/s, peak RSS (deltatune: largest rank x NP), deltatune's
# memory as the ranks' proportional set size at the end (what the node holds: the frozen matrices that the
# replicas share and the sum window counted once; RSS counts them in every rank), the communication share, and the ratios to PEFT fp32 / bf16, with the issue's floors for the 1.31B shape
# (tokens/s >= 1.2x PEFT fp32 in fp32 and >= PEFT bf16 with bf16 weights; memory <= 0.6x PEFT's).
#
# usage (on the device machine, with the packed stack loaded: see shared/device/README.md):
#   bash bench/peer_device.sh BUILD_DIR          (BUILD_DIR/deltatune; about 8 minutes for both shapes)
#   env: SHAPES ("124m 1.31b"; "tiny" checks the script), STEPS (4), NP (16), DT_TP (NP),
#        DT_RUNS ("fp32 fp32-lean bf16-mm bf16-mm-mb1 bf16-mm-lean"), PEFT_RUNS ("fp32 bf16"; empty:
#        deltatune only), PY (python3)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/summary.sh
BUILD=${1:-build}
BIN=$BUILD/deltatune
PY=${PY:-python3}
STEPS=${STEPS:-4}
NP=${NP:-16}
DT_TP=${DT_TP:-$NP}
SHAPES=${SHAPES:-"124m 1.31b"}
DT_RUNS=${DT_RUNS:-"fp32 fp32-lean bf16-mm bf16-mm-mb1 bf16-mm-lean"}
PEFT_RUNS=${PEFT_RUNS-"fp32 bf16"}
[[ -x $BIN ]] || { echo "peer_device.sh: $BIN not found" >&2; exit 2; }
[[ -z $PEFT_RUNS ]] || "$PY" -c 'import torch, transformers, peft' 2>/dev/null ||
  { echo "peer_device.sh: needs torch, transformers and peft (the device machine has them)" >&2; exit 2; }
export OPENBLAS_NUM_THREADS=1
t_begin=$(date +%s)

shape_of() { # -> layers d heads
  case $1 in
    124m) echo "12 768 12" ;;
    1.31b) echo "24 2048 16" ;;
    tiny) echo "2 64 4" ;; # a smoke test of the script itself
    *) echo "peer_device.sh: unknown shape '$1' (124m, 1.31b, tiny)" >&2; return 2 ;;
  esac
}
dt_extra() {
  case $1 in
    fp32) echo "" ;;
    fp32-mb1) echo "--micro-batch 1" ;;
    fp32-lean) echo "--micro-batch 1 --recompute yes" ;;
    bf16-lean) echo "--micro-batch 1 --recompute yes --weights-dtype bf16" ;;
    bf16-mm) echo "--weights-dtype bf16 --matmul-dtype bf16" ;;
    bf16-mm-mb1) echo "--weights-dtype bf16 --matmul-dtype bf16 --micro-batch 1" ;;
    bf16-mm-lean) echo "--weights-dtype bf16 --matmul-dtype bf16 --micro-batch 1 --recompute yes" ;;
    int8) echo "--weights-dtype int8" ;;
    nf4) echo "--weights-dtype nf4" ;;
    int8-mm) echo "--weights-dtype int8 --matmul-dtype bf16" ;;
    nf4-mm) echo "--weights-dtype nf4 --matmul-dtype bf16" ;;
    *) echo "peer_device.sh: unknown run '$1'" >&2; return 2 ;;
  esac
}
jget() { "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(*[d[k] for k in sys.argv[2:]])' "$@"; }

rows=()
for shape in $SHAPES; do
  read -r L D H <<<"$(shape_of "$shape")"
  declare -A ptps=() prss=()
  for prec in $PEFT_RUNS; do
    pj=$(OMP_NUM_THREADS=$(nproc) "$PY" bench/peer/peft_peer.py --layers "$L" --d "$D" --heads "$H" --batch 4 \
           --seq 512 --steps "$STEPS" --threads "$(nproc)" --precision "$prec")
    echo "peft $shape $prec: $pj" >&2
    read -r st tp rs <<<"$(jget "$pj" median_step_s tokens_per_s peak_rss_mb)"
    ptps[$prec]=$tp
    prss[$prec]=$rs
    rows+=("$shape|PEFT $prec, $(nproc) threads|$(printf %.2f "$st")|$(printf %.0f "$tp")|$(printf %.0f "$rs")|$(printf %.0f "$rs")|-|-|-")
  done
  for run in $DT_RUNS; do
    # shellcheck disable=SC2046
    out=$(mpirun -np "$NP" --bind-to core "$BIN" train \
            --model "synthetic:gpt2:layers=$L,d=$D,heads=$H,vocab=50257,ctx=1024" --tp "$DT_TP" \
            --data synthetic:rows=8,len=512 --batch-size 4 --steps "$STEPS" --method lora --lora-rank 8 \
            --lora-alpha 16 --lora-targets c_attn --log-every 1000 $(dt_extra "$run") 2>&1) || true
    if ! res=$(dt_summary "$out"); then
      echo "peer_device.sh: deltatune $shape $run failed:" >&2; tail -5 <<<"$out" >&2; exit 1
    fi
    read -r st tp _ rss _ _ _ comm pss <<<"$res"
    echo "deltatune $shape $run: $res" >&2
    tot=$(awk -v a="$rss" -v n="$NP" 'BEGIN { printf "%.0f", a * n }')
    # the node's memory: the proportional set size where the binary reports it
    mem=$(awk -v a="$tot" -v p="$pss" 'BEGIN { printf "%.0f", (p > 0 ? p : a) }')
    r32=$(awk -v a="$tp" -v b="${ptps[fp32]:-0}" 'BEGIN { printf (b > 0 ? "%.2f" : "-"), a / b }')
    r16=$(awk -v a="$tp" -v b="${ptps[bf16]:-0}" 'BEGIN { printf (b > 0 ? "%.2f" : "-"), a / b }')
    ref=${prss[fp32]:-0}
    [[ $run == bf16* ]] && ref=${prss[bf16]:-$ref}
    mr=$(awk -v a="$mem" -v b="$ref" 'BEGIN { printf (b > 0 ? "%.2f" : "-"), a / b }')
    rows+=("$shape|deltatune $run, $NP ranks --tp $DT_TP|$st|$tp|$tot ($NP x $rss)|$mem|$comm%|$r32 / $r16|$mr")
  done
  unset ptps prss
done

echo
echo "$(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)," \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, seq 512, batch 4, LoRA r=8 on c_attn, $STEPS steps" \
     "(median of steps 1-$((STEPS - 1))); $(( $(date +%s) - t_begin )) s in all"
echo
echo "| shape | run | median step (s) | tokens/s | peak RSS total (MB) | memory of the node (MB) | communication | tokens/s vs PEFT fp32 / bf16 | memory vs PEFT (same precision) |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r a b c d e f g h i <<<"$r"
  echo "| $a | $b | $c | $d | $e | $f | $g | $h | $i |"
done
echo
echo "Floors (1.31b): deltatune fp32 >= 1.2 x PEFT fp32 tokens/s; deltatune bf16 weights >= PEFT bf16 tokens/s;" \
     "peak memory <= 0.6 x PEFT's in both."
