#!/usr/bin/env bash
# Issue 26's floors on the 16-core machine, side by side with transformers + PEFT in the same run, with the
# ratios and, for every deltatune step, the machine's lockstep limit of that step: the same run with
# --comm-lockstep yes (every sum a barrier, no data moved: every rank runs the same products and passes at once
# and each pass waits for its group's slowest rank). Issue 26 counts a floor as met where the step is within
# 10% of that limit.
#
# usage (device machine, packed stack loaded; bench/device.sh step `floors`):
#   bash bench/floors.sh BUILD_DIR
#   env: SECTIONS ("131 13b sweep"), STEPS (3: median of steps 1..), STEPS13 (2, the 13B shape's steps),
#        NP (16), TP (4: the 1.31B runs' --tp), LAYOUTS13 ("1:16 4:4": the 13B runs' batch:--tp),
#        EXTRA13 (options added to the 13B runs, e.g. "--tp-heads whole"),
#        THREADS (1: OpenBLAS and oneDNN threads per rank; NP=8 THREADS=2 with MPIRUN="mpirun --map-by
#        slot:PE=2 --bind-to core" gives each rank two cores), MPIRUN ("mpirun --bind-to core"), MODEL131 / MODEL13B (the shapes; smaller ones check the script
#        here: see docs/performance.md), PY (python3), GEN_TABLE (a bench/generate_device.sh 13b output to take the generation floor
#        from; optional)
# Sections:
#   131    1.31B GPT-2 shape, batch 4 x 512, LoRA r=8 on c_attn: PEFT fp32 and bf16 autocast (all cores as
#          torch threads) and deltatune 16 ranks --tp 4 fp32 and bf16 weights + bf16 products, each with its
#          lockstep limit; floors: bf16 >= 1.3x PEFT bf16, fp32 >= 1.35x PEFT fp32, memory <= 0.6x PEFT's.
#   13b    LLaMA-2-13B shape (synthetic:llama2-13b), bf16 weights + bf16 products, LoRA on q_proj,v_proj:
#          batch 1 x 512 on --tp 16 and batch 4 x 512 on --tp 4 (4 replicas sharing the weights), each with
#          its lockstep limit; floors: 50 and 60 tokens/s, waiting at the tensor-group sums < 10% of the step
#          (beside it, the lockstep run's own waiting at its barriers: the machine's share).
#   sweep  8 LoRA tasks of 4 x 128 tokens in one sweep against one task of 32 x 128 rows per step, 1.31B
#          shape, --tp 4, fp32; floors: >= 0.95x the tokens/s, <= 1.5x the memory (the largest rank's peak).
# Prints every figure as a Markdown table (one row per floor) after the runs' own lines.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib/summary.sh
BUILD=${1:-build}
BIN=$BUILD/deltatune
PY=${PY:-python3}
NP=${NP:-16}
STEPS=${STEPS:-3}
STEPS13=${STEPS13:-2}
SECTIONS=${SECTIONS:-"131 13b sweep"}
[[ -x $BIN ]] || { echo "floors.sh: $BIN not found" >&2; exit 2; }
export OPENBLAS_NUM_THREADS=${THREADS:-1}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
t_begin=$(date +%s)
rows=()
G131=${MODEL131:-"synthetic:gpt2:layers=24,d=2048,heads=16,vocab=50257,ctx=1024"}
M13B=${MODEL13B:-synthetic:llama2-13b}
TP=${TP:-4}
LAYOUTS13=${LAYOUTS13:-"1:16 4:4"}
read -r -a EXTRA13 <<<"${EXTRA13:-}"
read -r -a MPIRUN <<<"${MPIRUN:-mpirun --bind-to core}"

# one deltatune train run -> "step tokens/s node_MB wait_lo_share wait_hi_share peak_rank_MB" (node_MB: the
# ranks' proportional set size at the end; the waiting at the sums for the group's last rank over the ranks,
# as a share of rank 0's time in the steps; the largest rank's peak RSS)
dt_run() {
  local out res st tp rss pss steps_s wlo whi
  # shellcheck disable=SC2068
  out=$("${MPIRUN[@]}" -np "$NP" "$BIN" train --log-every 1000 $@ 2>&1) || true
  if ! res=$(dt_summary "$out"); then
    # its own error lines first: mpirun's report of the exit comes after them (2026-12-05: a tail of 5
    # lines showed only mpirun's)
    echo "floors.sh: deltatune failed: $*" >&2; { grep -m 3 "deltatune: error" <<<"$out" || true; } >&2; tail -5 <<<"$out" >&2
    return 1
  fi
  read -r st tp _ rss _ _ _ _ pss <<<"$res"
  steps_s=$(sed -nE 's/^summary: communication [0-9.]+s of ([0-9.]+)s in the steps.*/\1/p' <<<"$out")
  read -r wlo whi <<<"$(sed -nE 's/.*for the group.s last rank ([0-9.]+)-([0-9.]+)s.*/\1 \2/p' <<<"$out")"
  echo "$st $tp $pss $(awk -v a="${wlo:-0}" -v b="${whi:-0}" -v s="${steps_s:-1}" \
        'BEGIN { printf "%.3f %.3f", a / s, b / s }') $rss"
}
peft_run() { # precision -> "step tokens/s peak_MB"
  local pj
  pj=$(OMP_NUM_THREADS=$(nproc) "$PY" bench/peer/peft_peer.py --layers 24 --d 2048 --heads 16 --batch 4 \
         --seq 512 --steps "$STEPS" --threads "$(nproc)" --precision "$1")
  echo "floors.sh: PEFT $1: $pj" >&2
  "$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print("%.3f %.1f %.0f" % (d["median_step_s"], d["tokens_per_s"], d["peak_rss_mb"]))' "$pj"
}
need() { [[ -n $1 ]] || { echo "floors.sh: $2 gave no figures (see above)" >&2; exit 1; }; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2f" : "-"), a / b }'; }
met() { awk -v v="$1" -v f="$2" -v dir="$3" 'BEGIN { print ((dir == ">=" ? v >= f : v <= f) ? "yes" : "no") }'; }
# a row: figure | measured | against | ratio | floor | met | lockstep limit | step / limit
row() { rows+=("$1|$2|$3|$4|$5|$6|$7|$8"); }

for sec in $SECTIONS; do
  case $sec in
    131)
      read -r p32_st p32_tp p32_mem <<<"$(peft_run fp32)"
      read -r p16_st p16_tp p16_mem <<<"$(peft_run bf16)"
      need "$p32_tp" "PEFT fp32"; need "$p16_tp" "PEFT bf16"
      row "1.31B PEFT fp32, $(nproc) threads" "$p32_tp tokens/s, $p32_mem MB" "-" "-" "-" "-" "-" "$p32_st s"
      row "1.31B PEFT bf16 autocast, $(nproc) threads" "$p16_tp tokens/s, $p16_mem MB" "-" "-" "-" "-" "-" "$p16_st s"
      base=(--model "$G131" --tp "$TP" --data synthetic:rows=8,len=512 --batch-size 4 --steps "$STEPS" --method lora
            --lora-rank 8 --lora-alpha 16 --lora-targets c_attn)
      for prec in fp32 bf16; do
        extra=()
        [[ $prec == bf16 ]] && extra=(--weights-dtype bf16 --matmul-dtype bf16)
        read -r st tp mem wlo whi _ <<<"$(dt_run "${base[@]}" "${extra[@]}")"
        read -r lst ltp _ <<<"$(dt_run "${base[@]}" "${extra[@]}" --comm-lockstep yes)"
        need "$st" "1.31B $prec"; need "$lst" "1.31B $prec --comm-lockstep"
        echo "floors.sh: 1.31B $prec: step $st s, $tp tokens/s, $mem MB, waiting $wlo-$whi; lockstep $lst s" >&2
        if [[ $prec == fp32 ]]; then ref_tp=$p32_tp ref_mem=$p32_mem f=1.35; else ref_tp=$p16_tp ref_mem=$p16_mem f=1.3; fi
        r=$(ratio "$tp" "$ref_tp")
        row "1.31B deltatune $prec, $NP ranks --tp $TP: tokens/s" "$tp" "PEFT $prec $ref_tp" "$r" ">= $f" \
            "$(met "$r" "$f" ">=")" "$lst s ($ltp tokens/s)" "$(ratio "$st" "$lst")"
        r=$(ratio "$mem" "$ref_mem")
        row "1.31B deltatune $prec: memory of the node (MB)" "$mem" "PEFT $prec $ref_mem" "$r" "<= 0.6" \
            "$(met "$r" 0.6 "<=")" "-" "-"
      done ;;
    13b)
      for lay in $LAYOUTS13; do
        b=${lay%%:*} tp=${lay##*:}
        args=(--model "$M13B" --tp "$tp" --data "synthetic:rows=$((2 * b)),len=512" --batch-size "$b"
              --steps "$STEPS13" --method lora --weights-dtype bf16 --matmul-dtype bf16 ${EXTRA13[@]+"${EXTRA13[@]}"})
        read -r st tps mem wlo whi _ <<<"$(dt_run "${args[@]}")"
        read -r lst ltp _ lwlo lwhi _ <<<"$(dt_run "${args[@]}" --comm-lockstep yes)"
        need "$st" "13B batch $b"; need "$lst" "13B batch $b --comm-lockstep"
        echo "floors.sh: 13B batch $b --tp $tp: step $st s, $tps tokens/s, $mem MB, waiting $wlo-$whi; lockstep $lst s, waiting $lwlo-$lwhi" >&2
        f=50
        [[ $b == 4 ]] && f=60
        row "$M13B, batch $b x 512, $NP ranks${THREADS:+ x $THREADS threads} --tp $tp${EXTRA13[*]:+ ${EXTRA13[*]}}, bf16: tokens/s" "$tps" "-" "-" ">= $f" \
            "$(met "$tps" "$f" ">=")" "$lst s ($ltp tokens/s)" "$(ratio "$st" "$lst")"
        row "the same: waiting at the tensor-group sums (share of the step, ranks' range)" "$wlo-$whi" "-" "-" \
            "< 0.10" "$(met "$whi" 0.0999 "<=")" "-" "-"
        # the machine's own share: the lockstep run waits at its barriers with no data moved
        row "the same, its lockstep run: waiting at the barriers (share of the step, ranks' range)" "$lwlo-$lwhi" \
            "-" "-" "-" "-" "-" "-"
      done ;;
    sweep)
      : >"$T/tasks.ini"
      for k in 1 2 3 4 5 6 7 8; do
        printf '[task t%d]\nmethod = lora\nlora-rank = 8\nlora-alpha = 16\nlora-targets = c_attn\nseed = %d\n' \
          "$k" "$k" >>"$T/tasks.ini"
        printf 'data = synthetic:rows=64,len=128\nbatch-size = 4\nsteps = %d\n\n' "$STEPS" >>"$T/tasks.ini"
      done
      out=$("${MPIRUN[@]}" -np "$NP" "$BIN" sweep --model "$G131" --tp "$TP" --tasks "$T/tasks.ini" \
              --log-every 1000 2>&1) || { echo "floors.sh: the sweep failed" >&2; { grep -m 3 "deltatune: error" <<<"$out" || true; } >&2; tail -5 <<<"$out" >&2; exit 1; }
      s_tp=$(sed -nE 's/^  median step [0-9.]+s: ([0-9.]+) tokens.*/\1/p' <<<"$out")
      # peak RSS of the largest rank: the sweep frees a task's workspace when it ends, so its memory at the
      # end is not its peak (same layout in both runs, so the shared pages count alike)
      s_mem=$(sed -nE 's/.*peak RSS per rank ([0-9.]+) MB.*/\1/p' <<<"$out")
      read -r _ tp1 _ _ _ mem1 <<<"$(dt_run --model "$G131" --tp "$TP" --data synthetic:rows=64,len=128 \
          --batch-size 32 --steps "$STEPS" --method lora --lora-rank 8 --lora-alpha 16 --lora-targets c_attn)"
      need "$s_tp" "the sweep"; need "$tp1" "the one task"
      echo "floors.sh: sweep $s_tp tokens/s, $s_mem MB; one task of 32 x 128: $tp1 tokens/s, $mem1 MB" >&2
      r=$(ratio "$s_tp" "$tp1")
      row "8 LoRA tasks of 4 x 128 in one sweep, 1.31B, $NP ranks --tp $TP: tokens/s" "$s_tp" "one task 32 x 128: $tp1" \
          "$r" ">= 0.95" "$(met "$r" 0.95 ">=")" "-" "-"
      r=$(ratio "$s_mem" "$mem1")
      row "the same: peak RSS of the largest rank (MB)" "$s_mem" "one task: $mem1" "$r" "<= 1.5" "$(met "$r" 1.5 "<=")" "-" "-" ;;
    *) echo "floors.sh: unknown section '$sec' (131, 13b, sweep)" >&2; exit 2 ;;
  esac
done
if [[ -n ${GEN_TABLE:-} && -f $GEN_TABLE ]]; then
  g_dt=$(grep -m1 '^| deltatune, 16 ranks' "$GEN_TABLE" | awk -F'|' '{ gsub(/ /, "", $5); print $5 }')
  g_hf=$(grep -m1 '^| transformers' "$GEN_TABLE" | awk -F'|' '{ gsub(/ /, "", $5); print $5 }')
  r=$(ratio "${g_dt:-0}" "${g_hf:-0}")
  row "generation, 13B shape, 16 ranks, greedy, bf16: tokens/s" "${g_dt:-?}" "transformers generate() ${g_hf:-?}" \
      "$r" ">= 1" "$(met "$r" 1 ">=")" "-" "-"
fi

echo
echo "$(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($(nproc) cores)," \
     "$(uname -r), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; $STEPS steps (13B: $STEPS13), median of steps" \
     "1..; $(( $(date +%s) - t_begin )) s in all"
echo
echo "| figure | measured | against | ratio | floor | met | lockstep limit (--comm-lockstep) | step / limit |"
echo "|---|---|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r a b c d e f g h <<<"$r"
  echo "| $a | $b | $c | $d | $e | $f | $g | $h |"
done
echo
echo "A floor the machine cannot give counts as met (issue 26) where the step is within 10% of its lockstep" \
     "limit: step / limit <= 1.10."
