#!/usr/bin/env bash
# A virtual multi-node Slurm cluster on one machine, for the multinode tests
# (docs/testing.md, "The virtual cluster"). N nodes (1-4), each a Linux
# network namespace with its own UTS namespace (hostname vc<ID>n<I>) and
# address 10.201.0.<I>/24 on a veth pair to a bridge that lives in a switch
# namespace of its own, so no traffic reaches the machine's interfaces or
# another cluster; one munged (a Unix socket in the shared folder), slurmctld
# on node 1, one slurmd per node in its namespaces. The filesystem is the
# machine's own (a cluster's shared filesystem). Open MPI's ranks, started
# by `srun --mpi=pmix`, talk over TCP on the namespaces' interfaces (the
# environment dt_vc_exec sets). Needs root, iproute2 (ip netns), util-linux
# (unshare, nsenter), slurm-wlm and munge.
#
# Sourced:   dt_vc_start DIR N     bring up; on failure returns 1 with the
#                                  reason in DT_CLUSTER_WHY, half-made parts
#                                  removed
#            dt_vc_exec DIR I CMD  run CMD on node I (its network and UTS
#                                  namespaces, SLURM_CONF and MPI settings)
#            dt_vc_stop DIR        cancel jobs, stop the daemons by pid,
#                                  delete the namespaces; idempotent
# Command:   vcluster.sh up DIR N | down DIR | exec DIR I CMD... | status DIR
# A detached watchdog stops the cluster when the owner process
# (DT_VC_OWNER, default: the shell that sourced this file and called
# dt_vc_start; 0 for none, the default of `vcluster.sh up`) ends, and in any
# case after DT_VC_LIFETIME seconds (default 900), so nothing outlives a
# killed test run; it leaves DIR alone once DIR/vc.env names another
# cluster or none (after `down`).
DT_VC_SELF=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source=../slurm/cluster.sh
source "$(dirname "$DT_VC_SELF")/../slurm/cluster.sh"

DT_VC_NET=10.201.0

# dt_vc_names DIR: read the cluster's id and node count (DIR/vc.env)
dt_vc_names() {
  [[ -r "$1/vc.env" ]] || return 1
  # shellcheck source=/dev/null
  source "$1/vc.env"
}

# dt_vc_ip NS ARGS...: ip in namespace NS. Not `ip -n` (nor `ip netns
# exec`): those remount /sys after `mount --make-rslave /`, which fails in a
# chroot whose / is no mount point (../shared/tools/fresh-machine.sh)
dt_vc_ip() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" ip "$@"
}

dt_vc_ns() { echo "dtv${VC_ID}n$1"; }
dt_vc_host() { echo "vc${VC_ID}n$1"; }

dt_vc_exec() {
  local d=$1 i=$2
  shift 2
  dt_vc_names "$d" || { echo "vcluster: no cluster in $d" >&2; return 1; }
  (( i >= 1 && i <= VC_N )) || { echo "vcluster: node $i is not in 1..$VC_N" >&2; return 1; }
  # yield_when_idle: ranks that wait give the 2 cores to the others (a run
  # of 4 ranks on 2 nodes took 3-11 s busy-polling, about 1 s so)
  SLURM_CONF=$d/slurm/slurm.conf \
  OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_tcp_if_include=$DT_VC_NET.0/24 \
  OMPI_MCA_oob_tcp_if_include=$DT_VC_NET.0/24 PMIX_MCA_ptl_tcp_if_include=$DT_VC_NET.0/24 \
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    nsenter --net="/run/netns/$(dt_vc_ns "$i")" --uts="$d/ns/uts$i" "$@"
}

# dt_vc_daemons DIR: pids of the cluster's daemons (slurmds, slurmctld,
# munged) whose command line names DIR
dt_vc_daemons() {
  local d=$1 f pid
  for f in "$d"/slurm/slurmd.*.pid "$d/slurm/slurmctld.pid" "$d/munge/munged.pid"; do
    pid=$(cat "$f" 2>/dev/null) || continue
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF "$d/" && echo "$pid"
  done
  return 0
}

dt_vc_stop() {
  local d=$1 pids=() i
  [[ -d "$d" ]] || return 0
  dt_vc_names "$d" || VC_ID=""
  if [[ -n "$VC_ID" && -n "$(dt_vc_daemons "$d")" ]]; then
    dt_vc_exec "$d" 1 timeout 5 scancel --user "$(id -un)" >/dev/null 2>&1
  fi
  mapfile -t pids < <(dt_vc_daemons "$d")
  (( ${#pids[@]} )) && dt_stop_pids "${pids[@]}"
  # the jobs' processes (slurmstepd and the ranks carry our SLURM_CONF)
  DT_CLUSTER_DIR=$(cd "$d" && pwd)
  mapfile -t pids < <(dt_cluster_leftovers)
  (( ${#pids[@]} )) && dt_stop_pids "${pids[@]}"
  DT_CLUSTER_DIR=""
  if [[ -n "$VC_ID" ]]; then
    for ((i = 1; i <= VC_N; i++)); do
      ip netns del "$(dt_vc_ns "$i")" 2>/dev/null
      umount "$d/ns/uts$i" 2>/dev/null
    done
    ip netns del "dtv${VC_ID}sw" 2>/dev/null
  fi
  # `ip netns add` bind-mounts /run/netns on itself when it is no mount
  # point; undo that when we caused it and no namespace is left there
  if [[ -e "$d/netns-mount-ours" ]] && mountpoint -q /run/netns &&
     [[ -z "$(ls -A /run/netns 2>/dev/null)" ]]; then
    umount /run/netns 2>/dev/null
  fi
  rm -f "$d/vc.env"
  return 0
}

# dt_vc_watchdog DIR OWNER LIFETIME ID: detached; stops the cluster ID of
# DIR when OWNER (unless 0) has ended or LIFETIME seconds have passed; ends
# without touching DIR once DIR/vc.env no longer names ID (`down` stopped
# it, or a new cluster took DIR: a watchdog that stopped whatever DIR held
# then took down the next run's cluster while it started)
dt_vc_watchdog() {
  # $0 of the watchdog is not the script, so that sourcing it does not run
  # the command line part below
  ( setsid bash -c 'source "$4"; d=$1 owner=$2 end=$((SECONDS + $3)) id=$5
      ours() { [[ "$(sed -n "s/^VC_ID=//p" "$d/vc.env" 2>/dev/null)" == "$id" ]]; }
      while ours && (( SECONDS < end )) &&
            { [[ "$owner" == 0 ]] || kill -0 "$owner" 2>/dev/null; }; do sleep 1; done
      if ours; then dt_vc_stop "$d"; fi' dt-vc-watchdog "$1" "$2" "$3" "$DT_VC_SELF" "$4" \
      </dev/null >/dev/null 2>&1 & )
}

dt_vc_start() {
  local d=$1 n=$2 p i ns host cpus mem
  DT_CLUSTER_WHY=""
  (( n >= 1 && n <= 4 )) || { dt_cluster_why "vcluster: $n nodes (1-4 allowed)"; return 1; }
  for p in ip nsenter unshare munged mungekey slurmctld slurmd srun sbatch squeue sinfo scontrol scancel runuser; do
    command -v "$p" >/dev/null 2>&1 || [[ -x "/usr/sbin/$p" ]] ||
      { dt_cluster_why "$p is not installed (scripts/install-deps.sh installs iproute2, util-linux, slurm-wlm and munge)"; return 1; }
  done
  [[ $(id -u) -eq 0 ]] || { dt_cluster_why "needs root (network namespaces, munged as the munge user)"; return 1; }
  id munge >/dev/null 2>&1 || { dt_cluster_why "no munge user (the munge package creates it)"; return 1; }
  [[ -d "$d" ]] && dt_vc_stop "$d"
  rm -rf "$d"
  mkdir -p "$d/ns"
  d=$(cd "$d" && pwd)
  VC_ID=$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')
  VC_N=$n
  printf 'VC_ID=%s\nVC_N=%s\n' "$VC_ID" "$VC_N" > "$d/vc.env"
  dt_vc_watchdog "$d" "${DT_VC_OWNER:-$$}" "${DT_VC_LIFETIME:-900}" "$VC_ID"
  if ! dt_vc_up "$d"; then
    local why=$DT_CLUSTER_WHY
    dt_vc_stop "$d"
    DT_CLUSTER_WHY=$why
    return 1
  fi
}

dt_vc_up() {
  local d=$1 n=$VC_N i ns host sw="dtv${VC_ID}sw" cpus mem out
  mountpoint -q /run/netns || touch "$d/netns-mount-ours"
  # the switch: a bridge in a namespace of its own
  out=$(ip netns add "$sw" 2>&1 && dt_vc_ip "$sw" link add br0 type bridge 2>&1 &&
        dt_vc_ip "$sw" link set br0 up 2>&1) || { dt_cluster_why "cannot make the switch namespace: $out"; return 1; }
  for ((i = 1; i <= n; i++)); do
    ns=$(dt_vc_ns "$i")
    host=$(dt_vc_host "$i")
    out=$(ip netns add "$ns" 2>&1 &&
          ip link add "v${VC_ID}n$i" netns "$ns" type veth peer name "v${VC_ID}s$i" netns "$sw" 2>&1 &&
          dt_vc_ip "$ns" link set "v${VC_ID}n$i" name eth0 2>&1 &&
          dt_vc_ip "$ns" addr add "$DT_VC_NET.$i/24" dev eth0 2>&1 &&
          dt_vc_ip "$ns" link set lo up 2>&1 && dt_vc_ip "$ns" link set eth0 up 2>&1 &&
          dt_vc_ip "$sw" link set "v${VC_ID}s$i" master br0 2>&1 &&
          dt_vc_ip "$sw" link set "v${VC_ID}s$i" up 2>&1) ||
      { dt_cluster_why "cannot make node $i's network namespace: $out"; return 1; }
    touch "$d/ns/uts$i"
    out=$(unshare --uts="$d/ns/uts$i" hostname "$host" 2>&1) ||
      { dt_cluster_why "cannot make node $i's UTS namespace: $out"; return 1; }
  done

  dt_munge_start "$d" || return 1

  cpus=$(nproc)
  (( cpus >= 2 )) || cpus=2
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mkdir -p "$d/slurm/state" "$d/slurm/log"
  for ((i = 1; i <= n; i++)); do mkdir -p "$d/slurm/spool/$(dt_vc_host "$i")" "$d/slurm/tmp/$(dt_vc_host "$i")"; done
  # each namespace has its own ports: the default ones
  {
    cat <<EOF
# written by tests/cluster/vcluster.sh
ClusterName=dtvc
SlurmctldHost=$(dt_vc_host 1)($DT_VC_NET.1)
SlurmctldPort=6817
SlurmdPort=6818
$(dt_slurm_conf_common "$d")
StateSaveLocation=$d/slurm/state
SlurmdSpoolDir=$d/slurm/spool/%n
TmpFS=$d/slurm/tmp/%n
FirstJobId=$((1000 + RANDOM % 900000))
SlurmctldPidFile=$d/slurm/slurmctld.pid
SlurmdPidFile=$d/slurm/slurmd.%n.pid
SlurmctldLogFile=$d/slurm/log/slurmctld.log
SlurmdLogFile=$d/slurm/log/slurmd.%n.log
EOF
    for ((i = 1; i <= n; i++)); do
      echo "NodeName=$(dt_vc_host "$i") NodeAddr=$DT_VC_NET.$i NodeHostname=$(dt_vc_host "$i") CPUs=$cpus RealMemory=${mem:-1024} State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES"
  } > "$d/slurm/slurm.conf"
  # the PMIx plugin's fences as a ring. Slurm 22.05's tree fence builds its
  # tree with reverse_tree_info(), which gives every node "no parent, no
  # children" when TreeWidth (default 50) exceeds the step's node count, so
  # on a small cluster each node's fence completed alone: MPI_Init's barrier
  # held no rank for another node's ranks, and a rank that left MPI_Init
  # first sent to one still in its modex fence, whose TCP BTL called the
  # not yet registered PML callback (a segfault at address 0; the dying
  # rank's vader segment, removed by the PMIx cleanup, then made its node
  # peer's open() fail with ENOENT). The default (mixed) uses that tree for
  # fences without data, MPI_Init's barrier among them. The ring spans the
  # nodes (docs/testing.md, "PMIx fence"; multinode_fence checks it)
  echo "PMIxCollFence=ring" > "$d/slurm/mpi.conf"

  dt_vc_exec "$d" 1 slurmctld -f "$d/slurm/slurm.conf" -c -i >"$d/slurm/log/slurmctld.stderr" 2>&1 ||
    { dt_cluster_why "slurmctld did not start" "$d/slurm/log/slurmctld.stderr" "$d/slurm/log/slurmctld.log"; return 1; }
  dt_wait_for 5 test -s "$d/slurm/slurmctld.pid" ||
    { dt_cluster_why "slurmctld wrote no pid file" "$d/slurm/log/slurmctld.log"; return 1; }
  for ((i = 1; i <= n; i++)); do
    host=$(dt_vc_host "$i")
    dt_vc_exec "$d" "$i" slurmd -f "$d/slurm/slurm.conf" -N "$host" >"$d/slurm/log/slurmd.$host.stderr" 2>&1 ||
      { dt_cluster_why "slurmd of $host did not start" "$d/slurm/log/slurmd.$host.stderr" "$d/slurm/log/slurmd.$host.log"; return 1; }
  done
  for ((i = 1; i <= n; i++)); do
    host=$(dt_vc_host "$i")
    dt_wait_for 5 test -s "$d/slurm/slurmd.$host.pid" ||
      { dt_cluster_why "slurmd of $host wrote no pid file" "$d/slurm/log/slurmd.$host.log"; return 1; }
  done
  dt_wait_for 30 dt_vc_idle "$d" ||
    { dt_cluster_why "the nodes are not all idle after 30 s (sinfo: $(dt_vc_exec "$d" 1 timeout 5 sinfo -h -N -o '%N %T %E' 2>&1 | head -n 4))" \
        "$d/slurm/log/slurmctld.log" "$d/slurm/log/slurmd.$(dt_vc_host 1).log"; return 1; }
}

# dt_vc_idle DIR: every node idle (or slurmctld gone: then never)
dt_vc_idle() {
  local ctld
  ctld=$(cat "$1/slurm/slurmctld.pid" 2>/dev/null) && dt_alive "$ctld" || return 1
  [[ "$(dt_vc_exec "$1" 1 timeout 5 sinfo -h -N -o %T 2>/dev/null | sort -u)" == idle ]]
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -uo pipefail
  case "${1:-}" in
    up)
      [[ $# -eq 3 ]] || { echo "usage: vcluster.sh up DIR N" >&2; exit 2; }
      # the cluster outlives this command: bounded by DT_VC_LIFETIME only
      DT_VC_OWNER=${DT_VC_OWNER:-0}
      dt_vc_start "$2" "$3" || { echo "vcluster: cannot start: $DT_CLUSTER_WHY" >&2; exit 1; }
      dt_vc_names "$2"
      echo "vcluster: $3 nodes up ($(dt_vc_host 1)..$(dt_vc_host "$3")) in $2"
      ;;
    down)
      [[ $# -eq 2 ]] || { echo "usage: vcluster.sh down DIR" >&2; exit 2; }
      dt_vc_stop "$2"
      ;;
    exec)
      [[ $# -ge 4 ]] || { echo "usage: vcluster.sh exec DIR I COMMAND..." >&2; exit 2; }
      d=$2 i=$3
      shift 3
      dt_vc_exec "$d" "$i" "$@"
      ;;
    status)
      dt_vc_exec "$2" 1 sinfo -N -o '%N %T %c'
      ;;
    *)
      echo "usage: vcluster.sh up DIR N | down DIR | exec DIR I COMMAND... | status DIR" >&2
      exit 2
      ;;
  esac
fi
