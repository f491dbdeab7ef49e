#!/usr/bin/env bash
# Preemption without Slurm (docs/checkpoint.md, "Signals"): deltatune train
# under mpirun -np 2 gets SIGTERM on its ranks (or SIGUSR1 on mpirun, which
# forwards it) in the middle of training -> every rank writes the
# checkpoint of the steps done at the next step boundary and exits with 9;
# the same command with --resume then finishes with deltas byte-identical to
# an uninterrupted run's, and metrics.jsonl holds every step exactly once,
# equal to the uninterrupted run's. A signal to one rank only stops both.
# usage: test_preempt.sh DELTATUNE_BINARY SOURCE_DIR MPIRUN...
set -uo pipefail
BIN=$1 SRC=$2
shift 2
MPIRUN=("$@")
[[ ${#MPIRUN[@]} -gt 0 ]] || MPIRUN=(mpirun --oversubscribe)
F=$SRC/tests/data/hf-parity/gpt2
S=$(mktemp -d "${TMPDIR:-/tmp}/deltatune-preempt.XXXXXX")
STEPS=1500
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
MP=""
cleanup() {
  [[ -n "$MP" ]] && kill -KILL "$MP" 2>/dev/null
  if (( fails == 0 )); then rm -rf "$S"; else echo "scratch folder kept: $S"; fi
}
trap cleanup EXIT

# cmd OUT [more options]: CMD, the command line of every run
cmd() {
  local out=$1
  shift
  CMD=("${MPIRUN[@]}" -np 2 "$BIN" train --model "$F/model" --data "$F/batch.safetensors"
       --batch-size 2 --method lora --lora-dropout 0.1 --lr 5e-3 --sample-rows 4 --steps "$STEPS"
       --log-every 100000 --out "$out" --metrics "$out/metrics.jsonl" --save-every 400 "$@")
}
train() { cmd "$@"; "${CMD[@]}"; }

# same_metrics A B: B has steps 0..STEPS-1 once each, in order, as A
same_metrics() {
  /usr/bin/python3 - "$1" "$2" "$STEPS" <<'PY'
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
steps = [r["step"] for r in got]
assert steps == list(range(int(sys.argv[3]))), "steps %s" % steps
for a, b in zip(ref, got):
    assert (a["loss"], a["lr"], a["grad_norm"]) == (b["loss"], b["lr"], b["grad_norm"]), (a, b)
PY
}

train "$S/ref" > "$S/ref.log" 2>&1 || { cat "$S/ref.log"; fail "uninterrupted run"; exit 1; }

# interrupted NAME HOW: start, wait for 20 steps, signal (HOW: ranks = SIGTERM
# to both ranks, one = SIGTERM to the second rank, mpirun = SIGUSR1 to
# mpirun), then resume and compare
interrupted() {
  local name=$1 how=$2 out=$S/$1 rc=0 kids deadline
  cmd "$out"
  "${CMD[@]}" > "$S/$name.log" 2>&1 &
  MP=$!  # mpirun itself; the ranks are its children
  deadline=$((SECONDS + 60))
  until [[ $(grep -c '"step"' "$out/metrics.jsonl" 2>/dev/null) -ge 20 ]]; do
    (( SECONDS < deadline )) && kill -0 "$MP" 2>/dev/null || break
    sleep 0.05
  done
  kids=$(pgrep -P "$MP" | sort -n)
  case $how in
    ranks) kill -TERM $kids ;;
    one) kill -TERM "$(tail -n 1 <<< "$kids")" ;;
    mpirun) kill -USR1 "$MP" ;;
  esac
  wait "$MP" || rc=$?
  MP=""
  local line step
  line=$(grep '^interrupted: ' "$S/$name.log")
  step=$(sed -n 's/^interrupted: SIG[A-Z0-9]* at step \([0-9]*\) of .*/\1/p' <<< "$line")
  if [[ $rc -eq 9 && -n "$step" && "$step" -lt $STEPS && -f $(printf '%s/ckpt-%010d.nc' "$out" "$step") ]] &&
     grep -q "deltatune: stopped: interrupted by" "$S/$name.log"; then
    ok "$name: exit 9 after a checkpoint at step $step ($line)"
  else
    fail "$name: exit $rc, interruption '$line'"; tail -n 20 "$S/$name.log"; return
  fi
  [[ $(grep -c '"step"' "$out/metrics.jsonl") -eq $step ]] && ok "$name: $step metrics lines, one per step done" ||
    fail "$name: $(grep -c '"step"' "$out/metrics.jsonl") metrics lines after $step steps"
  train "$out" --resume > "$S/$name-resume.log" 2>&1 || { fail "$name: the resumed run failed"; tail -n 20 "$S/$name-resume.log"; return; }
  grep -q "^resume: .*ckpt-$(printf %010d "$step").nc: step $step of $STEPS" "$S/$name-resume.log" &&
    ok "$name: resumed from step $step" || fail "$name: did not resume from step $step"
  cmp -s "$S/ref/deltas.safetensors" "$out/deltas.safetensors" &&
    ok "$name: deltas byte-identical to the uninterrupted run's" || fail "$name: deltas differ"
  same_metrics "$S/ref/metrics.jsonl" "$out/metrics.jsonl" &&
    ok "$name: every step once in metrics.jsonl, as uninterrupted" || fail "$name: metrics.jsonl"
}
interrupted term-ranks ranks
interrupted term-one-rank one
interrupted usr1-mpirun mpirun

(( fails == 0 )) || { echo "$fails failure(s)"; exit 1; }
echo PASSED
