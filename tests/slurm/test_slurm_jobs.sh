#!/usr/bin/env bash
# The batch jobs on a real Slurm cluster: brings up a single-node cluster in
# a scratch folder (tests/slurm/cluster.sh), installs deltatune into a
# scratch prefix with cmake --install, loads its module with Lmod and submits
# with sbatch:
#   - preemption: finetune.sbatch signalled with SIGUSR1 (Slurm's time-limit
#     warning) while it runs, once with scancel --batch (the batch shell
#     forwards it to the ranks) and once with scancel --full (shell and ranks)
#     -> the ranks checkpoint at a step boundary and exit 9, the job requeues
#     itself, resumes and completes (Restarts=1) with deltas byte-identical to
#     an uninterrupted job's and every step in metrics.jsonl exactly once;
#   - finetune.sbatch (installed copy): 2 ranks, tiny GPT-2, LoRA, 4 steps
#     -> deltas, 4 metrics lines, summary in the job's output;
#   - array.sbatch (repository copy): 2 array elements from a task list
#     (LoRA, BitFit) -> one deltas file per task;
#   - finetune.sbatch with a bad option -> FAILED with exit code 2;
#   - sweep.sbatch (installed copy): 3 tasks of an INI task file (LoRA, IA3,
#     BitFit with its own out) on 2 ranks -> per task deltas (read back by
#     deltatune eval; checkpoints checked by deltatune inspect where the
#     sweep writes them), metrics of every step; array.sbatch runs the same
#     INI file, one element per task, and gives the same losses and deltas;
#   - sweep.sbatch signalled with SIGUSR1 once one of its two tasks is done
#     -> it requeues itself and finishes (a deltatune with sweep --resume:
#     checkpoint, exit 9, requeue, resume, as finetune.sbatch; without it:
#     requeued, the finished task left out, the other one redone), every
#     step once in the metrics;
#   - a scaling study (scaling.sh, 1 and 2 ranks, strong and weak) -> 4
#     result.json, report.md with 4 rows, 3 PNG plots;
# checks that the scripts refuse to run outside Slurm, waits with timeouts,
# and always stops the cluster (trap). Exit 0 pass, 1 fail, 77 skipped (no
# root, no Slurm/munge/Lmod, or a cluster that does not come up: the reason
# is printed).
#
# usage: test_slurm_jobs.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$(cd "${1:?usage: test_slurm_jobs.sh BUILD_DIR SOURCE_DIR}" && pwd)
SRC=$(cd "${2:?usage: test_slurm_jobs.sh BUILD_DIR SOURCE_DIR}" && pwd)
source "$SRC/tests/slurm/cluster.sh"
T0=$SECONDS
LMOD_INIT=${LMOD_INIT:-/usr/share/lmod/lmod/init/bash}
MODEL=$SRC/tests/data/hf-parity/gpt2/model
DATA=$SRC/tests/data/hf-parity/gpt2/batch.safetensors

fails=0
# skip REASON: exit 77 (ctest: skipped) unless a check has failed already;
# under CI=true a component that cannot start is a failure, never a skip
skip() {
  (( fails == 0 )) || { echo "FAIL: $fails check(s) failed; then: $*"; exit 1; }
  if [[ "${CI:-}" == "true" ]]; then
    echo "FAIL: $* (CI=true: a component that cannot start is a failure, not a skip)"
    exit 1
  fi
  echo "SKIPPED: $*"
  exit 77
}
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
log() { echo "[$((SECONDS - T0))s] $*"; }

[[ -r "$LMOD_INIT" ]] || skip "Lmod is not installed ($LMOD_INIT; scripts/install-deps.sh installs lmod)"
[[ -x "$BUILD/deltatune" ]] || { echo "FAIL: no $BUILD/deltatune (build first)"; exit 1; }

S=$(mktemp -d "${TMPDIR:-/tmp}/deltatune-slurm.XXXXXX")
chmod 0755 "$S"   # the munge user reaches its folder below
cleanup() {
  local rc=$?
  dt_cluster_stop
  if (( rc == 0 || rc == 77 )); then rm -rf "$S"; else echo "scratch folder kept: $S"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- outside Slurm the batch scripts refuse, with exit 2 and a message
for f in finetune array scaling sweep; do
  out=$(env -u SLURM_JOB_ID bash "$SRC/jobs/$f.sbatch" 2>&1)
  rc=$?
  if [[ $rc -eq 2 && "$out" == *"not inside a Slurm job"* ]]; then ok "$f.sbatch refuses outside Slurm"
  else fail "$f.sbatch outside Slurm: exit $rc, '$out'"; fi
done

# -- install into a scratch prefix and load the module
log "cmake --install"
cmake --install "$BUILD" --prefix "$S/prefix" > "$S/install.log" 2>&1 ||
  { cat "$S/install.log"; echo "FAIL: cmake --install"; exit 1; }
# shellcheck source=/dev/null
source "$LMOD_INIT"
module use "$S/prefix/share/deltatune/modulefiles"
module load deltatune 2> "$S/module.err" || { cat "$S/module.err"; echo "FAIL: module load deltatune"; exit 1; }
[[ "$(command -v deltatune)" == "$S/prefix/bin/deltatune" ]] && ok "module load: deltatune is $S/prefix/bin/deltatune" ||
  fail "module load: deltatune on PATH is '$(command -v deltatune)'"
[[ "${DELTATUNE_JOBS:-}" == "$S/prefix/share/deltatune/jobs" && -f "$DELTATUNE_JOBS/finetune.sbatch" &&
   -f "$DELTATUNE_JOBS/env.sh" ]] && ok "module load: DELTATUNE_JOBS=$DELTATUNE_JOBS" ||
  fail "module load: DELTATUNE_JOBS='${DELTATUNE_JOBS:-}'"
[[ "$(man -w deltatune 2>/dev/null)" == "$S/prefix/share/man/man1/deltatune.1" ]] && ok "module load: man deltatune" ||
  fail "module load: man -w deltatune gives '$(man -w deltatune 2>&1)' (MANPATH=${MANPATH:-})"

# -- the cluster
log "starting munged, slurmctld, slurmd"
dt_cluster_start "$S/cluster" || skip "Slurm cannot start here: $DT_CLUSTER_WHY"
log "cluster up: $(sinfo -h -o '%P %D %c %T')"

mkdir -p "$S/work"
cd "$S/work" || exit 1
submit() { sbatch --parsable --time=3 "$@" | cut -d';' -f1; }
# the jobs signalled by hand, and their reference: a limit whose own warning
# (--signal=B:USR1@120 in the job scripts) cannot land inside the test. With
# --time=3 it lands 60 s into a run, and under the CI's load (the sanitizer
# and fuzz builds beside the tests) a requeued run of the calibrated ~6 s of
# steps once took longer: a second SIGUSR1, Restarts=2 (2026-12-05)
submit_long() { submit --time=10 "$@"; }
# wait_jobs SECONDS ID...: true when every job left the queue in time
wait_jobs() {
  local deadline=$((SECONDS + $1)) ids
  shift
  ids=$(IFS=,; echo "$*")
  while [[ -n "$(squeue -h -j "$ids" -o %i 2>/dev/null)" ]]; do
    (( SECONDS < deadline )) || { fail "jobs $ids still in the queue after ${deadline}s: $(squeue -h -j "$ids" 2>&1)"; return 1; }
    sleep 0.2
  done
}
# job_done ID NAME: the job (every element of an array) COMPLETED, exit 0
job_done() {
  local states
  states=$(scontrol -o show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]* .*ExitCode=[0-9:]*' |
           sed 's/JobState=\([A-Z_]*\).*ExitCode=\([0-9:]*\)/\1 \2/')
  if [[ -n "$states" && -z "$(grep -v '^COMPLETED 0:0$' <<< "$states")" ]]; then ok "$2: job $1 completed"
  else fail "$2: job $1 ended '$states'"; return 1; fi
}

# 1. preemption: once a job's ranks are training (their metrics appear), the
#    time-limit warning SIGUSR1 to the batch shell only (as --signal=B:USR1@120
#    sends it), and to the shell and every step (--full); each job
#    checkpoints, requeues itself and resumes. An uninterrupted job of the
#    same steps is the reference.
# The preempted jobs must still be training when the signal lands (it is sent
# once 10 steps are in the metrics, and scancel takes a few tenths of a
# second): a tiny-fixture step takes about 0.1 ms on a fast core and several
# times that on a slow one, so the step count is sized from this machine: 4000
# steps of one rank are timed, and the jobs get what lasts about 6 s at that
# rate (1000-200000; two data-parallel ranks are slower per step still).
t_cal=$(date +%s%N)
"$BUILD/deltatune" train --model "$MODEL" --data "$DATA" --method lora --steps 4000 --batch-size 2 \
  --log-every 100000 >/dev/null 2>&1 || fail "calibration: deltatune train of 4000 steps failed"
t_cal=$(( $(date +%s%N) - t_cal ))
PRE_STEPS=$(( 4000 * 6000000000 / (t_cal > 0 ? t_cal : 1) ))
(( PRE_STEPS >= 1000 )) || PRE_STEPS=1000
(( PRE_STEPS <= 200000 )) || PRE_STEPS=200000
log "preemption jobs: $PRE_STEPS steps (4000 steps took $((t_cal / 1000000)) ms here)"
# preempt NAME SCANCEL_MODE: submit (the job id in PRE_ID), wait until the
# ranks train, signal
preempt() {
  local deadline
  PRE_ID=$(MODEL=$MODEL DATA=$DATA STEPS=$PRE_STEPS BATCH=2 LOG_EVERY=1000 OUT=$S/work/$1 \
           submit_long -n 2 -J "dt-$1" "$DELTATUNE_JOBS/finetune.sbatch")
  deadline=$((SECONDS + 60))
  until [[ $(grep -c '"step"' "$S/work/$1/metrics.jsonl" 2>/dev/null) -ge 10 ]]; do
    (( SECONDS < deadline )) || { fail "$1: job $PRE_ID did not start training in 60 s ($(squeue -h -j "$PRE_ID" -o %T 2>&1))"; break; }
    sleep 0.1
  done
  if scancel "$2" --signal=USR1 "$PRE_ID" 2>"$S/scancel.err"; then log "$1: SIGUSR1 (scancel $2) to job $PRE_ID"
  else fail "$1: scancel $2 --signal=USR1 $PRE_ID (job state: $(squeue -h -j "$PRE_ID" -o %T 2>&1)): $(cat "$S/scancel.err")"; fi
}
# the sweep: a short and a long task on 1 rank; SIGUSR1 to the batch shell
# (the time-limit warning) once the short one has written its deltas
SWP_LONG=$(( PRE_STEPS > 3000 ? PRE_STEPS : 3000 ))
cat > sweep-pre.ini <<EOF
[task short]
method = lora
lora-rank = 4
steps = 3

[task long]
method = lora
lora-rank = 4
steps = $SWP_LONG
EOF
swp=$(MODEL=$MODEL DATA=$DATA BATCH=2 LOG_EVERY=1000 OUT=$S/work/sweep-pre \
      submit_long -n 1 -J dt-sweep-pre "$DELTATUNE_JOBS/sweep.sbatch" sweep-pre.ini)
deadline=$((SECONDS + 60))
until [[ -s $S/work/sweep-pre/short/deltas.safetensors ]]; do
  (( SECONDS < deadline )) || { fail "sweep-pre: job $swp did not finish its short task in 60 s ($(squeue -h -j "$swp" -o %T 2>&1))"; break; }
  sleep 0.05
done
if scancel --batch --signal=USR1 "$swp" 2>"$S/scancel.err"; then log "sweep-pre: SIGUSR1 (scancel --batch) to job $swp"
else fail "sweep-pre: scancel --batch --signal=USR1 $swp: $(cat "$S/scancel.err")"; fi

preempt pre-batch --batch
pre1=$PRE_ID
preempt pre-full --full
pre2=$PRE_ID
pref=$(MODEL=$MODEL DATA=$DATA STEPS=$PRE_STEPS BATCH=2 LOG_EVERY=1000 OUT=$S/work/pre-ref \
       submit_long -n 2 -J dt-pre-ref "$DELTATUNE_JOBS/finetune.sbatch")

# 2. finetune.sbatch, the installed copy, from the module's DELTATUNE_JOBS
ft=$(MODEL=$MODEL DATA=$DATA STEPS=4 BATCH=2 LOG_EVERY=1 OUT=$S/work/ft \
     submit -n 2 "$DELTATUNE_JOBS/finetune.sbatch" --lora-rank 4)
# 3. array.sbatch, the repository's copy, 2 tasks
cat > tasks.txt <<EOF
# one task per line: deltatune train options
--method lora --lora-rank 4 --lr 1e-3

--method bitfit --lr 3e-3
EOF
arr=$(MODEL=$MODEL DATA=$DATA STEPS=3 BATCH=2 OUT_ROOT=$S/work/arr DELTATUNE=$BUILD/deltatune \
      submit --array=1-2 "$SRC/jobs/array.sbatch" tasks.txt)
# 3b. the same tasks as a sweep (one job, 2 ranks, the installed copy) and as
#     a job array (the repository's copy, one rank per element), from one
#     INI task file
cat > sweep.ini <<EOF
# deltatune sweep task file; keys are train options
[task lora]
method = lora
lora-rank = 4
lr = 1e-3

[task ia3]
method = ia3   ; an inline comment
lr = 1e-2

[task bitfit]
method = bitfit
lr = 3e-3
out = $S/work/sweep-bitfit
EOF
nsw=$(/usr/bin/python3 "$DELTATUNE_JOBS/sweep_tasks.py" count sweep.ini)
[[ "$nsw" == 3 ]] && ok "sweep_tasks.py count: 3 tasks" || fail "sweep_tasks.py count sweep.ini: '$nsw'"
sw=$(MODEL=$MODEL DATA=$DATA STEPS=6 BATCH=2 LOG_EVERY=1 OUT=$S/work/sweep \
     submit -n 2 "$DELTATUNE_JOBS/sweep.sbatch" sweep.ini)
# the array writes the bitfit task (which gives its own out) elsewhere
sed "s|^out = .*|out = $S/work/sweep-arr/bitfit-own|" sweep.ini > sweep-arr.ini
swa=$(MODEL=$MODEL DATA=$DATA STEPS=6 BATCH=2 OUT_ROOT=$S/work/sweep-arr DELTATUNE=$BUILD/deltatune \
      submit --array=1-"${nsw:-3}" "$SRC/jobs/array.sbatch" sweep-arr.ini)

# 4. a usage error: the job fails with deltatune's exit status
bad=$(MODEL=$MODEL DATA=$DATA submit -n 1 -J dt-bad "$DELTATUNE_JOBS/finetune.sbatch" --steps -1)
log "submitted preempted jobs $pre1 $pre2 (reference $pref), finetune $ft, array $arr, failing job $bad, sweep $sw (array $swa), signalled sweep $swp"

# 5. the scaling study (submits 4 exclusive jobs, waits, writes the report)
log "scaling study"
# in the background: bash runs the INT/TERM trap (and cleanup) only between
# foreground commands
MODEL=$MODEL DATA=$DATA STEPS=3 BATCH_PER_RANK=1 timeout 220 \
  bash "$DELTATUNE_JOBS/scaling.sh" --ranks "1 2" --wait --timeout 200 --out "$S/work/scaling" \
  --sbatch-args "--time=3" > "$S/scaling.log" 2>&1 &
wait $!
rc=$?
[[ $rc -eq 0 ]] && ok "scaling.sh --wait" || { fail "scaling.sh exit $rc"; cat "$S/scaling.log"; }

wait_jobs 240 "$ft" "$arr" "$pre1" "$pre2" "$pref" "$bad" "$sw" "$swa" "$swp"
log "jobs done"

# -- checks
job_done "$ft" finetune
f=$S/work/ft
[[ -s $f/deltas.safetensors ]] && ok "finetune: $f/deltas.safetensors" || fail "finetune: no deltas file"
n=$(grep -c '"loss"' "$f/metrics.jsonl" 2>/dev/null)
[[ "$n" == 4 ]] && ok "finetune: 4 metrics lines" || fail "finetune: $n metrics lines, expected 4"
o=$S/work/deltatune-finetune-$ft.out
grep -q '^summary: deltas' "$o" 2>/dev/null && grep -q 'LoRA r=4' "$o" && ok "finetune: summary in $o" ||
  { fail "finetune: job output lacks the summary or --lora-rank 4"; cat "$o"; }

job_done "$arr" array
for i in 1 2; do
  [[ -s $S/work/arr/task-$i/deltas.safetensors ]] && ok "array task $i: deltas" || fail "array task $i: no deltas"
done
grep -q '^method bitfit' "$S/work/deltatune-array-${arr}_2.out" 2>/dev/null && ok "array task 2 ran bitfit" ||
  { fail "array task 2 did not run bitfit"; cat "$S/work/deltatune-array-${arr}_2.out"; }

job_done "$pref" "preemption reference"
for p in "pre-batch $pre1" "pre-full $pre2"; do
  read -r name id <<< "$p"
  job_done "$id" "$name" || continue
  o=$S/work/dt-$name-$id.out
  restarts=$(scontrol -o show job "$id" 2>/dev/null | grep -o 'Restarts=[0-9]*')
  [[ "$restarts" == Restarts=1 ]] && ok "$name: requeued once ($restarts)" || fail "$name: $restarts"
  if grep -q "^interrupted: SIGUSR1 at step [0-9]* of $PRE_STEPS: .*ckpt-[0-9]*\.nc" "$o" &&
     grep -q "requeueing job $id" "$o" && grep -q "^resume: .*ckpt-[0-9]*\.nc: step [0-9]* of $PRE_STEPS" "$o" &&
     grep -q '^summary: deltas' "$o"; then
    ok "$name: checkpoint at a step boundary, exit 9, requeue, resume ($(grep -o '^interrupted: SIGUSR1 at step [0-9]*' "$o"))"
  else
    fail "$name: the job output lacks the interruption, the requeue or the resume"; cat "$o"
  fi
  cmp -s "$S/work/pre-ref/deltas.safetensors" "$S/work/$name/deltas.safetensors" &&
    ok "$name: deltas byte-identical to the uninterrupted job's" || fail "$name: deltas differ from the uninterrupted job's"
  /usr/bin/python3 - "$S/work/pre-ref/metrics.jsonl" "$S/work/$name/metrics.jsonl" "$PRE_STEPS" <<'EOF' &&
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
n = int(sys.argv[3])
steps = [r["step"] for r in got]
assert steps == list(range(n)), "steps %s" % steps  # none lost, none done twice
for a, b in zip(ref, got):
    assert (a["step"], a["loss"], a["lr"], a["grad_norm"]) == (b["step"], b["loss"], b["lr"], b["grad_norm"]), (a, b)
EOF
    ok "$name: metrics.jsonl has steps 0..$((PRE_STEPS - 1)) once each, as the uninterrupted job's" ||
    fail "$name: metrics.jsonl step sequence or values"
done

# the sweep and the array of the same task file
job_done "$sw" sweep
job_done "$swa" "sweep tasks as an array"
o=$S/work/deltatune-sweep-$sw.out
if grep -q '^sweep summary' "$o" 2>/dev/null && [[ $(grep -cE '^  (lora|ia3|bitfit) +done' "$o") == 3 ]] &&
   grep -q '^deltatune .*: sweep of 3 tasks on .*, 2 ranks' "$o"; then ok "sweep: 3 tasks done on 2 ranks"
else fail "sweep: the job output lacks the summary of 3 done tasks on 2 ranks"; cat "$o"; fi
# each task: deltas (F32 tensors that fill the file, finite), metrics of
# steps 0..5 with finite, changing losses, and both the same as the array
# element's (the sweep normalises each task's loss by its own tokens)
/usr/bin/python3 - "$S/work" <<'EOF' && ok "sweep: deltas and metrics of every task, the same as the array's" ||
import json, math, struct, sys
w = sys.argv[1]
def tensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    assert head, path + ": no tensors"
    out, end = {}, 0
    for name, t in head.items():
        a, b = t["data_offsets"]
        assert t["dtype"] == "F32" and b - a == 4 * math.prod(t["shape"]), (path, name, t)
        v = struct.unpack("<%df" % ((b - a) // 4), raw[8 + n + a:8 + n + b])
        assert all(math.isfinite(x) for x in v), (path, name)
        out[name] = (t["shape"], v)
        end = max(end, b)
    assert len(raw) == 8 + n + end, path + ": size"
    return out
def losses(path):
    rows = [json.loads(l) for l in open(path)]
    assert [r["step"] for r in rows] == list(range(6)), (path, [r["step"] for r in rows])
    assert all(math.isfinite(r["loss"]) for r in rows), path
    return [r["loss"] for r in rows]
for task, sw, arr in [("lora", "sweep/lora", "sweep-arr/lora"), ("ia3", "sweep/ia3", "sweep-arr/ia3"),
                      ("bitfit", "sweep-bitfit", "sweep-arr/bitfit-own")]:
    a, b = tensors("%s/%s/deltas.safetensors" % (w, sw)), tensors("%s/%s/deltas.safetensors" % (w, arr))
    assert a.keys() == b.keys() and all(a[k][0] == b[k][0] for k in a), task + ": names or shapes differ"
    d = max(abs(x - y) for k in a for x, y in zip(a[k][1], b[k][1]))
    assert d < 1e-4, "%s: deltas differ by %g" % (task, d)
    la, lb = losses("%s/%s/metrics.jsonl" % (w, sw)), losses("%s/%s/metrics.jsonl" % (w, arr))
    assert max(abs(x - y) for x, y in zip(la, lb)) < 1e-4, (task, la, lb)
    assert la[-1] != la[0], task + ": the loss did not change"
EOF
  fail "sweep: deltas or metrics"
# deltatune reads the sweep's deltas back, and checks its checkpoints (a
# deltatune with sweep --resume writes each task's final one)
if deltatune eval --model "$MODEL" --data "$DATA" --method lora --lora-rank 4 \
     --init-from "$S/work/sweep/lora/deltas.safetensors" --batch-size 2 > "$S/eval.log" 2>&1; then
  ok "sweep: deltatune eval --init-from reads the LoRA task's deltas"
else fail "sweep: deltatune eval --init-from of the LoRA task's deltas"; cat "$S/eval.log"; fi
SW_RESUME=0
deltatune sweep --help 2>/dev/null | grep -q -- '^ *--resume' && SW_RESUME=1
if (( SW_RESUME )); then
  for d in sweep/lora sweep/ia3 sweep-bitfit; do
    c=$(ls "$S/work/$d"/ckpt-*.nc 2>/dev/null | tail -n 1)
    if [[ -n "$c" ]] && deltatune inspect "$c" > "$S/inspect.log" 2>&1; then ok "sweep: deltatune inspect $d/$(basename "$c")"
    else fail "sweep: no checkpoint in $d, or deltatune inspect fails on '$c'"; cat "$S/inspect.log" 2>/dev/null; fi
  done
fi

# the sweep signalled once its short task was done: requeued once, completed
if job_done "$swp" sweep-pre; then
  o=$S/work/dt-sweep-pre-$swp.out
  restarts=$(scontrol -o show job "$swp" 2>/dev/null | grep -o 'Restarts=[0-9]*')
  [[ "$restarts" == Restarts=1 ]] && ok "sweep-pre: requeued once ($restarts)" || { fail "sweep-pre: $restarts"; cat "$o"; }
  if (( SW_RESUME )); then
    # deltatune checkpoints a sweep: the path of finetune.sbatch
    grep -q '^interrupted: SIGUSR1 at sweep step' "$o" && grep -q "requeueing job $swp" "$o" &&
      grep -q '^task long .*(resumed)' "$o" && grep -q '^task short: finished already' "$o" &&
      ok "sweep-pre (sweep --resume): checkpoint, exit 9, requeue, resume" ||
      { fail "sweep-pre: the job output lacks the checkpoint, the requeue or the resume"; cat "$o"; }
  else
    grep -q "1 task(s) finished in this run: requeueing job $swp" "$o" && grep -q 'task: done short ' "$o" &&
      grep -q 'task: run long ' "$o" && grep -q '^deltatune .*: sweep of 1 tasks' "$o" &&
      ok "sweep-pre: requeued on the warning, the restart left the finished task out" ||
      { fail "sweep-pre: the job output lacks the requeue or the restart without the finished task"; cat "$o"; }
  fi
  /usr/bin/python3 - "$S/work/sweep-pre" "$SWP_LONG" <<'EOF' && ok "sweep-pre: both tasks' deltas, every step once in their metrics" ||
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
for task, steps in (("short", 3), ("long", n)):
    assert os.path.getsize("%s/%s/deltas.safetensors" % (d, task)) > 8, task
    got = [json.loads(l)["step"] for l in open("%s/%s/metrics.jsonl" % (d, task))]
    assert got == list(range(steps)), (task, got[:5], len(got))
EOF
    fail "sweep-pre: deltas or metrics"
fi

st=$(scontrol -o show job "$bad" 2>/dev/null | grep -o 'JobState=[A-Z_]*\|ExitCode=[0-9:]*' | tr '\n' ' ')
[[ "$st" == "JobState=FAILED ExitCode=2:0 " ]] && ok "failing job: FAILED with deltatune's exit code 2" ||
  fail "failing job: '$st'"

r=$S/work/scaling
nres=$(ls "$r"/*/result.json 2>/dev/null | wc -l)
[[ $nres -eq 4 ]] && ok "scaling: 4 result.json" || fail "scaling: $nres result.json, expected 4"
rows=$(grep -cE '^\| (strong|weak) \| 1 \| [12] \| [0-9]+ \| [0-9]+ \| [0-9.]+ \| [0-9]+ \|' "$r/report.md" 2>/dev/null)
[[ "$rows" == 4 ]] && ok "scaling: report.md table has 4 rows" || { fail "scaling: report.md has $rows rows"; cat "$r/report.md"; }
for p in throughput efficiency memory; do
  [[ "$(head -c 4 "$r/scaling-$p.png" 2>/dev/null | tail -c 3)" == PNG ]] && ok "scaling: scaling-$p.png" ||
    fail "scaling: no scaling-$p.png"
done
/usr/bin/python3 - "$r" <<'EOF' && ok "scaling: results.json has memory for every rank" || fail "scaling: results.json"
import json, sys
pts = json.load(open(sys.argv[1] + "/results.json"))
assert len(pts) == 4 and all(p["ok"] and p["launcher"] == "srun" for p in pts), pts
assert all(len(p["memory"]) == p["ranks"] and p["max_rss_mib_max"] > 0 for p in pts)
EOF

# -- the Tcl modulefile gives the same environment
module unload deltatune
module unuse "$S/prefix/share/deltatune/modulefiles"
module use "$S/prefix/share/deltatune/modulefiles-tcl"
if module load deltatune 2>"$S/module.err" && [[ "$(command -v deltatune)" == "$S/prefix/bin/deltatune" &&
   "${DELTATUNE_JOBS:-}" == "$S/prefix/share/deltatune/jobs" ]]; then ok "Tcl modulefile loads"
else fail "Tcl modulefile: $(cat "$S/module.err")"; fi

log "stopping the cluster"
dt_cluster_stop
log "done: $fails failure(s)"
(( fails == 0 )) || exit 1
echo "PASSED"
exit 0
