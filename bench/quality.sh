#!/usr/bin/env bash
# Quality on real tasks (issue 11): the reference recipe of ../shared/tasks/README.md for every delta method
# on the shipped pretrained backbones and tasks, one cell = (model, task, method); writes one JSON line per
# cell and, with `report`, docs/quality.md (the reference table side by side with deltatune's numbers).
#
# usage: bash bench/quality.sh run    [KEY=VALUE ...]   train + evaluate the selected cells
#        bash bench/quality.sh list   [KEY=VALUE ...]   print the selected cells and their commands
#        bash bench/quality.sh report [--doc FILE] [--peft FILE] RESULTS...   merge results (files or folders) into FILE;
#                                                           --peft: bench/quality_peft.py lines, the reference's own seed spread
#        bash bench/quality.sh sweep-vs-train [KEY=VALUE ...]   time `deltatune sweep` against JOBS parallel
#                                                               single-rank `train`s (one model and task)
# KEY=VALUE (or the same names in the environment):
#   MODELS="tiny-gpt2 tiny-llama"  TASKS="supersense fortune-topic"
#   METHODS="full lastlayer lora ia3 bitfit prefix prompt adapter said"   (bitfit is skipped on LLaMA)
#   STEPS=600        optimizer steps of every cell (the recipe: 600 of batch 32)
#   JOBS=$(nproc)    cells trained at once, each an independent process (OPENBLAS_NUM_THREADS=1)
#   RANKS=1          MPI ranks of each cell (JOBS x RANKS should not exceed the cores)
#   OUT=out/quality  output folder: OUT/<model>/<task>/<method>/ and OUT/results.jsonl
#   BUDGET=0         wall-clock seconds for this call (0 = no limit). A cell that would run past the budget is
#                    stopped by SIGTERM at a step boundary with a checkpoint (deltatune exits 9) and the next
#                    `run` with the same OUT resumes it exactly; a cell is not started with < 60 s left.
#   COPY_TO=         also copy results.jsonl, the logs and the checkpoints of unfinished cells there at the end
#   BUILD=build      build folder holding deltatune
#   EXTRA=           more train options for every cell, e.g. "--weights-dtype nf4" (eval takes them from the
#                    checkpoint); give such runs their own OUT
#   EVAL_ROWS=1000   first N test rows evaluated (all 478 of fortune-topic)
#   SEED=1           --sample-rows and --seed of every cell; a seed other than 1 runs in OUT/<model>/<task>/<method>-seed<N>
#                    (report averages the seeds of a cell and lists each)
#   MICRO=4          --micro-batch of every train: the 32 rows of a step run in passes of 4 rows grouped by length,
#                    each cut after its last scored token (the same loss and gradients; 2.4x faster on
#                    fortune-topic, whose rows are mostly padding); 0 = one pass of 32 rows
# A finished cell (OUT/.../result.json) is never run again: run a subset per call, merge with `report`.
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$(pwd)

cmd=${1:-}
[[ -n $cmd ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
shift

if [[ $cmd == report ]]; then
  exec /usr/bin/python3 "$HERE/bench/quality_report.py" "$@"
fi

for kv in "$@"; do
  case $kv in
    MODELS=* | TASKS=* | METHODS=* | STEPS=* | JOBS=* | RANKS=* | OUT=* | BUDGET=* | COPY_TO=* | BUILD=* | EVAL_ROWS=* | MICRO=* | SEED=* | EXTRA=*)
      export "${kv?}" ;;
    *) echo "bench/quality.sh: unknown argument '$kv' (KEY=VALUE with KEY one of MODELS TASKS METHODS STEPS JOBS RANKS OUT BUDGET COPY_TO BUILD EVAL_ROWS MICRO SEED EXTRA)" >&2
       exit 2 ;;
  esac
done
export MODELS=${MODELS:-"tiny-gpt2 tiny-llama"}
export TASKS=${TASKS:-"supersense fortune-topic"}
export METHODS=${METHODS:-"full lastlayer lora ia3 bitfit prefix prompt adapter said"}
export STEPS=${STEPS:-600} JOBS=${JOBS:-$(nproc)} RANKS=${RANKS:-1} OUT=${OUT:-out/quality}
export BUDGET=${BUDGET:-0} COPY_TO=${COPY_TO:-} BUILD=${BUILD:-build} EVAL_ROWS=${EVAL_ROWS:-1000}
export MICRO=${MICRO:-4} SEED=${SEED:-1}
export OPENBLAS_NUM_THREADS=1
source scripts/env.sh
BIN=$HERE/$BUILD/deltatune
[[ $BUILD == /* ]] && BIN=$BUILD/deltatune

# The recipe of one method: learning rate and options (the reference table's; adapter and SAID: docs/quality.md).
method_lr() { # METHOD
  case $1 in
    full) echo 1e-4 ;; lastlayer) echo 5e-4 ;; lora) echo 2e-3 ;; ia3) echo 1e-2 ;; bitfit) echo 3e-3 ;;
    prefix) echo 3e-3 ;; prompt) echo 3e-2 ;; adapter) echo 5e-3 ;; said) echo 5e-2 ;;
    *) echo "bench/quality.sh: unknown method '$1'" >&2; return 2 ;;
  esac
}
method_opts() { # FAMILY METHOD
  case $2 in
    full) echo "--method full" ;;
    lastlayer) echo "--method lastlayer --last-layers 1 --last-layers-head no" ;;
    lora) echo "--method lora --lora-rank 8 --lora-alpha 16 --lora-targets $([[ $1 == gpt2 ]] && echo c_attn || echo q_proj,v_proj)" ;;
    ia3) echo "--method ia3" ;; # PEFT's default targets: c_attn,mlp.c_proj / k_proj,v_proj,down_proj
    bitfit) echo "--method bitfit" ;;
    prefix) echo "--method prefix --prefix-tokens 10 --prefix-hidden 256" ;;
    prompt) echo "--method prompt --prompt-tokens 10 --prompt-init random" ;;
    adapter) echo "--method adapter --adapter-size 8" ;;
    said) echo "--method said --said-dim 1000" ;;
    *) echo "bench/quality.sh: unknown method '$2'" >&2; return 2 ;;
  esac
}
family() { grep -q '"model_type": *"llama"' "data/models/$1/config.json" && echo llama || echo gpt2; }

cells() { # longest first (fortune-topic before supersense, full first), so JOBS workers pack well
  local t mo me
  for t in $TASKS; do [[ -d data/tasks/$t ]] || { echo "bench/quality.sh: no task data/tasks/$t" >&2; exit 2; }; done
  for mo in $MODELS; do [[ -f data/models/$mo/config.json ]] || { echo "bench/quality.sh: no model data/models/$mo" >&2; exit 2; }; done
  for t in $(printf '%s\n' $TASKS | grep -x fortune-topic; printf '%s\n' $TASKS | grep -vx fortune-topic); do
    for me in $METHODS; do
      for mo in $MODELS; do
        [[ $me == bitfit && $(family "$mo") == llama ]] && continue # LLaMA has no biases
        echo "$mo $t $me"
      done
    done
  done
}

train_cmd() { # MODEL TASK METHOD CELLDIR
  echo "train --model data/models/$1 --data data/tasks/$2/train.safetensors $(method_opts "$(family "$1")" "$3")" \
       "--lr $(method_lr "$3") --batch-size 32 --micro-batch $MICRO --steps $STEPS --sample-rows $SEED --seed $SEED --weight-decay 0" \
       "--schedule constant --log-every 50 --metrics $4/metrics.jsonl --out $4/run --keep 1 --resume yes ${EXTRA:-}"
}
eval_cmd() { # MODEL TASK CKPT
  echo "eval --checkpoint $3 --data data/tasks/$2/test.safetensors --rows $EVAL_ROWS --batch-size 50"
}
cell_dir() { if [[ $SEED == 1 ]]; then echo "$OUT/$1/$2/$3"; else echo "$OUT/$1/$2/$3-seed$SEED"; fi; }
launcher() { if [[ $RANKS -gt 1 ]]; then echo "mpirun -np $RANKS --oversubscribe -x OPENBLAS_NUM_THREADS $BIN"; else echo "$BIN"; fi; }
now() { date +%s.%N; }

run_cell() { # MODEL TASK METHOD: train (resuming), evaluate, write result.json
  local mo=$1 t=$2 me=$3 d; d=$(cell_dir "$1" "$2" "$3")
  mkdir -p "$d"
  [[ -f $d/result.json ]] && { echo "[quality] $mo $t $me: done before, kept"; return 0; }
  local left=999999
  if [[ $BUDGET -gt 0 ]]; then
    left=$(awk -v e="$DEADLINE" -v n="$(now)" 'BEGIN { printf "%d", e - n }')
    if [[ $left -lt 60 ]]; then echo "[quality] $mo $t $me: not started (${left}s left)"; return 0; fi
  fi
  local reserve=$([[ $t == fortune-topic ]] && echo 60 || echo 40) # the eval after training
  local tcmd; tcmd=$(train_cmd "$mo" "$t" "$me" "$d")
  echo "$tcmd" >"$d/train.cmd"
  local t0 t1 rc=0
  t0=$(now)
  local TIMEFORMAT='%U %S' cpu # CPU seconds (user, system) of the train processes: the cost on a free core
  # shellcheck disable=SC2086
  cpu=$( { time timeout --preserve-status -s TERM -k 60 $((left > reserve + 30 ? left - reserve : 30)) \
    $(launcher) $tcmd >>"$d/train.log" 2>&1; } 2>&1 ) || rc=$?
  cpu=$(tail -1 <<<"$cpu")
  t1=$(now)
  awk -v a="$t0" -v b="$t1" -v rc="$rc" -v c="$cpu" 'BEGIN { split(c, u, " "); printf "%.2f %d %.2f\n", b - a, rc, u[1] + u[2] }' >>"$d/segments"
  if [[ $rc -eq 9 ]]; then echo "[quality] $mo $t $me: stopped at the budget, checkpoint kept (run again to resume)"; return 0; fi
  if [[ $rc -ne 0 ]]; then echo "[quality] $mo $t $me: train FAILED (exit $rc), see $d/train.log"; return 0; fi
  local ck; ck=$(ls "$d"/run/ckpt-*.nc | tail -1)
  local ecmd; ecmd=$(eval_cmd "$mo" "$t" "$ck")
  echo "$ecmd" >"$d/eval.cmd"
  t0=$(now)
  # shellcheck disable=SC2086
  if ! cpu=$( { time $(launcher) $ecmd >"$d/eval.txt" 2>&1; } 2>&1 ); then
    echo "[quality] $mo $t $me: eval FAILED, see $d/eval.txt"; return 0
  fi
  t1=$(now)
  local ew; ew=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  local ec; ec=$(tail -1 <<<"$cpu" | awk '{ printf "%.2f", $1 + $2 }')
  /usr/bin/python3 "$HERE/bench/quality_report.py" --cell "$d" --model "$mo" --task "$t" --method "$me" \
    --lr "$(method_lr "$me")" --steps "$STEPS" --ranks "$RANKS" --jobs "$JOBS" --seed "$SEED" --eval-wall "$ew" --eval-cpu "$ec" >"$d/result.json.tmp"
  mv "$d/result.json.tmp" "$d/result.json"
  echo "[quality] $mo $t $me: $(/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("exact match %.3f, %.1f s" % (r["exact_match"], r["wall_s"]))' "$d/result.json")"
}

case $cmd in
  list)
    cells | while read -r mo t me; do echo "$mo $t $me: deltatune $(train_cmd "$mo" "$t" "$me" "$(cell_dir "$mo" "$t" "$me")")"; done ;;
  cell) run_cell "$@" ;;
  run)
    [[ -x $BIN ]] || { echo "bench/quality.sh: no $BIN (build first, or BUILD=...)" >&2; exit 2; }
    DEADLINE=$(awk -v n="$(now)" -v b="$BUDGET" 'BEGIN { printf "%.0f", n + b }'); export DEADLINE
    mkdir -p "$OUT"
    n=$(cells | wc -l)
    echo "[quality] $n cells, $JOBS at once x $RANKS rank(s), $STEPS steps, budget ${BUDGET}s, out $OUT"
    export -f run_cell method_lr method_opts family train_cmd eval_cmd launcher now cell_dir
    export BIN HERE
    T0=$(now)
    cells | xargs -P "$JOBS" -L 1 bash -c 'run_cell "$@"' _
    cat "$OUT"/*/*/*/result.json 2>/dev/null >"$OUT/results.jsonl" || true
    awk -v a="$T0" -v b="$(now)" -v n="$(wc -l <"$OUT/results.jsonl")" \
      'BEGIN { printf "[quality] call took %.0f s; %d finished cells in %s\n", b - a, n, ENVIRON["OUT"] "/results.jsonl" }'
    if [[ -n $COPY_TO ]]; then
      mkdir -p "$COPY_TO"
      (cd "$OUT" && find . -type f ! -name '*.safetensors' ! -name 'ckpt-*.nc' -print0 |
        xargs -0 -r cp --parents -t "$(cd "$HERE" && cd "$COPY_TO" && pwd)")
      for d in "$OUT"/*/*/*/; do # unfinished cells: their newest checkpoint, to resume elsewhere
        [[ -f $d/result.json ]] && continue
        ck=$(ls "$d"run/ckpt-*.nc 2>/dev/null | tail -1) || true
        [[ -n $ck ]] && (cd "$OUT" && cp --parents "${ck#"$OUT"/}" "$(cd "$HERE" && cd "$COPY_TO" && pwd)")
      done
      echo "[quality] copied results, logs and unfinished checkpoints to $COPY_TO"
    fi ;;
  sweep-vs-train)
    # one model and task (the first of MODELS / TASKS), every method of METHODS, STEPS steps (20 unless given):
    # (a) one `deltatune sweep` process (RANKS ranks), (b) the same tasks as independent single-rank `train`s,
    # JOBS at once.
    [[ $STEPS == 600 ]] && STEPS=20
    mo=${MODELS%% *}; t=${TASKS%% *}; T=$(mktemp -d); : >"$T/tasks.ini"; : >"$T/trains"
    for me in $METHODS; do
      [[ $me == bitfit && $(family "$mo") == llama ]] && continue
      { echo "[task $me]"; echo "lr = $(method_lr "$me")"; set -- $(method_opts "$(family "$mo")" "$me")
        while [[ $# -gt 0 ]]; do echo "${1#--} = $2"; shift 2; done
        echo "data = data/tasks/$t/train.safetensors"; echo "batch-size = 32"; echo "steps = $STEPS"
        echo "sample-rows = 1"; echo "seed = 1"; echo "metrics = $T/sweep-$me.jsonl"; echo; } >>"$T/tasks.ini"
      mkdir -p "$T/train-$me"
      train_cmd "$mo" "$t" "$me" "$T/train-$me" | sed 's/ --out [^ ]* --keep 1 --resume yes//' >>"$T/trains"
    done
    TIMEFORMAT='%U %S' # CPU seconds next to the wall time (a loaded machine stretches the wall time only)
    a=$(now)
    # shellcheck disable=SC2046
    ca=$( { time $(launcher) sweep --model "data/models/$mo" --tasks "$T/tasks.ini" --log-every 1000 >"$T/sweep.log" 2>&1; } 2>&1 ) ||
      { echo "sweep failed:"; tail -5 "$T/sweep.log"; }
    b=$(now)
    cb=$( { time xargs -P "$JOBS" -L 1 "$BIN" <"$T/trains" >"$T/trains.log" 2>&1; } 2>&1 ) ||
      { echo "a train failed:"; tail -5 "$T/trains.log"; }
    c=$(now)
    LOAD=$(cut -d" " -f1-3 /proc/loadavg) awk -v a="$a" -v b="$b" -v c="$c" -v m="$mo" -v t="$t" -v s="$STEPS" -v j="$JOBS" -v r="$RANKS" \
      -v ca="$(tail -1 <<<"$ca")" -v cb="$(tail -1 <<<"$cb")" -v n="$(wc -l <"$T/trains")" 'BEGIN {
      split(ca, x, " "); split(cb, y, " ")
      printf "| %s %s, %d methods x %d steps | sweep, %d rank(s): %.1f s wall, %.1f s CPU | %d trains, %d at once: %.1f s wall, %.1f s CPU | load %s |\n",
             m, t, n, s, r, b - a, x[1] + x[2], n, j, c - b, y[1] + y[2], ENVIRON["LOAD"] }'
    for me in $METHODS; do # same losses both ways (a sanity check of the comparison)
      [[ -f $T/sweep-$me.jsonl ]] || continue
      echo "  $me: last loss sweep $(tail -1 "$T/sweep-$me.jsonl" | sed 's/.*"loss": \([^,]*\),.*/\1/')," \
        "train $(tail -1 "$T/train-$me/metrics.jsonl" | sed 's/.*"loss": \([^,]*\),.*/\1/')"
    done
    rm -rf "$T" ;;
  *) echo "bench/quality.sh: unknown command '$cmd' (run, list, report, sweep-vs-train)" >&2; exit 2 ;;
esac
