# shellcheck shell=bash
# Shared by the batch scripts (finetune, array, sweep and scaling .sbatch)
# and the scaling driver (scaling.sh): sourced, never run. Finds the
# environment (env.sh) and the deltatune binary, builds a `deltatune train`
# command line from environment variables and arguments, and launches it.
#
# The job scripts' folder DT_JOBS must be set before sourcing: in the
# repository it is jobs/, installed it is PREFIX/share/deltatune/jobs.

# dt_die MESSAGE [CODE]: one message on stderr, exit CODE (default 2: usage).
dt_die() {
  echo "${DT_SCRIPT:-deltatune job}: $1" >&2
  exit "${2:-2}"
}

# The repository root when the scripts run from a checkout (jobs/ beside
# scripts/env.sh), empty when they are installed.
DT_REPO=""
[[ -f "$DT_JOBS/../scripts/env.sh" ]] && DT_REPO=$(cd "$DT_JOBS/.." && pwd)

# The environment of scripts/env.sh: installed beside the jobs as env.sh.
if [[ -f "$DT_JOBS/env.sh" ]]; then
  source "$DT_JOBS/env.sh"
elif [[ -n "$DT_REPO" ]]; then
  source "$DT_REPO/scripts/env.sh"
else
  dt_die "cannot find env.sh beside $DT_JOBS or in the repository's scripts/"
fi

# dt_find_binary: set DT_BIN. $DELTATUNE if set; else, installed, the binary
# installed with these scripts (PREFIX/bin), in the repository its build
# folder ($DT_BUILD_DIR, default build, relative to the repository); else
# deltatune on PATH (a loaded module).
dt_find_binary() {
  local c here
  if [[ -n "${DELTATUNE:-}" ]]; then
    [[ -x "$DELTATUNE" && ! -d "$DELTATUNE" ]] || dt_die "DELTATUNE=$DELTATUNE is not an executable"
  fi
  if [[ -n "$DT_REPO" ]]; then
    here=${DT_BUILD_DIR:-build}/deltatune
    [[ "$here" == /* ]] || here=$DT_REPO/$here
  else
    here=$DT_JOBS/../../../bin/deltatune
  fi
  for c in "${DELTATUNE:-}" "$here" "$(command -v deltatune 2>/dev/null || true)"; do
    if [[ -n "$c" && -x "$c" && ! -d "$c" ]]; then
      DT_BIN=$(cd "$(dirname "$c")" && pwd)/$(basename "$c")
      return 0
    fi
  done
  dt_die "cannot find the deltatune binary: set DELTATUNE=/path/to/deltatune, build the repository, or load the module"
}

# One thread per rank unless the job gave each task more cores.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}

# dt_has_opt NAME ARGS...: true when ARGS hold --NAME or --NAME=...
dt_has_opt() {
  local name=$1 a
  shift
  for a in "$@"; do
    [[ "$a" == "--$name" || "$a" == "--$name="* ]] && return 0
  done
  return 1
}

# dt_opt_value NAME ARGS...: print the value of --NAME in ARGS (--NAME V or
# --NAME=V); false when absent.
dt_opt_value() {
  local name=$1
  shift
  while [[ $# -gt 0 ]]; do
    case "$1" in
      "--$name") [[ $# -gt 1 ]] && { echo "$2"; return 0; } ;;
      "--$name="*) echo "${1#--"$name"=}"; return 0 ;;
    esac
    shift
  done
  return 1
}

# dt_train_args ARGS...: set DT_ARGS to the `deltatune train` options: ARGS
# first, then, for each option that ARGS do not give, its value from the
# environment (deltatune refuses an option given twice, so arguments win):
#   MODEL DATA METHOD STEPS BATCH LR LOG_EVERY SEED -> --model --data ...
#   TP  -> --tp, only when TP is set and not 1 (tensor parallelism)
#   OUT -> --out, and --metrics OUT/metrics.jsonl (an --out in ARGS sets OUT)
#   DT_EXTRA: more options, split on whitespace
# MODEL and DATA default to the repository's tiny-gpt2 and supersense task
# when the scripts run from the repository; installed, they are required.
dt_train_args() {
  DT_ARGS=("$@")
  local extra=()
  [[ -n "${DT_EXTRA:-}" ]] && read -r -a extra <<< "$DT_EXTRA"
  DT_ARGS+=("${extra[@]}")
  local model=${MODEL:-} data=${DATA:-}
  if [[ -n "$DT_REPO" ]]; then
    model=${model:-$DT_REPO/data/models/tiny-gpt2}
    data=${data:-$DT_REPO/data/tasks/supersense/train.safetensors}
  fi
  local pair name value
  for pair in "model=$model" "data=$data" "method=${METHOD:-lora}" "steps=${STEPS:-200}" \
              "batch-size=${BATCH:-32}" "lr=${LR:-2e-3}" "log-every=${LOG_EVERY:-20}" \
              "seed=${SEED:-}"; do
    name=${pair%%=*} value=${pair#*=}
    dt_has_opt "$name" "${DT_ARGS[@]}" && continue
    if [[ -z "$value" ]]; then
      [[ "$name" == model || "$name" == data ]] &&
        dt_die "no --$name: set ${name^^} or pass --$name (there is no default outside the repository)"
      continue
    fi
    DT_ARGS+=("--$name" "$value")
  done
  if [[ -n "${TP:-}" && "${TP}" != 1 ]] && ! dt_has_opt tp "${DT_ARGS[@]}"; then
    DT_ARGS+=(--tp "$TP")
  fi
  local given
  given=$(dt_opt_value out "${DT_ARGS[@]}") && OUT=$given
  if [[ -n "${OUT:-}" ]]; then
    dt_has_opt out "${DT_ARGS[@]}" || DT_ARGS+=(--out "$OUT")
    dt_has_opt metrics "${DT_ARGS[@]}" || DT_ARGS+=(--metrics "$OUT/metrics.jsonl")
  fi
  return 0
}

# dt_resume_args: add --resume to DT_ARGS unless they give it: a job that
# Slurm starts again (requeued after a checkpoint on a signal, preempted,
# after a node failure) continues from the newest checkpoint in OUT; a first
# run starts at step 0.
dt_resume_args() {
  dt_has_opt resume "${DT_ARGS[@]}" || DT_ARGS+=(--resume)
  return 0
}

# The exit status of deltatune when SIGTERM or SIGUSR1 stopped it at a step
# boundary after writing a checkpoint (DT_EINTERRUPT, docs/usage.md).
DT_EXIT_INTERRUPTED=9

# dt_log MESSAGE: a time-stamped line on stderr.
dt_log() { echo "$(date "+%F %T") ${DT_SCRIPT:-job}: $*" >&2; }

# dt_launch COMMAND...: run the job step in the background and wait for it,
# so that a signal to the batch shell is seen at once (bash runs a trap only
# after the foreground command ends). Returns the step's exit status.
#
# Signals to the batch shell:
#   SIGUSR1  Slurm's time-limit warning (#SBATCH --signal=B:USR1@SECONDS), or
#            `scancel --batch --signal=USR1 JOBID` by hand. With
#            DT_FORWARD_SIGNALS=1 (finetune.sbatch, array.sbatch) it is
#            forwarded to the step (kill -USR1 of srun, which passes it to
#            every rank): deltatune writes a checkpoint at the next step
#            boundary and exits with 9, and dt_finish requeues the job.
#            Otherwise (a scaling point: a timing is not resumed) it is
#            logged and the run goes on. Without a trap SIGUSR1 would kill
#            the batch shell, and the job with it.
#   SIGTERM  Slurm ends the job (scancel, time limit, preemption) and signals
#            the ranks itself: they checkpoint at the next step boundary and
#            stop. The shell logs it, waits for the step and remembers it
#            (DT_TERMINATED=1): dt_finish does not bring such a job back.
#
# On several nodes the ranks that stop with 9 leave MPI_Finalize at slightly
# different times, and srun --kill-on-bad-exit ends the late ones when the
# first has exited 9 (the step then ends with 137 or 143, not 9; seen on the
# virtual cluster, tests/cluster). So after a forwarded SIGUSR1, a step that
# was ended that way and left a checkpoint newer than its start in OUT counts
# as stopped with 9 (the checkpoint is written and agreed on before any rank
# exits; --resume verifies it).
dt_launch() {
  local pid rc start
  DT_SIGNALLED=0 DT_TERMINATED=0 DT_STEP_PID="" DT_FORWARDED=0
  start=$(mktemp "${TMPDIR:-/tmp}/dt-launch.XXXXXX")
  trap '_dt_on_usr1' USR1
  trap '_dt_on_term' TERM
  "$@" &
  pid=$!
  DT_STEP_PID=$pid
  while :; do
    DT_SIGNALLED=0 rc=0
    wait "$pid" || rc=$?
    # a trapped signal interrupts wait (status > 128) while the step goes on
    (( DT_SIGNALLED )) || break
  done
  trap - USR1 TERM
  DT_STEP_PID=""
  if (( DT_FORWARDED && (rc == 137 || rc == 143) )) && [[ -n "${OUT:-}" && -d "$OUT" ]] &&
     [[ -n "$(find "$OUT" -name 'ckpt-*.nc' -newer "$start" -print -quit 2>/dev/null)" ]]; then
    dt_log "the step ended with $rc after the forwarded SIGUSR1, and wrote a checkpoint in $OUT: srun ended ranks still leaving MPI_Finalize when the first had exited $DT_EXIT_INTERRUPTED; taken as $DT_EXIT_INTERRUPTED"
    rc=$DT_EXIT_INTERRUPTED
  fi
  rm -f "$start"
  return "$rc"
}
_dt_on_usr1() {
  DT_SIGNALLED=1
  if [[ "${DT_FORWARD_SIGNALS:-0}" == 1 && -n "${DT_STEP_PID:-}" ]]; then
    dt_log "SIGUSR1 (the time-limit warning): forwarded to the ranks, which write a checkpoint at the next step boundary and stop; the job then requeues itself"
    kill -USR1 "$DT_STEP_PID" 2>/dev/null && DT_FORWARDED=1 ||
      dt_log "could not forward SIGUSR1 to the job step (pid $DT_STEP_PID)"
  else
    dt_log "SIGUSR1, the time-limit warning: this job does not checkpoint on it; the run goes on"
  fi
}
_dt_on_term() {
  DT_SIGNALLED=1 DT_TERMINATED=1
  if [[ -n "${SLURM_JOB_ID:-}" ]]; then
    dt_log "SIGTERM: Slurm is ending the job; the ranks (signalled by Slurm too) write a checkpoint at the next step boundary and stop"
  else
    dt_log "SIGTERM: stopping; ranks that got it too write a checkpoint at the next step boundary and stop"
  fi
}

# dt_finish RC: end the batch script with deltatune's exit status RC. On 9
# (stopped by a signal after writing a checkpoint) the job requeues itself
# (`scontrol requeue`; #SBATCH --requeue) and, started again, continues with
# --resume from that checkpoint; the output file is appended to
# (#SBATCH --open-mode=append). Not when the batch shell got SIGTERM: Slurm
# is cancelling or ending the job, which must not come back by itself.
dt_finish() {
  local rc=$1
  if [[ "$rc" == "$DT_EXIT_INTERRUPTED" ]]; then
    if (( ${DT_TERMINATED:-0} )); then
      dt_log "deltatune wrote a checkpoint and stopped (exit $rc) while Slurm ends the job: not requeued; submit the same job again (or scontrol requeue $SLURM_JOB_ID) to continue from ${OUT:-its --out}"
      exit "$rc"
    fi
    dt_log "deltatune wrote a checkpoint and stopped (exit $rc): requeueing job $SLURM_JOB_ID (restart $(( ${SLURM_RESTART_COUNT:-0} + 1 ))); it continues from ${OUT:-its --out}"
    if scontrol requeue "$SLURM_JOB_ID"; then
      exit 0
    fi
    dt_log "scontrol requeue $SLURM_JOB_ID failed (submitted with --no-requeue, or requeueing disabled?): submit the same job again to continue from ${OUT:-its --out}"
  fi
  exit "$rc"
}

# dt_python: the python3 for the scaling records and report: $PYTHON, else
# Debian's /usr/bin/python3 (has python3-matplotlib), else python3 on PATH.
dt_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"
  elif [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3
  else command -v python3 || dt_die "no python3 for the scaling records"
  fi
}

# dt_scaling_point DIR STUDY LAUNCHER RANKS NODES TRAIN_OPTIONS... -- LAUNCH...
# One point of a scaling study: LAUNCH... (srun ... or mpirun ...) runs
# deltatune train with TRAIN_OPTIONS (completed from the environment as in
# dt_train_args) on RANKS ranks, each under peakmem.sh; the output goes to
# DIR/train.log, the metrics to DIR/metrics.jsonl, the peak memory of each
# rank to DIR/mem/, and scaling_report.py record writes DIR/result.json,
# also when the run failed (with its exit status). Returns the run's status.
dt_scaling_point() {
  local dir=$1 study=$2 launcher=$3 ranks=$4 nodes=$5 opts=() rc=0 OUT=""
  shift 5
  while [[ $# -gt 0 && "$1" != -- ]]; do opts+=("$1"); shift; done
  [[ $# -gt 1 ]] || dt_die "dt_scaling_point: no launch command after --"
  shift
  mkdir -p "$dir"
  rm -rf "$dir/mem" "$dir/result.json" "$dir/metrics.jsonl"
  dt_has_opt metrics "${opts[@]}" || opts+=(--metrics "$dir/metrics.jsonl")
  dt_train_args "${opts[@]}"
  echo "${DT_SCRIPT:-scaling}: $study scaling, $ranks ranks on $nodes node(s): $* $DT_BIN train ${DT_ARGS[*]}" > "$dir/command.txt"
  dt_launch "$@" bash "$DT_JOBS/peakmem.sh" "$dir/mem" "$DT_BIN" train "${DT_ARGS[@]}" > "$dir/train.log" 2>&1 || rc=$?
  "$(dt_python)" "$DT_JOBS/scaling_report.py" record --dir "$dir" --study "$study" \
    --launcher "$launcher" --ranks "$ranks" --nodes "$nodes" --rc "$rc" \
    --job-id "${SLURM_JOB_ID:-}" -- "${DT_ARGS[@]}"
  return "$rc"
}
