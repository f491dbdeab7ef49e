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
#      once without, for half the steps (the communication as a run has it,
#      waiting included; the difference of the two runs' counters is the
#      sums of STEPS/2 steps exactly, without the final loss probe's),
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
    --steps "$((STEPS / 2))" --log-every 1000 || { fails=1; break; }
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
half = steps // 2
print("calibrated all-reduce (mean of one call, 2 ranks on 2 nodes): " +
      ", ".join("%d: %.0f us" % (n, s * 1e6) for n, s in mach["allreduce_curve"]))
# the counters hold the steps and the final loss probe (a forward, after
# the communication time was read): the difference of the two runs is the
# sums of steps - half steps
ds, df = b["sums"] - p["sums"], b["floats"] - p["floats"]
pf = c["tp_sum_bytes"] / 4
ok = ds == c["tp_sums"] * (steps - half) and df == pf * (steps - half)
print("per step (%d - %d steps): %s sums of %s floats measured, the plan %d of %d: %s" %
      (steps, half, ds / (steps - half), df / (steps - half), c["tp_sums"], pf,
       "equal" if ok else "DIFFERENT"))
# the time is read before the probe: the steps' alone
probe = b["floats"] - steps * pf
pred = steps * (t["tp_sums_s"] + t["reductions_s"])
print("%-44s %10s %10s %7s" % ("time per step, rank 0 (%d steps)" % steps, "plan", "measured", "ratio"))
row = lambda what, a, m: print("%-44s %10.2f %10.2f %7.2f" % (what, a, m, m / a))
row("communication, transfer (ms; --comm-barrier)", 1e3 * pred / steps, 1e3 * (b["comm"] - b["wait"]) / steps)
row("communication with waiting (ms; no barrier)", 1e3 * pred / steps,
    1e3 * p["comm"] / half)
with open(S + "/rounds.txt", "a") as f:
    f.write("%g %g %g\n" % (1e3 * pred / steps, 1e3 * (b["comm"] - b["wait"]) / steps, 1e3 * p["comm"] / half))
print("  (barrier run: %.3f s in the all-reduces, of which %.3f s waiting for the other rank; run without: "
      "%.3f s in %d steps; median step %.3f / %.3f s; the probe %d floats)" %
      (b["comm"], b["wait"], p["comm"], half, b["step"], p["step"], probe))
sys.exit(0 if ok else 1)
EOF
done
# over the rounds: each calibration and each run is a sample of the same
# fluctuating load; their means compare the model, not the moment
if (( ROUNDS > 1 )) && [[ -s $S/rounds.txt ]]; then
  awk '{p += $1; t += $2; w += $3; n++} END {printf "mean of %d rounds: plan %.2f ms, transfer %.2f ms (ratio %.2f), with waiting %.2f ms (ratio %.2f)\n", n, p / n, t / n, t / p, w / n, w / p}' "$S/rounds.txt"
fi
exit $fails
