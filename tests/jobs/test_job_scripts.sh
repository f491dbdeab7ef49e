#!/usr/bin/env bash
# The job scripts without Slurm (tests/slurm/ runs them under a real one):
#   - the batch scripts refuse to run outside Slurm (exit 2, a message), and
#     array.sbatch outside an array job;
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
unset SLURM_JOB_ID SLURM_ARRAY_TASK_ID MODEL DATA METHOD STEPS BATCH LR TP OUT DT_EXTRA

# -- outside Slurm
for f in finetune array scaling; do
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
