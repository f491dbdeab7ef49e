#!/usr/bin/env bash
# The job scripts without Slurm (tests/slurm/ runs them under a real one):
#   - the batch scripts refuse to run outside Slurm (exit 2, a message), and
#     array.sbatch outside an array job;
#   - every batch script's conventions: each #SBATCH line commented, the
#     time-limit warning, srun --mpi=pmix, shellcheck where installed;
#   - jobs/sweep_tasks.py: both task file formats (the examples hold the
#     same tasks), the refusals, the completed task file of a sweep job
#     (which deltatune sweep runs), --skip-done;
#   - sweep.sbatch with stand-ins for srun and scontrol: the sweep's command
#     line, OUT/NAME folders, and (deltatune without sweep --resume) a
#     restart that runs only the unfinished tasks;
#   - dt_train_args: arguments win over the environment, --out sets the
#     metrics file, TP becomes --tp only when not 1, no default model when
#     the scripts are installed;
#   - peakmem.sh with GNU time and with VmHWM sampling;
#   - jobs/scaling.sh --mpirun: a strong and weak study on 1 and 2 ranks of
#     the tiny GPT-2 -> result.json per point, report.md, 3 PNGs (the PNGs
#     only when matplotlib is there).
# usage: test_job_scripts.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$2" && pwd)
BIN=$BUILD/deltatune
T_MODEL=$SRC/tests/data/hf-parity/gpt2/model
T_DATA=$SRC/tests/data/hf-parity/gpt2/batch.safetensors
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
S=$(mktemp -d "${TMPDIR:-/tmp}/deltatune-jobs.XXXXXX")
trap 'rm -rf "$S"' EXIT
unset SLURM_JOB_ID SLURM_ARRAY_TASK_ID SLURM_RESTART_COUNT MODEL DATA METHOD STEPS BATCH LR TP OUT DT_EXTRA TASKS LOG_EVERY SEED

# -- outside Slurm
for f in finetune array scaling sweep; do
  out=$(bash "$SRC/jobs/$f.sbatch" 2>&1)
  rc=$?
  [[ $rc -eq 2 && "$out" == *"not inside a Slurm job"* ]] && ok "$f.sbatch refuses outside Slurm" ||
    fail "$f.sbatch outside Slurm: exit $rc: $out"
done
out=$(SLURM_JOB_ID=1 bash "$SRC/jobs/array.sbatch" 2>&1)
rc=$?
[[ $rc -eq 2 && "$out" == *"not an array job"* ]] && ok "array.sbatch refuses outside an array" ||
  fail "array.sbatch without SLURM_ARRAY_TASK_ID: exit $rc: $out"

# -- dt_train_args (sourced the way the batch scripts source it)
got=$(env METHOD=ia3 STEPS=7 OUT=o bash -c 'DT_JOBS=$0; source "$DT_JOBS/common.sh"; dt_train_args --steps 9 --out=x; echo "${DT_ARGS[*]}"' "$SRC/jobs")
[[ "$got" == "--steps 9 --out=x --model $SRC/data/models/tiny-gpt2 --data $SRC/data/tasks/supersense/train.safetensors --method ia3 --batch-size 32 --lr 2e-3 --log-every 20 --metrics x/metrics.jsonl" ]] &&
  ok "dt_train_args: arguments win, --out sets the metrics" || fail "dt_train_args gave: $got"
got=$(env TP=2 bash -c 'DT_JOBS=$0; source "$DT_JOBS/common.sh"; dt_train_args; echo "${DT_ARGS[*]}"' "$SRC/jobs")
[[ "$got" == *"--tp 2"* ]] && ok "dt_train_args: TP=2 -> --tp 2" || fail "TP=2 gave: $got"
got=$(env TP=1 bash -c 'DT_JOBS=$0; source "$DT_JOBS/common.sh"; dt_train_args; echo "${DT_ARGS[*]}"' "$SRC/jobs")
[[ "$got" != *"--tp"* ]] && ok "dt_train_args: TP=1 -> no --tp" || fail "TP=1 gave: $got"
# installed layout: no repository, so no default model
mkdir -p "$S/prefix/share/deltatune/jobs"
cp "$SRC/jobs/common.sh" "$SRC/scripts/env.sh" "$S/prefix/share/deltatune/jobs/"
out=$(bash -c 'DT_JOBS=$0; source "$DT_JOBS/common.sh"; dt_train_args' "$S/prefix/share/deltatune/jobs" 2>&1)
rc=$?
[[ $rc -eq 2 && "$out" == *"no --model"* ]] && ok "installed: no default model" || fail "installed, no MODEL: exit $rc: $out"

# -- every batch script's conventions: each #SBATCH line explains itself
#    (a trailing # comment), a time-limit warning (--signal), the launch
#    with srun --mpi=pmix, and shellcheck (where it is installed) is clean
for f in "$SRC"/jobs/*.sbatch; do
  b=$(basename "$f")
  bare=$(grep '^#SBATCH' "$f" | grep -v '^#SBATCH --[a-z-]*\(=[^ ]*\)\? \+# [^ ]')
  [[ -z "$bare" ]] && ok "$b: every #SBATCH line is commented" || fail "$b: #SBATCH lines without a comment: $bare"
  grep -q '^#SBATCH --signal=B:USR1@[0-9]' "$f" && ok "$b: asks for the time-limit warning" ||
    fail "$b: no #SBATCH --signal=B:USR1@SECONDS"
  grep -q '^[^#]*srun --mpi=pmix' "$f" && ok "$b: launches with srun --mpi=pmix" || fail "$b: no srun --mpi=pmix"
  if command -v shellcheck > /dev/null; then
    out=$(shellcheck -x -P "$SRC/jobs" "$f" 2>&1) && ok "$b: shellcheck" || fail "$b: shellcheck: $out"
  fi
done
command -v shellcheck > /dev/null || echo "note: shellcheck is not installed: the scripts are not linted"

# -- task files (jobs/sweep_tasks.py): the INI of deltatune sweep and the
#    line list, read by array.sbatch and sweep.sbatch
TP_PY=(/usr/bin/python3 "$SRC/jobs/sweep_tasks.py")
[[ $("${TP_PY[@]}" count "$SRC/jobs/tasks.example.ini") == 5 && $("${TP_PY[@]}" count "$SRC/jobs/tasks.example.txt") == 5 ]] &&
  ok "sweep_tasks.py count: 5 tasks in both examples" || fail "sweep_tasks.py count of the examples"
same=1
for i in 1 2 3 4 5; do
  # the two examples hold the same tasks: --key=value vs --key value
  a=$("${TP_PY[@]}" task "$SRC/jobs/tasks.example.ini" "$i" | tail -z -n +3 | tr '\0=' '\n ' | tr '\n' ' ')
  b=$("${TP_PY[@]}" task "$SRC/jobs/tasks.example.txt" "$i" | tail -z -n +3 | tr '\0' ' ')
  [[ -n "$a" && "$a" == "$b" ]] || { same=0; fail "task $i: the examples differ: '$a' vs '$b'"; }
done
(( same )) && ok "tasks.example.ini and tasks.example.txt hold the same tasks"
cat > "$S/t.ini" <<EOF
# comment
; comment too
[task a b]
method = lora   ; inline comment
lora-rank = 4
steps = 2
data = $T_DATA

[task c]
method = ia3
out = $S/c-own
EOF
got=$("${TP_PY[@]}" task "$S/t.ini" 1 | tr '\0' '|')
[[ "$got" == "a b|a_b|--method=lora|--lora-rank=4|--steps=2|--data=$T_DATA|" ]] && ok "sweep_tasks.py task: name, folder, options" ||
  fail "sweep_tasks.py task gave '$got'"
got=$("${TP_PY[@]}" task "$SRC/jobs/tasks.example.txt" 2 | tr '\0' '|')
[[ "$got" == "task-2|task-2|--method|ia3|--lr|1e-2|" ]] && ok "sweep_tasks.py task: a line" || fail "sweep_tasks.py task (line) gave '$got'"
for bad in '[task a]\nlr = 1\n[task a]\nsteps = 2' '[task a]\nlr = 1\nlr = 2' '[job a]\nlr = 1' '[task ]\nlr = 1' '[task a]' \
           '[task a]\nlr = 1\n  2' '[DEFAULT]\nlr = 1'; do
  printf "$bad\n" > "$S/bad.ini"
  out=$("${TP_PY[@]}" count "$S/bad.ini" 2>&1)
  rc=$?
  [[ $rc -eq 2 && "$out" == "sweep_tasks.py: "* ]] && ok "sweep_tasks.py refuses '${bad//\\n/ / }'" ||
    fail "sweep_tasks.py on '${bad//\\n/ / }': exit $rc: $out"
done
"${TP_PY[@]}" task "$S/t.ini" 3 > /dev/null 2>&1
[[ $? -eq 2 ]] && ok "sweep_tasks.py task 3 of 2: exit 2" || fail "sweep_tasks.py task 3 of 2"
# resolve: defaults for what a task does not give, out and metrics in the
# sweep's folder unless given; the file runs with deltatune sweep
got=$(cd "$S" && "${TP_PY[@]}" resolve t.ini r.ini --out-root sw --default "data=$T_DATA" --default steps=3 \
      --default seed= --default batch-size=2)
rc=$?
[[ $rc -eq 0 && "$got" == $'run\ta b\tsw/a_b\nrun\tc\t'"$S/c-own" && -d "$S/sw/a_b" && -d "$S/c-own" ]] &&
  ok "sweep_tasks.py resolve: out folders" || fail "sweep_tasks.py resolve: exit $rc: '$got'"
/usr/bin/python3 - "$S/r.ini" "$T_DATA" "$S" <<'EOF' && ok "sweep_tasks.py resolve: the completed task file" || fail "resolve wrote $(cat "$S/r.ini")"
import configparser, sys
c = configparser.ConfigParser(interpolation=None)
c.optionxform = str
c.read(sys.argv[1])
a, b = dict(c["task a b"]), dict(c["task c"])
assert a == {"method": "lora", "lora-rank": "4", "steps": "2", "data": sys.argv[2], "batch-size": "2",
             "out": "sw/a_b", "metrics": "sw/a_b/metrics.jsonl"}, a
assert b == {"method": "ia3", "out": sys.argv[3] + "/c-own", "data": sys.argv[2], "steps": "3", "batch-size": "2",
             "metrics": sys.argv[3] + "/c-own/metrics.jsonl"}, b
EOF
(cd "$S" && "$BIN" sweep --model "$T_MODEL" --tasks r.ini > sweep.log 2>&1)
rc=$?
[[ $rc -eq 0 && -s "$S/sw/a_b/deltas.safetensors" && $(wc -l < "$S/c-own/metrics.jsonl") == 3 ]] &&
  ok "deltatune sweep runs the completed task file" || fail "deltatune sweep on the completed file: exit $rc: $(cat "$S/sweep.log")"
got=$(cd "$S" && "${TP_PY[@]}" resolve t.ini r2.ini --out-root sw --skip-done | cut -f1 | tr '\n' ' ')
rc=$?
[[ $rc -eq 3 && "$got" == "done done " && -z "$(grep '^\[' "$S/r2.ini")" ]] && ok "sweep_tasks.py resolve --skip-done: every task done, exit 3" ||
  fail "resolve --skip-done: exit $rc, '$got'"

# -- sweep.sbatch's command line, with stand-ins for srun and scontrol
mkdir -p "$S/fakebin" "$S/sj"
cat > "$S/fakebin/srun" <<'EOF'
#!/usr/bin/env bash
echo "srun $*" >> "$FAKE_LOG"
while [[ $# -gt 0 && "$1" == -* ]]; do shift; done
exec "$@"
EOF
printf '#!/bin/sh\necho "scontrol $*" >> "$FAKE_LOG"\n' > "$S/fakebin/scontrol"
chmod +x "$S/fakebin/srun" "$S/fakebin/scontrol"
cp "$S/t.ini" "$S/sj/tasks.ini"
sweep_job() {
  (cd "$S/sj" && env PATH="$S/fakebin:$PATH" FAKE_LOG="$S/sj/fake.log" SLURM_JOB_ID=77 SLURM_NTASKS=1 \
     SLURM_JOB_NUM_NODES=1 SLURM_JOB_NODELIST=n1 DATA="$T_DATA" MODEL="$T_MODEL" STEPS=3 BATCH=2 \
     DELTATUNE="$BIN" "$@" bash "$SRC/jobs/sweep.sbatch" tasks.ini --log-every 1 > "$S/sj/job.log" 2>&1)
}
sweep_job DT_EXTRA="--backbone-seed 3"
rc=$?
if [[ $rc -eq 0 && -s "$S/sj/out/sweep-77/a_b/deltas.safetensors" && -s "$S/c-own/deltas.safetensors" ]] &&
   grep -q "^srun --mpi=pmix --kill-on-bad-exit=1 $BIN sweep .*--log-every 1 --backbone-seed 3 --model $T_MODEL .*--tasks out/sweep-77/sweep-tasks.ini" "$S/sj/fake.log"; then
  ok "sweep.sbatch: task file, options, OUT/NAME"
else fail "sweep.sbatch: exit $rc: $(cat "$S/sj/job.log" "$S/sj/fake.log")"; fi
if "$BIN" sweep --help | grep -q -- '^ *--resume'; then
  grep -q -- "sweep .*--resume" "$S/sj/fake.log" && ok "sweep.sbatch passes --resume (deltatune sweep has it)" ||
    fail "sweep.sbatch: no --resume: $(cat "$S/sj/fake.log")"
else
  # no checkpoints of sweeps: a restart leaves the finished tasks out
  rm "$S/c-own/deltas.safetensors"
  : > "$S/sj/fake.log"
  sweep_job SLURM_RESTART_COUNT=1
  rc=$?
  [[ $rc -eq 0 ]] && grep -q 'task: done a b ' "$S/sj/job.log" && grep -q 'sweep of 1 tasks' "$S/sj/job.log" &&
    ok "sweep.sbatch (no sweep --resume): a restart runs only the unfinished task" ||
    fail "sweep.sbatch restart: exit $rc: $(cat "$S/sj/job.log")"
  : > "$S/sj/fake.log"
  sweep_job SLURM_RESTART_COUNT=2
  rc=$?
  [[ $rc -eq 0 ]] && grep -q 'every task is done' "$S/sj/job.log" && ! grep -q '^srun' "$S/sj/fake.log" &&
    ok "sweep.sbatch (no sweep --resume): nothing left to run, no srun" || fail "sweep.sbatch, all done: exit $rc: $(cat "$S/sj/job.log")"
fi
out=$(cd "$S/sj" && SLURM_JOB_ID=77 PATH="$S/fakebin:$PATH" FAKE_LOG=/dev/null DELTATUNE=$BIN bash "$SRC/jobs/sweep.sbatch" missing.ini 2>&1)
rc=$?
[[ $rc -eq 2 && "$out" == *"cannot read the task file 'missing.ini'"* ]] && ok "sweep.sbatch: a missing task file, exit 2" ||
  fail "sweep.sbatch missing.ini: exit $rc: $out"

# -- peakmem.sh, both ways of measuring
for t in /usr/bin/time ""; do
  rm -rf "$S/mem"
  PEAKMEM_TIME=$t OMPI_COMM_WORLD_RANK=3 bash "$SRC/jobs/peakmem.sh" "$S/mem" \
    "$BIN" train --model "$T_MODEL" --data "$T_DATA" --batch-size 2 --steps 2 > /dev/null 2>&1
  rc=$?
  kib=$(awk '/^max_rss_kib/ {print $2}' "$S/mem/rank-3.txt" 2>/dev/null)
  src=$(awk '/^source/ {print $2}' "$S/mem/rank-3.txt" 2>/dev/null)
  if [[ -z "$t" || -x "$t" ]]; then
    [[ $rc -eq 0 && "${kib:-0}" -gt 1000 ]] && ok "peakmem.sh ($src): rank 3 peak $kib KiB" ||
      fail "peakmem.sh (PEAKMEM_TIME='$t'): exit $rc, '$(cat "$S/mem/rank-3.txt" 2>&1)'"
  fi
done
PEAKMEM_TIME='' bash "$SRC/jobs/peakmem.sh" "$S/mem" bash -c 'exit 5'
[[ $? -eq 5 ]] && ok "peakmem.sh passes the exit status on" || fail "peakmem.sh exit status"

# -- the scaling study with mpirun
out=$(MODEL=$T_MODEL DATA=$T_DATA STEPS=3 BATCH_PER_RANK=1 DELTATUNE=$BIN \
      bash "$SRC/jobs/scaling.sh" --mpirun --ranks "1 2" --out "$S/scaling" 2>&1)
rc=$?
[[ $rc -eq 0 ]] && ok "scaling.sh --mpirun" || fail "scaling.sh --mpirun: exit $rc: $out"
r=$S/scaling
for d in strong-r1 strong-r2 weak-r1 weak-r2; do
  [[ -s "$r/$d/result.json" ]] || fail "scaling: no $d/result.json"
done
rows=$(grep -cE '^\| (strong|weak) \| 1 \| [12] \| [0-9]+ \| [0-9]+ \| [0-9.]+ \| [0-9]+ \|' "$r/report.md" 2>/dev/null)
[[ "$rows" == 4 ]] && ok "scaling: report.md table has 4 rows" || fail "scaling: report.md has '$rows' rows"
/usr/bin/python3 - "$r" <<'EOF' && ok "scaling: results.json (launcher, batch, memory per rank)" || fail "scaling: results.json"
import json, sys
pts = {p["dir"]: p for p in json.load(open(sys.argv[1] + "/results.json"))}
assert all(p["ok"] and p["launcher"] == "mpirun" for p in pts.values()), pts
assert pts["strong-r1"]["batch_size"] == 2 and pts["strong-r2"]["batch_size"] == 2
assert pts["weak-r1"]["batch_size"] == 1 and pts["weak-r2"]["batch_size"] == 2
assert all(len(p["memory"]) == p["ranks"] and p["max_rss_mib_max"] > 1 for p in pts.values())
assert abs(pts["strong-r1"]["efficiency"] - 1) < 1e-12
EOF
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  for p in throughput efficiency memory; do
    [[ "$(head -c 4 "$r/scaling-$p.png" 2>/dev/null | tail -c 3)" == PNG ]] && ok "scaling: scaling-$p.png" ||
      fail "scaling: no scaling-$p.png"
  done
else
  echo "note: python3-matplotlib is missing: the PNG plots are not checked"
fi
# a batch that does not divide among the ranks is refused before any run
out=$(MODEL=$T_MODEL DATA=$T_DATA BATCH=3 DELTATUNE=$BIN bash "$SRC/jobs/scaling.sh" --mpirun --study strong \
      --ranks "1 2" --out "$S/bad" 2>&1)
rc=$?
[[ $rc -eq 2 && "$out" == *"does not divide"* ]] && ok "scaling.sh refuses BATCH=3 on 2 ranks" ||
  fail "scaling.sh BATCH=3: exit $rc: $out"

(( fails == 0 )) || { echo "$fails failure(s)"; exit 1; }
echo PASSED
