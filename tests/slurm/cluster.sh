# shellcheck shell=bash
# A throwaway single-node Slurm cluster for the tests (sourced): munged,
# slurmctld and slurmd on this machine, every file of theirs (key, socket,
# state, spool, logs, pid files) under one scratch folder, on ports of their
# own, so that a system munge or Slurm is neither used nor disturbed. Needs
# root (munged runs as the munge user, slurmd as root) and the Debian
# packages slurm-wlm and munge (scripts/install-deps.sh).
#
#   dt_cluster_start DIR   start; exports SLURM_CONF. On failure returns 1
#                          with the reason in DT_CLUSTER_WHY.
#   dt_cluster_stop        cancel the jobs, stop the daemons (TERM, then KILL
#                          after 5 s) and any process left from the jobs.
#                          Safe to call twice, and when start failed half-way.
# dt_cluster_start also leaves a watchdog that stops the cluster when the
# shell that started it is gone without stopping it (killed by a ctest
# timeout, say): the daemons fork into the background, so killing the test's
# process tree would not reach them.

DT_CLUSTER_DIR=""

# dt_cluster_why REASON [LOG...]: set DT_CLUSTER_WHY (with the logs' tails)
dt_cluster_why() {
  DT_CLUSTER_WHY=$1
  shift
  local f
  for f in "$@"; do
    [[ -s "$f" ]] && DT_CLUSTER_WHY+=$'\n'"--- $f:"$'\n'"$(tail -n 8 "$f")"
  done
  return 1
}

# dt_free_ports N: N different TCP ports that can be bound now on every
# address, below the kernel's range of ephemeral ports (the MPI tests' many
# short connections use those, and a port held by a connection cannot be
# bound for listening)
dt_free_ports() {
  /usr/bin/python3 - "$1" <<'PY'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
for p in random.sample(range(10000, max(low, 10001)), 200):
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", p))
        ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
    if len(ports) == int(sys.argv[1]):
        print(*ports)
        sys.exit(0)
sys.exit(1)
PY
}

# dt_wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds
dt_wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    (( SECONDS < deadline )) || return 1
    sleep 0.1
  done
}

# dt_munge_start DIR: munged as the munge user, its key, socket, pid and
# log files under DIR/munge (DIR and its parent must be enterable by all)
dt_munge_start() {
  local d=$1
  # munge: socket folder readable by all, key and logs private to munge;
  # the munge user must be able to reach them (DIR and its parent: 0711+)
  mkdir -p "$d"
  chmod 0755 "$d"
  [[ "$(stat -c %A "$(dirname "$d")")" == d??[xs]??[xs]??[xt]* ]] ||
    { dt_cluster_why "the munge user cannot enter $(dirname "$d") (mode $(stat -c %a "$(dirname "$d")"))"; return 1; }
  install -d -o munge -g munge -m 0755 "$d/munge"
  install -d -o munge -g munge -m 0700 "$d/munge/private"
  /usr/sbin/mungekey --create --keyfile="$d/munge/private/munge.key" >/dev/null 2>&1 ||
    { dt_cluster_why "mungekey failed"; return 1; }
  chown munge:munge "$d/munge/private/munge.key"
  chmod 0400 "$d/munge/private/munge.key"
  runuser -u munge -- /usr/sbin/munged --socket="$d/munge/munge.sock" \
    --key-file="$d/munge/private/munge.key" --pid-file="$d/munge/munged.pid" \
    --log-file="$d/munge/private/munged.log" --seed-file="$d/munge/private/munged.seed" ||
    { dt_cluster_why "munged did not start" "$d/munge/private/munged.log"; return 1; }
  dt_wait_for 5 test -s "$d/munge/munged.pid" || { dt_cluster_why "munged wrote no pid file"; return 1; }
}

dt_cluster_start() {
  local d=$1 p
  DT_CLUSTER_DIR=$d
  for p in munged mungekey slurmctld slurmd sbatch squeue sinfo scontrol scancel runuser; do
    command -v "$p" >/dev/null 2>&1 || [[ -x "/usr/sbin/$p" ]] ||
      { dt_cluster_why "$p is not installed (scripts/install-deps.sh installs slurm-wlm and munge)"; return 1; }
  done
  [[ $(id -u) -eq 0 ]] || { dt_cluster_why "needs root (munged runs as the munge user, slurmd as root)"; return 1; }
  id munge >/dev/null 2>&1 || { dt_cluster_why "no munge user (the munge package creates it)"; return 1; }

  dt_cluster_watchdog "$$" "$d"
  dt_munge_start "$d" || return 1

  # slurm.conf: one node, this machine, at least 2 CPUs (config_overrides:
  # the configured CPUs are used even when the machine has fewer)
  local host cpus mem attempt
  host=$(hostname -s)
  cpus=$(nproc)
  (( cpus >= 2 )) || cpus=2
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mkdir -p "$d/slurm/state" "$d/slurm/spool" "$d/slurm/log" "$d/slurm/tmp"
  export SLURM_CONF=$d/slurm/slurm.conf
  # a port taken between the check and the daemon's bind: again, new ports
  for attempt in 1 2 3; do
    dt_slurm_up "$d" "$host" "$cpus" "${mem:-1024}" && return 0
    grep -qs 'Address already in use' "$d/slurm/log/slurmctld.log" "$d/slurm/log/slurmd.log" || return 1
    local pids=()
    mapfile -t pids < <(dt_cluster_daemons | grep -vxF "$(cat "$d/munge/munged.pid")")
    (( ${#pids[@]} )) && dt_stop_pids "${pids[@]}"
    for f in slurmctld slurmd; do mv -f "$d/slurm/log/$f.log" "$d/slurm/log/$f.log.$attempt" 2>/dev/null; done
    rm -f "$d/slurm/slurmctld.pid" "$d/slurm/slurmd.pid"
  done
  return 1
}

# dt_slurm_conf_common DIR: the slurm.conf lines every test cluster shares
# (this one and tests/cluster/vcluster.sh's), munge's socket in DIR/munge
dt_slurm_conf_common() {
  cat <<EOF
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start
# again (default 120 s); the preemption test requeues jobs
AuthInfo=socket=$1/munge/munge.sock,cred_expire=5
MpiDefault=pmix
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
# start the next job about 1 s after one ends (the defaults take about 3 s)
SchedulerParameters=sched_min_interval=0,batch_sched_delay=0
EOF
}

# dt_slurm_up DIR HOST CPUS MEM: write slurm.conf with new ports, start
# slurmctld and slurmd, wait until the node is idle
dt_slurm_up() {
  local d=$1 host=$2 cpus=$3 mem=$4 ports ctld_pid
  ports=$(dt_free_ports 2) || { dt_cluster_why "no free TCP ports"; return 1; }
  cat > "$d/slurm/slurm.conf" <<EOF
# written by tests/slurm/cluster.sh
ClusterName=deltatune-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${ports% *}
SlurmdPort=${ports#* }
$(dt_slurm_conf_common "$d")
StateSaveLocation=$d/slurm/state
SlurmdSpoolDir=$d/slurm/spool
# job ids and the jobs' temporary files (the PMIx plugin's sockets are named
# after the job id under TmpFS) apart from any other cluster on this machine
TmpFS=$d/slurm/tmp
FirstJobId=$((1000 + RANDOM % 900000))
SlurmctldPidFile=$d/slurm/slurmctld.pid
SlurmdPidFile=$d/slurm/slurmd.pid
SlurmctldLogFile=$d/slurm/log/slurmctld.log
SlurmdLogFile=$d/slurm/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
  slurmctld -f "$SLURM_CONF" -c -i >"$d/slurm/log/slurmctld.stderr" 2>&1 ||
    { dt_cluster_why "slurmctld did not start" "$d/slurm/log/slurmctld.stderr" "$d/slurm/log/slurmctld.log"; return 1; }
  dt_wait_for 5 test -s "$d/slurm/slurmctld.pid" || { dt_cluster_why "slurmctld wrote no pid file" "$d/slurm/log/slurmctld.log"; return 1; }
  ctld_pid=$(cat "$d/slurm/slurmctld.pid")
  slurmd -f "$SLURM_CONF" -N "$host" >"$d/slurm/log/slurmd.stderr" 2>&1 ||
    { dt_cluster_why "slurmd did not start" "$d/slurm/log/slurmd.stderr" "$d/slurm/log/slurmd.log"; return 1; }
  dt_wait_for 5 test -s "$d/slurm/slurmd.pid" || { dt_cluster_why "slurmd wrote no pid file" "$d/slurm/log/slurmd.log"; return 1; }
  # idle, or give up early when slurmctld has died (sinfo would then retry
  # for half a minute)
  dt_wait_for 20 dt_idle_or_dead "$ctld_pid"
  dt_alive "$ctld_pid" ||
    { dt_cluster_why "slurmctld exited" "$d/slurm/log/slurmctld.log"; return 1; }
  dt_node_idle ||
    { dt_cluster_why "the node did not become idle in 20 s (sinfo: $(sinfo -h -o '%T %E' 2>&1 | head -n 2))" \
        "$d/slurm/log/slurmctld.log" "$d/slurm/log/slurmd.log"; return 1; }
}

dt_node_idle() { [[ "$(sinfo -h -o %T 2>/dev/null)" == idle ]]; }
dt_idle_or_dead() { ! dt_alive "$1" || dt_node_idle; }

# dt_alive PID: the process exists and is not a zombie
dt_alive() {
  [[ -r "/proc/$1/status" ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# dt_stop_pids PID...: TERM, wait up to 5 s, then KILL what is left
dt_stop_pids() {
  local pid left
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 50); do
    left=0
    for pid in "$@"; do dt_alive "$pid" && left=1; done
    (( left )) || return 0
    sleep 0.1
  done
  for pid in "$@"; do dt_alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
  return 0
}

# dt_cluster_leftovers: pids of processes started by this cluster's jobs
# (slurmstepd and the job's programs inherit SLURM_CONF=<our slurm.conf>)
dt_cluster_leftovers() {
  local f pid
  for f in /proc/[0-9]*/environ; do
    pid=${f#/proc/}
    pid=${pid%/environ}
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    tr '\0' '\n' 2>/dev/null < "$f" | grep -qxF "SLURM_CONF=$DT_CLUSTER_DIR/slurm/slurm.conf" && echo "$pid"
  done
  return 0
}

# dt_cluster_daemons: pids of our daemons, newest first: from the pid files,
# and only processes whose command line names our folder (a pid file can
# outlive its daemon, and the pid be reused)
dt_cluster_daemons() {
  local f pid
  for f in slurm/slurmd.pid slurm/slurmctld.pid munge/munged.pid; do
    pid=$(cat "$DT_CLUSTER_DIR/$f" 2>/dev/null) || continue
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF "$DT_CLUSTER_DIR/" && echo "$pid"
  done
  return 0
}

dt_cluster_stop() {
  [[ -n "$DT_CLUSTER_DIR" && -d "$DT_CLUSTER_DIR" ]] || { DT_CLUSTER_DIR=""; return 0; }
  local pids=()
  if [[ -s "$DT_CLUSTER_DIR/slurm/slurmctld.pid" && -n "$(dt_cluster_daemons)" ]]; then
    export SLURM_CONF=$DT_CLUSTER_DIR/slurm/slurm.conf
    scancel --user "$(id -un)" >/dev/null 2>&1
    dt_wait_for 3 test -z "$(squeue -h -o %i 2>/dev/null)" || true
  fi
  mapfile -t pids < <(dt_cluster_daemons)
  (( ${#pids[@]} )) && dt_stop_pids "${pids[@]}"
  mapfile -t pids < <(dt_cluster_leftovers)
  (( ${#pids[@]} )) && dt_stop_pids "${pids[@]}"
  DT_CLUSTER_DIR=""
  return 0
}

# dt_cluster_watchdog OWNER DIR: a detached process (its own session, parent
# init, no inherited output) that waits until process OWNER ends, then stops
# the cluster of DIR if it still runs; it ends with DIR's removal too.
dt_cluster_watchdog() {
  ( setsid bash -c 'source "$0"; DT_CLUSTER_DIR=$2
      while kill -0 "$1" 2>/dev/null && [[ -d "$2" ]]; do sleep 1; done
      dt_cluster_stop' "${BASH_SOURCE[0]}" "$1" "$2" </dev/null >/dev/null 2>&1 & )
}
