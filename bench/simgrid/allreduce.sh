#!/usr/bin/env bash
# The SimGrid check of docs/parallel.md ("SimGrid"): MPI_Allreduce of the
# plan's message sizes on simulated fat-trees, message bytes / simulated
# time, against the all-reduce constant of bench/machines/*.json.
# usage: bash bench/simgrid/allreduce.sh [WORKDIR]   (needs libsimgrid-dev)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${1:-$(mktemp -d)}
mkdir -p "$W"
smpicc -O2 -o "$W/allreduce" "$HERE/allreduce.c"
# platform NODES CORES TOPO BW: a 2-level fat-tree of NODES hosts of CORES
# cores, links BW and 1.5 us, copies inside a host at 20 GBps (an assumption)
platform() {
  cat > "$W/p.xml" <<XML
<?xml version='1.0'?>
<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">
<platform version="4.1">
  <cluster id="ft" prefix="node-" suffix="" radical="0-$(($1 - 1))" speed="100Gf" core="$2"
           bw="$4" lat="1.5us" topology="FAT_TREE" topo_parameters="$3"
           loopback_bw="20GBps" loopback_lat="0.5us"/>
</platform>
XML
  for ((i = 0; i < $1; i++)); do for ((c = 0; c < $2; c++)); do echo "node-$i"; done; done > "$W/hosts"
}
run() { # NODES CORES TOPO BW FLOATS
  platform "$1" "$2" "$3" "$4"
  echo -n "$1 nodes x $2 ranks, $4: "
  smpirun -np $(($1 * $2)) -platform "$W/p.xml" -hostfile "$W/hosts" --cfg=smpi/host-speed:100Gf \
    --cfg=smpi/coll-selector:ompi --cfg=smpi/display-timing:no "$W/allreduce" "$5" 2>&1 |
    grep '^ranks'
}
run 16 1 "2;4,4;1,4;1,1" 12.5GBps 16777216
run 16 1 "2;4,4;1,4;1,1" 12.5GBps 25165824
run 64 1 "2;8,8;1,8;1,1" 12.5GBps 16777216
run 64 1 "2;8,8;1,8;1,1" 12.5GBps 25165824
run 64 1 "2;8,8;1,8;1,1" 25GBps 16777216
run 64 1 "2;8,8;1,8;1,1" 25GBps 25165824
run 4 32 "2;2,2;1,2;1,1" 12.5GBps 25165824
run 4 32 "2;2,2;1,2;1,1" 25GBps 25165824
