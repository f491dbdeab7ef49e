#!/usr/bin/env bash
# Side by side with a PyTorch peer (issue 12, local part). One invocation:
#  1. checks that bench/peer/peer.py (plain PyTorch GPT-2 / LLaMA blocks with
#     LoRA, AdamW, causal-LM loss) is the same workload as deltatune: on the
#     HF parity fixtures (tests/data/hf-parity, PEFT LoRA init) its step-0 loss
#     must equal deltatune's within 1e-4 (GPT-2 and LLaMA), or the script stops;
#  2. runs the same LoRA training step through deltatune and through the peer
#     on synthetic backbones (random N(0,0.02) weights, random tokens, every
#     position scored), seq SEQ, batch 1, STEPS steps (median of steps 1..),
#     at 1 thread and at 2 threads (deltatune: 1 rank x 2 OpenBLAS threads, and
#     2 MPI ranks --tp 2 x 1 thread; the peer: torch.set_num_threads(2) and
#     OPENBLAS_NUM_THREADS=2), with the OpenBLAS kernel scripts/env.sh picks;
#  3. prints a Markdown table: median step, tokens/s, peak RSS (VmHWM; for
#     2 ranks: largest rank x 2), model GFLOP/s as a fraction of the cores'
#     sgemm peak, and the ratios deltatune / peer.
# Shapes: gpt2 = GPT-2 small (12 x 768, 12 heads, ffn 3072, vocab 50257,
# LoRA r=8 alpha 16 on c_attn); llama = a LLaMA block of the same size
# (12 x 768, 12 heads / 4 kv heads, SwiGLU ffn 2048, vocab 32000, untied
# head, LoRA r=8 alpha 16 on q_proj,v_proj): ~124M parameters each.
#
# usage: bash bench/peer.sh [BUILD_DIR]        (about 7 minutes on 2 cores)
#   env: STEPS (5), SEQ (512), SHAPES ("gpt2 llama"), PY (/usr/bin/python3),
#        ROUNDS (1: each run ROUNDS times, deltatune and the peer in turn, and
#        the table takes the run of the median step; the steps of every round
#        are printed under it: this machine's spread between runs is larger
#        than one run's),
#        PEER_INTRAOP (torch.set_num_threads of the peer; default = its
#        OPENBLAS_NUM_THREADS, the row's thread count)
# The peer needs Debian's python3-torch (installed here with apt-get when
# missing; it is not a dependency of deltatune).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
source bench/lib/summary.sh
BUILD=${1:-build}
BIN="$BUILD/deltatune"
PY=${PY:-/usr/bin/python3}
STEPS=${STEPS:-5}
ROUNDS=${ROUNDS:-1}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "peer.sh: ROUNDS must be a positive whole number (got '$ROUNDS')" >&2; exit 2; }
SEQ=${SEQ:-512}
SHAPES=${SHAPES:-"gpt2 llama"}
PEER=bench/peer/peer.py
[[ -x "$BIN" ]] || { echo "peer.sh: $BIN not found (build first: cmake -S . -B $BUILD && cmake --build $BUILD)" >&2; exit 2; }
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "peer.sh: installing python3-torch (Debian) for the peer" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get install -y python3-torch python3-numpy >&2 ||
    { $SUDO apt-get update >&2 && $SUDO apt-get install -y python3-torch python3-numpy >&2; }
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
jget() { "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(*[d[k] for k in sys.argv[2:]])' "$@"; }
fmt() { awk -v x="$1" -v f="$2" 'BEGIN { printf f, x }'; }
t_begin=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 1. same workload: step-0 loss on the parity fixtures
F=tests/data/hf-parity
for fam in gpt2 llama; do
  if [[ $fam == gpt2 ]]; then targets=c_attn,mlp.c_fc; else targets=q_proj,v_proj,down_proj; fi
  common=(--init-from "$F/$fam/lora/init.safetensors" --lora-rank 4 --lora-alpha 8 --lora-targets "$targets")
  p=$(OPENBLAS_NUM_THREADS=1 "$PY" "$PEER" fixture --model "$F/$fam/model" \
        --batch "$F/$fam/batch.safetensors" --init-from "$F/$fam/lora/init.safetensors" \
        --rank 4 --alpha 8 --targets "$targets")
  OPENBLAS_NUM_THREADS=1 "$BIN" train --model "$F/$fam/model" --data "$F/$fam/batch.safetensors" \
    --batch-size 2 --steps 1 --method lora "${common[@]}" --metrics "$TMP/fix.jsonl" >/dev/null
  dl=$(sed -nE 's/.*"loss": ([-0-9.eE+]+).*/\1/p' "$TMP/fix.jsonl" | head -1)
  pl=$(jget "$p" loss0)
  if ! awk -v a="$dl" -v b="$pl" 'BEGIN { d = a - b; exit !(d <= 1e-4 && d >= -1e-4) }'; then
    echo "peer.sh: $fam fixture step-0 loss: deltatune $dl, peer $pl: differ by more than 1e-4" >&2
    exit 1
  fi
  echo "same workload: $fam fixture (LoRA r=4 on $targets) step-0 loss deltatune $dl, peer $(fmt "$pl" %.8f)" >&2
done

# ---- 2. the runs
dt_spec() {
  case $1 in
    gpt2) echo "synthetic:gpt2-small" ;;
    llama) echo "synthetic:llama:layers=12,d=768,heads=12,kv_heads=4,ffn=2048,vocab=32000,ctx=1024" ;;
  esac
}
peer_args() {
  case $1 in
    gpt2) echo "--family gpt2 --layers 12 --d 768 --heads 12 --ffn 3072 --vocab 50257 --ctx 1024" ;;
    llama) echo "--family llama --layers 12 --d 768 --heads 12 --kv-heads 4 --ffn 2048 --vocab 32000 --ctx 1024" ;;
  esac
}
# run_dt SHAPE RANKS THREADS -> "step tok/s GFLOP/s rss_per_rank sgemm core loss0"
run_dt() {
  local shape=$1 np=$2 th=$3 out
  local args=(train --model "$(dt_spec "$shape")" --data "synthetic:rows=4,len=$SEQ" --batch-size 1
              --steps "$STEPS" --method lora --log-every 1000 --verbose)
  if [[ $np == 1 ]]; then
    out=$(OPENBLAS_NUM_THREADS=$th "$BIN" "${args[@]}" 2>&1)
  else
    out=$(OPENBLAS_NUM_THREADS=$th mpirun -np "$np" --bind-to core --oversubscribe \
          "$BIN" "${args[@]}" --tp "$np" 2>&1)
  fi
  local res
  if ! res=$(dt_summary "$out"); then
    echo "peer.sh: deltatune $shape np=$np threads=$th failed:" >&2; tail -5 <<<"$out" >&2; exit 1
  fi
  cut -d' ' -f1-7 <<<"$res"
}
run_peer() {
  local shape=$1 th=$2
  # shellcheck disable=SC2046
  OPENBLAS_NUM_THREADS=$th OMP_NUM_THREADS=$th "$PY" "$PEER" bench $(peer_args "$shape") \
    --seq "$SEQ" --rows 4 --batch 1 --steps "$STEPS" --threads "${PEER_INTRAOP:-$th}" --rank 8 --alpha 16
}

# the line of the median first field (the lower of the two middle ones)
median_line() { sort -g -k1,1 | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'; }

rows=()
spread=()
sg1=0
core=""
for shape in $SHAPES; do
  pj1=""; pj2=""
  for cfg in "1 1" "1 2" "2 1"; do
    read -r np th <<<"$cfg"
    cores=$((np * th))
    # ROUNDS runs of deltatune, the peer's in turn (once per thread count:
    # the 2-rank row compares with the 2-thread peer runs)
    dts=""; pjs=""
    need_peer=0
    if [[ $cores == 1 && -z "$pj1" ]] || [[ $cores == 2 && -z "$pj2" ]]; then need_peer=1; fi
    for ((k = 1; k <= ROUNDS; k++)); do
      res=$(run_dt "$shape" "$np" "$th")
      dts+="$res"$'\n'
      read -r dstep _ _ _ dsg _ <<<"$res"
      [[ $np == 1 && $th == 1 ]] && sg1=$(awk -v a="$dsg" -v b="$sg1" 'BEGIN { print (a > b ? a : b) }')
      if [[ $need_peer == 1 ]]; then
        p=$(run_peer "$shape" "$cores")
        echo "peer $shape threads=$cores round $k: $p" >&2
        pjs+="$(jget "$p" median_step_s) $p"$'\n'
      fi
    done
    res=$(printf '%s' "$dts" | median_line)
    read -r dstep dtps dgf drss dsg dcore dl0 <<<"$res"
    core=$dcore
    echo "deltatune $shape ranks=$np threads=$th: median step ${dstep}s, $dtps tokens/s, peak RSS/rank $drss MB, loss0 $dl0, sgemm $dsg GFLOP/s ($dcore)" >&2
    if [[ $need_peer == 1 ]]; then
      pj=$(printf '%s' "$pjs" | median_line | cut -d' ' -f2-)
      if [[ $cores == 1 ]]; then pj1=$pj; psteps1=$(printf '%s' "$pjs" | awk '{ printf "%.3f ", $1 }');
      else pj2=$pj; psteps2=$(printf '%s' "$pjs" | awk '{ printf "%.3f ", $1 }'); fi
    fi
    if [[ $cores == 1 ]]; then pj=$pj1; psteps=$psteps1; else pj=$pj2; psteps=$psteps2; fi
    res=$(jget "$pj" median_step_s tokens_per_s peak_rss_mb mm1024_gflops torch blas_core)
    read -r pstep ptps prss pmm ptorch pcore <<<"$res"
    if [[ $np == 1 ]]; then layout="1 rank x $th thread$([[ $th == 1 ]] || echo s)"; else layout="$np ranks (--tp $np) x $th thread"; fi
    drss_tot=$(awk -v a="$drss" -v n="$np" 'BEGIN { printf "%.0f", a * n }')
    # model FLOP/s of the peer: the same FLOPs per token (same workload)
    pgf=$(awk -v g="$dgf" -v a="$dtps" -v b="$ptps" 'BEGIN { printf "%.1f", g / a * b }')
    spread+=("$shape, $layout: deltatune $(printf '%s' "$dts" | cut -d' ' -f1 | tr '\n' ' ')/ peer $psteps")
    rows+=("$shape|$cores|$layout|$dstep|$(fmt "$pstep" %.3f)|$dtps|$(fmt "$ptps" %.0f)|$(awk -v a="$dtps" -v b="$ptps" 'BEGIN { printf "%.2f", a / b }')|$drss_tot$([[ $np == 1 ]] || echo " ($np x $drss)")|$(fmt "$prss" %.0f)|$(awk -v a="$drss_tot" -v b="$prss" 'BEGIN { printf "%.2f", a / b }')|$dgf / $pgf|$cores")
  done
done

# ---- 3. the table (fraction of the cores' sgemm peak: cores x the best
#         1-thread deltatune sgemm 1024^3 measured above)
echo
echo "$(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores), OpenBLAS core $core${OPENBLAS_CORETYPE:+ (OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE)}, torch $ptorch (BLAS: OpenBLAS $pcore), seq $SEQ, batch 1, $STEPS steps (median of steps 1-$((STEPS - 1)))$([[ $ROUNDS == 1 ]] || echo ", $ROUNDS rounds (the run of the median step)"), 1-thread sgemm 1024^3 $sg1 GFLOP/s; nice $(nice), load average $load0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end; $(( $(date +%s) - t_begin )) s in all"
echo
echo "| shape | cores | deltatune layout | median step deltatune (s) | median step peer (s) | tokens/s deltatune | tokens/s peer | tokens/s ratio | peak RSS deltatune (MB) | peak RSS peer (MB) | RSS ratio | model GFLOP/s deltatune / peer | fraction of sgemm peak deltatune / peer |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r s c l a b t u x m n y g k <<<"$r"
  frac=$(awk -v g="$g" -v p="$sg1" -v c="$k" 'BEGIN { split(g, v, " / "); printf "%.0f%% / %.0f%%", 100 * v[1] / (p * c), 100 * v[2] / (p * c) }')
  echo "| $s | $c | $l | $a | $b | $t | $u | $x | $m | $n | $y | $g | $frac |"
done
if [[ $ROUNDS != 1 ]]; then
  echo
  echo "Median steps (s) of each round:"
  for r in "${spread[@]}"; do echo "- $r"; done
fi
