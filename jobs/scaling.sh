#!/usr/bin/env bash
# Strong- and weak-scaling study of `deltatune train` over rank counts (and
# node counts): one run per point, each writing DIR/<study>-r<ranks>/
# result.json (DIR/<study>-n<nodes>-r<ranks>/ with --nodes), then
# scaling_report.py builds DIR/report.md and the PNG plots.
#
#   jobs/scaling.sh [options] [-- deltatune train options]
#     --mpirun           run the points one after another here with mpirun
#                        (no Slurm); default: submit one scaling.sbatch job per point
#     --study S          strong | weak | both                     [both]
#     --ranks "R..."     rank counts                              [1 2 4 ... up to the cores]
#     --nodes "N..."     node counts instead (Slurm): N nodes x --ranks-per-node
#     --ranks-per-node K ranks on each node with --nodes          [cores of a node]
#     --out DIR          results folder                           [out/scaling-DATE]
#     --wait             (Slurm) wait for the jobs, then write the report
#     --timeout S        (Slurm, --wait) give up after S seconds  [3600]
#     --sbatch-args "A"  more sbatch options for every job (split on whitespace)
# Environment: MODEL [synthetic:gpt2-small], DATA [synthetic:rows=4096,len=128],
#   METHOD [lora], STEPS [10], BATCH strong-scaling global batch [BATCH_PER_RANK
#   x the largest rank count], BATCH_PER_RANK weak-scaling rows per rank [2],
#   DT_EXTRA, DELTATUNE, PYTHON, MPIRUN_ARGS (--mpirun: the mpirun options,
#   instead of --bind-to core, or --oversubscribe when the ranks outnumber the cores).
# Strong scaling keeps the global batch fixed; weak scaling keeps the rows per
# rank fixed (global batch = BATCH_PER_RANK x ranks), so both end at the same
# point. The global batch must divide evenly among the ranks.
set -euo pipefail
DT_SCRIPT=scaling.sh
DT_JOBS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$DT_JOBS/common.sh"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
mode=slurm study=both ranks="" nodes="" rpn="" out="" wait=0 timeout=3600 sbatch_args=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --mpirun) mode=mpirun ;;
    --study) study=$2; shift ;;
    --ranks) ranks=$2; shift ;;
    --nodes) nodes=$2; shift ;;
    --ranks-per-node) rpn=$2; shift ;;
    --out) out=$2; shift ;;
    --wait) wait=1 ;;
    --timeout) timeout=$2; shift ;;
    --sbatch-args) sbatch_args=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    *) dt_die "unknown option '$1' (jobs/scaling.sh --help)" ;;
  esac
  shift
done
train_opts=("$@")
case "$study" in strong) studies=(strong) ;; weak) studies=(weak) ;; both) studies=(strong weak) ;;
  *) dt_die "--study: '$study' is not strong, weak or both" ;; esac

# cores of one node: Slurm's count for the partition's nodes, else nproc
if [[ "$mode" == slurm ]]; then
  command -v sbatch >/dev/null || dt_die "sbatch not found: no Slurm here (use --mpirun)"
  cores=$(sinfo -h -o %c 2>/dev/null | sort -n | head -n 1)
  total=$(sinfo -h -o %C 2>/dev/null | awk -F/ '{print $4; exit}')
  [[ -n "$cores" ]] || dt_die "sinfo gave no nodes: is Slurm up (SLURM_CONF)?"
else
  [[ -n "$nodes" ]] && dt_die "--nodes needs Slurm (mpirun runs here, on one node)"
  cores=$(nproc) total=$cores
fi

# the points: "nodes ranks" pairs
points=()
if [[ -n "$nodes" ]]; then
  rpn=${rpn:-$cores}
  for n in $nodes; do points+=("$n $((n * rpn))"); done
else
  if [[ -z "$ranks" ]]; then
    for ((r = 1; r <= total; r *= 2)); do ranks+="$r "; done
  fi
  for r in $ranks; do points+=("0 $r"); done
fi
maxr=0
for p in "${points[@]}"; do r=${p#* }; (( r > maxr )) && maxr=$r; done

per_rank=${BATCH_PER_RANK:-2}
strong_batch=${BATCH:-$((per_rank * maxr))}
for p in "${points[@]}"; do
  r=${p#* }
  (( strong_batch % r == 0 )) || [[ "$study" == weak ]] ||
    dt_die "BATCH=$strong_batch does not divide among $r ranks: choose a multiple of every rank count"
done

model=${MODEL:-synthetic:gpt2-small}
data=${DATA:-synthetic:rows=4096,len=128}
out=${out:-out/scaling-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
dt_find_binary
common=(--model "$model" --data "$data" --method "${METHOD:-lora}" --steps "${STEPS:-10}")
dt_has_opt log-every "${train_opts[@]}" || common+=(--log-every "${STEPS:-10}")
{
  echo "# scaling study: $(date -u +%FT%TZ) on $(hostname -s), $mode"
  echo "# $0 --study $study ${nodes:+--nodes \"$nodes\"} --ranks \"$ranks\" --out $out -- ${train_opts[*]}"
  echo "# MODEL=$model DATA=$data METHOD=${METHOD:-lora} STEPS=${STEPS:-10} BATCH=$strong_batch BATCH_PER_RANK=$per_rank"
  echo "# binary $DT_BIN; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-} OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
} > "$out/study.txt"

export DT_JOBS   # scaling.sbatch sources common.sh from here
read -r -a sbatch_extra <<< "$sbatch_args"
jobs=()
status=0
for s in "${studies[@]}"; do
  for p in "${points[@]}"; do
    n=${p% *} r=${p#* }
    if [[ "$s" == strong ]]; then b=$strong_batch; else b=$((per_rank * r)); fi
    opts=("${common[@]}" --batch-size "$b" "${train_opts[@]}")
    if [[ "$mode" == mpirun ]]; then
      run="$out/$s-r$r"
      read -r -a margs <<< "${MPIRUN_ARGS:-}"
      if [[ -z "${MPIRUN_ARGS:-}" ]]; then
        if (( r > cores )); then margs=(--oversubscribe); else margs=(--bind-to core); fi
      fi
      for v in OPENBLAS_NUM_THREADS OPENBLAS_CORETYPE OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM; do
        [[ -n "${!v:-}" ]] && margs+=(-x "$v")
      done
      rc=0
      dt_scaling_point "$run" "$s" mpirun "$r" 1 "${opts[@]}" -- mpirun -np "$r" "${margs[@]}" || rc=$?
      if (( ${DT_TERMINATED:-0} )); then
        # SIGTERM (timeout, kill, the end of an allocation): the ranks stopped
        # at a step boundary; the points not yet run are not started
        status=1
        echo "$DT_SCRIPT: $s r=$r stopped by SIGTERM; the remaining points are not run" >&2
        break 2
      elif (( rc )); then
        status=1
        echo "$DT_SCRIPT: $s r=$r failed (exit $rc); see $run/train.log" >&2
      else
        echo "$DT_SCRIPT: $s r=$r: $(grep -m1 '^summary: median' "$run/train.log" | sed 's/^summary: //')"
      fi
    else
      run="$out/$s-r$r"
      geo=(--ntasks "$r")
      (( n > 0 )) && run="$out/$s-n$n-r$r"
      (( n > 0 )) && geo+=(--nodes "$n" --ntasks-per-node "$rpn")
      mkdir -p "$run"
      id=$(SCALING_RUN=$run SCALING_STUDY=$s DELTATUNE=$DT_BIN \
           sbatch --parsable --export=ALL --job-name "dt-scaling-$s-r$r" --output "$run/slurm-%j.out" \
           "${geo[@]}" "${sbatch_extra[@]}" "$DT_JOBS/scaling.sbatch" "${opts[@]}")
      id=${id%%;*}
      jobs+=("$id")
      echo "$DT_SCRIPT: submitted $s r=$r: job $id -> $run"
    fi
  done
done

report=("$(dt_python)" "$DT_JOBS/scaling_report.py" report "$out")
if [[ "$mode" == slurm ]]; then
  if (( ! wait )); then
    echo "$DT_SCRIPT: ${#jobs[@]} jobs submitted; when they are done: ${report[*]}"
    exit 0
  fi
  ids=$(IFS=,; echo "${jobs[*]}")
  deadline=$((SECONDS + timeout))
  while [[ -n "$(squeue -h -j "$ids" -o %i 2>/dev/null)" ]]; do
    (( SECONDS < deadline )) || dt_die "jobs $ids still queued or running after ${timeout}s" 1
    sleep 1
  done
  for id in "${jobs[@]}"; do
    state=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    [[ -z "$state" || "$state" == COMPLETED ]] || { status=1; echo "$DT_SCRIPT: job $id ended $state" >&2; }
  done
fi
"${report[@]}" || status=1
exit "$status"
