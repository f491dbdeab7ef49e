#!/usr/bin/env bash
# Peak memory of one MPI rank: run as the launched program, in front of the
# real one (srun ... peakmem.sh DIR deltatune train ...), it runs the command
# and writes DIR/rank-R.txt with the rank's peak resident set size:
#   max_rss_kib N
#   source gnu-time | vmhwm-sampled
#   host NAME
# R is the MPI rank (SLURM_PROCID under srun, OMPI_COMM_WORLD_RANK under
# Open MPI's mpirun, PMIX_RANK otherwise). With GNU time (/usr/bin/time) the
# peak is the kernel's ru_maxrss of the process; without it, VmHWM of
# /proc/PID/status is read every 0.2 s (a peak reached in the last 0.2 s of
# the run can be missed). PEAKMEM_TIME names another GNU time (an empty or
# missing one selects the sampling). Exits with the command's status.
set -uo pipefail
[[ $# -ge 2 ]] || { echo "usage: peakmem.sh DIR COMMAND [ARGS...]" >&2; exit 2; }
dir=$1
shift
rank=${SLURM_PROCID:-${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-0}}}
mkdir -p "$dir"
file="$dir/rank-$rank.txt"

gnu_time=${PEAKMEM_TIME-/usr/bin/time}
if [[ -n "$gnu_time" && -x "$gnu_time" ]]; then
  "$gnu_time" -f 'max_rss_kib %M' -o "$file.tmp" "$@"
  rc=$?
  # GNU time puts "Command exited with non-zero status N" first on failure
  { grep '^max_rss_kib' "$file.tmp"; echo "source gnu-time"; echo "host $(hostname -s)"; } > "$file"
  rm -f "$file.tmp"
  exit "$rc"
fi

"$@" &
pid=$!
hwm=0
while kill -0 "$pid" 2>/dev/null; do
  v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  [[ -n "$v" ]] && hwm=$v
  sleep 0.2
done
wait "$pid"
rc=$?
printf 'max_rss_kib %s\nsource vmhwm-sampled\nhost %s\n' "$hwm" "$(hostname -s)" > "$file"
exit "$rc"
