#!/usr/bin/env bash
# The plan's communication across nodes against a measured run (issue 25;
# docs/testing.md, "The plan across nodes"). Brings up a virtual cluster of 2
# nodes (tests/cluster/vcluster.sh), and per round:
#   1. deltatune plan --calibrate under srun -N 2 -n 2 (the all-reduce timed
#      at 1 to 2^20 floats across the nodes: machine.json's allreduce_curve;
#      --calibrate-seconds CALIB_S: the run's 730 sums average out more slow
#      calls than the default 1 s of them per size),
#   2. deltatune plan of the run below with that file (--nodes 2
#      --ranks-per-node 1 --tp 2: one tensor group spanning the nodes),
#   3. the run: deltatune train, LoRA on a synthetic GPT-2 (4 layers, d 512),
#      batch 4 x 64 tokens, --tp 2, one rank per node, STEPS steps; once
#      with --comm-barrier yes (a barrier before each all-reduce, timed apart:
#      the transfer without the wait for the other rank's computation) and
#      once without (the communication as a run has it, waiting included),
# and prints predicted against measured: sums, volume, time per step and the
# ratio, with the load average beside each round. Takes the cluster down at
# the end, on failure too. Needs root (network namespaces). Timing is not
# asserted: the machine is shared.
#
# usage: bench/multinode_comm.sh [BUILD_DIR]      (default: build)
# env:   STEPS (default 40), ROUNDS (default 1), CALIB_S (default 5)
set -uo pipefail
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd) || exit 2
STEPS=${STEPS:-40}
CALIB_S=${CALIB_S:-5}
ROUNDS=${ROUNDS:-1}
DT=$BUILD/deltatune
[[ -x $DT ]] || { echo "multinode_comm: no $DT (build first)" >&2; exit 2; }
MODEL=synthetic:gpt2:layers=4,d=512,heads=8,vocab=4096,ctx=128
SHAPE=(--method lora --tp 2 --batch-size 4)
source "$SRC/tests/cluster/vcluster.sh"

# one virtual cluster at a time on a machine (the fixed 10.201.0.x network)
if [[ -n "$(ip netns list 2>/dev/null | grep '^dtv')" ]]; then
  echo "multinode_comm: another virtual cluster is up (ip netns list shows dtv...): take it down first" >&2
  exit 1
fi
VC=$(mktemp -d /tmp/dt-vc-comm.XXXXXX)
S=$(mktemp -d /tmp/dt-comm.XXXXXX)
trap 'dt_vc_stop "$VC"; rm -rf "$VC" "$S"' EXIT
trap 'exit 130' INT TERM
# the watchdog stops the cluster when this shell ends, at the latest after 15 min
DT_VC_LIFETIME=900 dt_vc_start "$VC" 2 || { echo "multinode_comm: cannot start the cluster: $DT_CLUSTER_WHY" >&2; exit 1; }

# on SECONDS LOG ARGS...: srun of 2 ranks, one per node, from node 1
on() {
  local limit=$1 log=$2
  shift 2
  dt_vc_exec "$VC" 1 timeout "$limit" srun -O --kill-on-bad-exit=1 --mpi=pmix -N 2 -n 2 \
    --export=ALL,OPENBLAS_NUM_THREADS=1 "$@" > "$log" 2>&1 ||
    { echo "multinode_comm: failed: srun $*" >&2; tail -n 20 "$log" >&2; return 1; }
}

fails=0
for ((r = 1; r <= ROUNDS; r++)); do
  load0=$(cut -d' ' -f1-3 /proc/loadavg)
  on 300 "$S/calib.log" "$DT" plan --calibrate yes --calibrate-seconds "$CALIB_S" --machine "$S/machine.json" || { fails=1; break; }
  "$DT" plan --model "$MODEL" "${SHAPE[@]}" --seq-len 64 --nodes 2 --ranks-per-node 1 \
    --machine "$S/machine.json" --json yes > "$S/plan.json" || { fails=1; break; }
  on 300 "$S/barrier.log" "$DT" train --model "$MODEL" "${SHAPE[@]}" --data synthetic:rows=16,len=64 \
    --steps "$STEPS" --log-every 1000 --comm-barrier yes || { fails=1; break; }
  on 300 "$S/plain.log" "$DT" train --model "$MODEL" "${SHAPE[@]}" --data synthetic:rows=16,len=64 \
    --steps "$STEPS" --log-every 1000 || { fails=1; break; }
  load1=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "round $r of $ROUNDS, $(date -u +%FT%TZ), load average before $load0, after $load1, $(nproc) cores"
  /usr/bin/python3 - "$S" "$STEPS" <<'EOF' || fails=1
import json, re, sys
S, steps = sys.argv[1], int(sys.argv[2])
plan = json.load(open(S + "/plan.json"))["plan"]
mach = json.load(open(S + "/machine.json"))
c, t = plan["communication_per_step"], plan["time"]

def summary(path):
    txt = open(path).read()
    m = re.search(r"^summary: tensor-group sums across 2 nodes: .*, ([0-9.]+)s of communication in all "
                  r"\(rank 0; (\d+) sums of (\d+) floats in all", txt, re.M)
    w = re.search(r"^summary: communication over the ranks ([0-9.]+)-([0-9.]+)s, of which waiting at "
                  r"the [a-z -]+ for the group's last rank ([0-9.]+)-([0-9.]+)s \(rank 0: ([0-9.]+)s\)",
                  txt, re.M)
    st = re.search(r"^summary: median step ([0-9.]+)s", txt, re.M)
    assert m and w and st, path + ": the summary lines are missing"
    return dict(comm=float(m.group(1)), sums=int(m.group(2)), floats=int(m.group(3)),
                wait=float(w.group(5)), step=float(st.group(1)))

b, p = summary(S + "/barrier.log"), summary(S + "/plain.log")
assert b["sums"] == p["sums"] and b["floats"] == p["floats"], "the two runs made different sums"
print("calibrated all-reduce (mean of one call, 2 ranks on 2 nodes): " +
      ", ".join("%d: %.0f us" % (n, s * 1e6) for n, s in mach["allreduce_curve"]))
# the runs' counters hold STEPS steps and the first loss probe (a forward):
# the probe's sums are predicted at the plan's time per float of the sums
pf = c["tp_sum_bytes"] / 4
probe = b["floats"] - steps * pf
pred = steps * (t["tp_sums_s"] + t["reductions_s"]) + t["tp_sums_s"] * probe / pf
print("%-44s %14s %14s %7s" % ("per step (run totals / %d steps)" % steps, "plan", "measured", "ratio"))
row = lambda what, a, m: print("%-44s %14s %14s %7.2f" % (what, a, m, float(m.split()[0]) / float(a.split()[0])))
row("tensor-group sums (the loss probe's included)", "%.2f" % (c["tp_sums"] + c["tp_sums"] * probe / pf / steps),
    "%.2f" % (b["sums"] / steps))
row("their volume per rank (MB)", "%.4f" % (4e-6 * (pf + probe / steps)), "%.4f" % (4e-6 * b["floats"] / steps))
row("communication, transfer (ms; barrier run)", "%.2f" % (1e3 * pred / steps),
    "%.2f" % (1e3 * (b["comm"] - b["wait"]) / steps))
row("communication with waiting (ms; plain run)", "%.2f" % (1e3 * pred / steps), "%.2f" % (1e3 * p["comm"] / steps))
print("  (rank 0; barrier run: %.3f s in the sums, of which %.3f s waiting for the other rank; plain run %.3f s; "
      "median step %.3f / %.3f s; the plan's probe volume %.0f floats)" %
      (b["comm"], b["wait"], p["comm"], b["step"], p["step"], probe))
EOF
done
exit $fails
