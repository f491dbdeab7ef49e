#!/usr/bin/env bash
# The multinode tests on the virtual cluster of tests/cluster/vcluster.sh
# (3 nodes, brought up once by the ctest fixture multinode_up; docs/testing.md).
# Every program runs under `srun --mpi=pmix` from node 1, its ranks on the
# nodes Slurm gives them, Open MPI between nodes over TCP.
#
#   fence   MPI_Init holds every rank until all are in it: the last rank of
#           2 nodes x 2 ranks and of 3 nodes x 1 rank enters 1 s late, and
#           no rank may leave before it entered (init_barrier.c; the PMIx
#           fence of each node once completed alone, docs/testing.md)
#   parity  test_parity's fixture checks (losses, loss changes, gradients,
#           logits against the HF/PEFT numbers, the layout matrix's
#           tolerances) of LoRA on the GPT-2 and LLaMA fixtures for
#             - 2 nodes x 2 ranks, --tp 2: tensor groups inside the nodes,
#               the replicas across them (no placement warning),
#             - 2 nodes x 1 rank, --tp 2: a tensor group spanning the nodes,
#             - 3 nodes x 1 rank, --tp 3,
#             - 2 nodes x 2 ranks placed cyclically (srun -m cyclic), --tp 2:
#               asked otherwise, so the groups span the nodes;
#           the spanning runs print the warning that names the cost, the
#           others do not
#   share   --share-weights on 2 nodes x 2 replicas: each node's
#           proportional set size falls by one copy of the frozen matrices
#           (80-120%) against --share-weights no: one copy per node
#   ckpt    a checkpoint written at step 4 by 2 nodes x 2 ranks (--tp 2),
#           resumed to step 8 on 2 nodes: deltas bitwise those of the
#           uninterrupted 8 steps; resumed on 1 node (2 ranks, --tp 2) and on
#           3 nodes (--tp 3): within 1e-5
#   jobs    sbatch -N 2 of jobs/finetune.sbatch (4 ranks, --tp 2: groups
#           inside the nodes, no warning) and jobs/sweep.sbatch (2 tasks);
#           preemption of a 2-node finetune.sbatch: SIGUSR1 to the batch
#           shell while it trains -> checkpoint, exit 9, requeue (Restarts=1),
#           resume; deltas byte-identical to an uninterrupted 2-node job's and
#           every step once in metrics.jsonl
#   plan    the plan's communication volume across nodes (docs/testing.md,
#           "The plan across nodes"): test_plan_comm's training steps on 2
#           nodes x 1 rank (--tp 2: the group spans the nodes) and 2 nodes x
#           2 ranks (--tp 2 inside the nodes, --tp 4 across them) make
#           exactly the tensor-group sums, floats and shared-memory sums the
#           plan of that layout (--nodes 2) counts
#
# usage: test_multinode.sh TEST BUILD_DIR SOURCE_DIR CLUSTER_DIR
# Exit 0 pass, 1 fail (a cluster that is not up is a failure, never a skip).
set -uo pipefail
TEST=${1:?usage: test_multinode.sh TEST BUILD_DIR SOURCE_DIR CLUSTER_DIR}
BUILD=$(cd "${2:?}" && pwd)
SRC=$(cd "${3:?}" && pwd)
VC=${4:?}
source "$SRC/tests/cluster/vcluster.sh"
F=$SRC/tests/data/hf-parity
T0=$SECONDS

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
log() { echo "[$((SECONDS - T0))s] $*"; }

# the nodes of the test before may still be completing its job (CI of
# 2026-12-05, beside another suite: multinode_jobs found them not yet idle
# right after multinode_ckpt): up to 30 s, as at the start
dt_wait_for 30 dt_vc_idle "$VC" ||
  { echo "FAIL: the virtual cluster in $VC is not up, or its nodes not idle after 30 s (the fixture test multinode_up starts it; see its output): $(dt_vc_exec "$VC" 1 timeout 5 sinfo -h -N -o '%N %T %E' 2>&1 | head -n 4)"; exit 1; }
S=$(mktemp -d "$BUILD/multinode-$TEST.XXXXXX")
cleanup() {
  local rc=$?
  if (( rc == 0 )); then rm -rf "$S"; else echo "scratch folder kept: $S"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run SECONDS LOG srun-args... -- program args: srun from node 1, output in LOG
run() {
  local limit=$1 out=$2
  shift 2
  local t=$SECONDS rc
  dt_vc_exec "$VC" 1 timeout "$limit" srun -O --kill-on-bad-exit=1 --mpi=pmix "$@" > "$out" 2>&1
  rc=$?
  echo "  ($((SECONDS - t)) s: srun $*)" | cut -c1-150
  return $rc
}

# the LoRA fixture cases of test_parity for --tp TP
parity_cases() {
  local tp=$1
  echo --case "mn_gpt2_$2" gpt2 lora 2e-5 --tp "$tp" --method lora --lora-rank 4 --lora-alpha 8 \
    --lora-targets c_attn,mlp.c_fc --init-from "$F/gpt2/lora/init.safetensors"
  echo --case "mn_llama_$2" llama lora 2e-5 --tp "$tp" --method lora --lora-rank 4 --lora-alpha 8 \
    --lora-targets q_proj,v_proj,down_proj --init-from "$F/llama/lora/init.safetensors"
}

test_fence() {
  local layout name nodes ranks
  for layout in "n2 2 4" "n3 3 3"; do
    read -r name nodes ranks <<< "$layout"
    if run 60 "$S/fence-$name.log" -N "$nodes" -n "$ranks" "$BUILD/tests/vc_init_barrier" 1 &&
       grep -q '^held: ' "$S/fence-$name.log"; then
      ok "fence: $nodes nodes, $ranks ranks: $(grep '^held: ' "$S/fence-$name.log")"
    else
      fail "fence: $nodes nodes, $ranks ranks: MPI_Init did not hold the ranks until the last one entered"
      cat "$S/fence-$name.log"
    fi
  done
}

test_parity() {
  local layout name nodes ranks tp dist spans out
  for layout in "inside 2 4 2 block 0" "span2 2 2 2 block 1" "span3 3 3 3 block 1" "cyclic 2 4 2 cyclic 1"; do
    read -r name nodes ranks tp dist spans <<< "$layout"
    out=$S/parity-$name.log
    # shellcheck disable=SC2046
    if run 60 "$out" -N "$nodes" -n "$ranks" -m "$dist" "$BUILD/tests/test_parity" $(parity_cases "$tp" "$name") &&
       grep -q '^\[  PASSED  \] 2 test(s)' "$out"; then
      ok "parity $name: $nodes nodes, $ranks ranks ($dist), --tp $tp: GPT-2 and LLaMA LoRA match the fixture"
    else
      fail "parity $name: $nodes nodes, $ranks ranks ($dist), --tp $tp"; tail -n 40 "$out"
    fi
    # the ranks really ran on the nodes asked for (their hostnames)
    local hosts
    run 30 "$S/hosts-$name.log" -N "$nodes" -n "$ranks" -m "$dist" hostname
    hosts=$(grep "^vc" "$S/hosts-$name.log" | sort -u | wc -l)
    [[ "$hosts" == "$nodes" ]] && ok "parity $name: ranks on $nodes hosts" ||
      { fail "parity $name: ranks on $hosts hosts, expected $nodes"; cat "$S/hosts-$name.log"; }
    local warned
    warned=$(grep -c "^warning: a tensor group of --tp $tp spans [0-9]* nodes: .*MPI_Allreduce" "$out")
    if (( spans )); then
      [[ "$warned" == 2 ]] && grep -q "^summary: tensor-group sums across $nodes nodes: [0-9]* per step" "$out" &&
        ok "parity $name: the groups span nodes, and the warning and summary say what it costs" ||
        fail "parity $name: $warned placement warnings (expected 2) or no summary of the sums across nodes"
    else
      [[ "$warned" == 0 ]] && ok "parity $name: groups inside nodes, no placement warning" ||
        fail "parity $name: a placement warning although the groups are inside nodes"
    fi
  done
}

test_share() {
  local args="--model synthetic:gpt2:layers=4,d=512,heads=8,vocab=4096,ctx=128 --data synthetic:rows=8,len=64"
  args+=" --batch-size 4 --method lora --steps 2"
  local sh
  for sh in yes no; do
    # shellcheck disable=SC2086
    run 60 "$S/share-$sh.log" -N 2 -n 4 "$BUILD/deltatune" train $args --share-weights $sh ||
      { fail "share: deltatune train --share-weights $sh on 2 nodes"; tail -n 20 "$S/share-$sh.log"; return; }
  done
  /usr/bin/python3 - "$S/share-yes.log" "$S/share-no.log" <<'EOF' && ok "share: one copy of the frozen matrices per node" ||
import re, sys
def node_mb(path):
    t = open(path).read()
    m = re.search(r"^summary: memory per node at the end \(proportional set size of its ranks\): (.*) \((\d+) nodes\)$", t, re.M)
    assert m, path + ": no per-node memory line"
    v = [float(x.split()[0]) for x in m.group(1).split(",")]
    assert len(v) == int(m.group(2)) == 2, (path, v)
    return v, t
yes, ty = node_mb(sys.argv[1])
no, _ = node_mb(sys.argv[2])
m = re.search(r"frozen matrices (\d+) MB per shard, one copy per node for 2 replicas", ty)
assert m, "the --share-weights yes summary does not say the matrices are shared by 2 replicas per node"
mats = float(m.group(1))
for k in range(2):
    saved = no[k] - yes[k]
    print("node %d: %.0f MB shared vs %.0f MB private: %.0f MB saved, one copy is %.0f MB" % (k + 1, yes[k], no[k], saved, mats))
    assert 0.8 * mats <= saved <= 1.2 * mats, "node %d saved %.0f MB, not one copy (%.0f MB)" % (k + 1, saved, mats)
EOF
    fail "share: the per-node memory does not show one copy per node"
}

test_ckpt() {
  local base="train --model $F/gpt2/model --data $F/gpt2/batch.safetensors --batch-size 2 --method lora"
  base+=" --lora-rank 4 --lr 1e-2 --log-every 1000"
  # shellcheck disable=SC2086
  run 60 "$S/ref.log" -N 2 -n 4 "$BUILD/deltatune" $base --tp 2 --steps 8 --out "$S/ref" ||
    { fail "ckpt: the uninterrupted run"; tail -n 20 "$S/ref.log"; return; }
  # shellcheck disable=SC2086
  run 60 "$S/half.log" -N 2 -n 4 "$BUILD/deltatune" $base --tp 2 --steps 4 --out "$S/half" ||
    { fail "ckpt: the first 4 steps"; tail -n 20 "$S/half.log"; return; }
  local ck
  ck=$(ls "$S"/half/ckpt-*4.nc 2>/dev/null)
  [[ -s $ck ]] && ok "ckpt: 2 nodes wrote $(basename "$ck")" || { fail "ckpt: no checkpoint of step 4 in $S/half"; return; }
  local layout name nodes ranks tp
  for layout in "n2 2 4 2" "n1 1 2 2" "n3 3 3 3"; do
    read -r name nodes ranks tp <<< "$layout"
    mkdir -p "$S/$name"
    cp "$ck" "$S/$name/"
    # shellcheck disable=SC2086
    if run 60 "$S/$name.log" -N "$nodes" -n "$ranks" "$BUILD/deltatune" $base --tp "$tp" --steps 8 \
         --out "$S/$name" --resume && grep -q "^resume: .*$(basename "$ck")" "$S/$name.log"; then :
    else fail "ckpt: resume on $nodes node(s), $ranks ranks, --tp $tp"; tail -n 20 "$S/$name.log"; continue; fi
    if [[ $name == n2 ]]; then
      cmp -s "$S/ref/deltas.safetensors" "$S/n2/deltas.safetensors" &&
        ok "ckpt: resumed on 2 nodes: deltas bitwise those of the uninterrupted run" ||
        fail "ckpt: resumed on 2 nodes: deltas differ from the uninterrupted run's"
    else
      /usr/bin/python3 - "$SRC/tests" "$S/ref/deltas.safetensors" "$S/$name/deltas.safetensors" <<'EOF' &&
import sys
sys.path.insert(0, sys.argv[1])
from ckpt_netcdf4 import safetensors
a, b = safetensors(sys.argv[2]), safetensors(sys.argv[3])
assert a.keys() == b.keys() and a, "tensor names differ"
d = max(float(abs(a[k].astype("f8") - b[k]).max()) for k in a)
print("max abs difference %.2e" % d)
assert d <= 1e-5, d
EOF
        ok "ckpt: resumed on $nodes node(s) at --tp $tp: deltas within 1e-5" ||
        fail "ckpt: resumed on $nodes node(s) at --tp $tp: deltas differ by more than 1e-5"
    fi
  done
}

# the batch jobs of jobs/ with sbatch -N 2, submitted from node 1, the
# repository's scripts and build (DELTATUNE)
submit() { dt_vc_exec "$VC" 1 sbatch --parsable --time=10 "$@" | cut -d';' -f1; }
# wait_jobs SECONDS ID...: every job left the queue in time
wait_jobs() {
  local limit=$1 deadline=$((SECONDS + $1)) ids
  shift
  ids=$(IFS=,; echo "$*")
  while [[ -n "$(dt_vc_exec "$VC" 1 squeue -h -j "$ids" -o %i 2>/dev/null)" ]]; do
    (( SECONDS < deadline )) || { fail "jobs $ids still queued after $limit s"; return 1; }
    sleep 0.2
  done
}
job_state() {
  dt_vc_exec "$VC" 1 scontrol -o show job "$1" 2>/dev/null |
    grep -o 'JobState=[A-Z_]*\|Restarts=[0-9]*\|ExitCode=[0-9:]*\|NumNodes=[0-9]*' | tr '\n' ' '
}

test_jobs() {
  local ft sw pre ref st o deadline
  cd "$S" || return
  export DELTATUNE=$BUILD/deltatune MODEL=$F/gpt2/model DATA=$F/gpt2/batch.safetensors BATCH=2
  # finetune.sbatch on 2 nodes x 2 ranks, --tp 2: the groups inside the nodes
  ft=$(STEPS=4 LOG_EVERY=1 TP=2 OUT=$S/ft submit -N 2 -n 4 "$SRC/jobs/finetune.sbatch" --lora-rank 4)
  # sweep.sbatch on 2 nodes x 1 rank: two tasks
  printf '[task lora]\nmethod = lora\nlora-rank = 4\n\n[task ia3]\nmethod = ia3\nlr = 1e-2\n' > sweep.ini
  sw=$(STEPS=3 LOG_EVERY=1 OUT=$S/sweep submit -N 2 -n 2 "$SRC/jobs/sweep.sbatch" sweep.ini)
  # preemption of a 2-node job: SIGUSR1 to the batch shell (the time-limit
  # warning) once it trains; and the same job uninterrupted
  pre=$(STEPS=$PRE_STEPS LOG_EVERY=1000 OUT=$S/pre submit -N 2 -n 2 -J dt-pre "$SRC/jobs/finetune.sbatch")
  ref=$(STEPS=$PRE_STEPS LOG_EVERY=1000 OUT=$S/pre-ref submit -N 2 -n 2 -J dt-pre-ref "$SRC/jobs/finetune.sbatch")
  log "submitted finetune $ft, sweep $sw, preempted $pre, reference $ref"
  deadline=$((SECONDS + 60))
  until [[ $(grep -c '"step"' "$S/pre/metrics.jsonl" 2>/dev/null) -ge 10 ]]; do
    (( SECONDS < deadline )) || { fail "preempt: job $pre did not train in 60 s"; break; }
    sleep 0.1
  done
  if dt_vc_exec "$VC" 1 scancel --batch --signal=USR1 "$pre"; then
    log "preempt: SIGUSR1 to job $pre after $(grep -c '"step"' "$S/pre/metrics.jsonl") steps"
  else fail "preempt: scancel --batch --signal=USR1 $pre"; fi
  wait_jobs 150 "$ft" "$sw" "$pre" "$ref"
  log "jobs done"

  st=$(job_state "$ft")
  o=$S/deltatune-finetune-$ft.out
  [[ "$st" == *"JobState=COMPLETED"*"ExitCode=0:0"*"NumNodes=2"* ]] && grep -q "4 ranks on 2 node(s)" "$o" &&
    [[ -s $S/ft/deltas.safetensors && $(grep -c '"loss"' "$S/ft/metrics.jsonl") == 4 ]] &&
    ! grep -q '^warning: a tensor group' "$o" &&
    ok "finetune.sbatch -N 2 -n 4, --tp 2: completed on 2 nodes, groups inside them, deltas and 4 metrics lines" ||
    { fail "finetune.sbatch -N 2: $st"; cat "$o"; }

  st=$(job_state "$sw")
  o=$S/deltatune-sweep-$sw.out
  [[ "$st" == *"JobState=COMPLETED"*"ExitCode=0:0"*"NumNodes=2"* && -s $S/sweep/lora/deltas.safetensors &&
     -s $S/sweep/ia3/deltas.safetensors && $(grep -cE '^  (lora|ia3) +done' "$o") == 2 ]] &&
    ok "sweep.sbatch -N 2: both tasks done on 2 nodes" || { fail "sweep.sbatch -N 2: $st"; cat "$o"; }

  st=$(job_state "$ref")
  [[ "$st" == *"JobState=COMPLETED"*"Restarts=0"*"NumNodes=2"* ]] || fail "preempt reference: $st"
  st=$(job_state "$pre")
  o=$S/dt-pre-$pre.out
  [[ "$st" == *"JobState=COMPLETED"*"Restarts=1"*"ExitCode=0:0"*"NumNodes=2"* ]] &&
    ok "preempt: requeued once, completed on 2 nodes" || { fail "preempt: $st"; cat "$o"; }
  grep -q "^interrupted: SIGUSR1 at step [0-9]* of $PRE_STEPS: .*ckpt-[0-9]*\.nc" "$o" &&
    grep -q "requeueing job $pre" "$o" && grep -q "^resume: .*ckpt-[0-9]*\.nc: step [0-9]* of $PRE_STEPS" "$o" &&
    ok "preempt: checkpoint at a step boundary, exit 9, requeue, resume ($(grep -o '^interrupted: SIGUSR1 at step [0-9]*' "$o"))" ||
    { fail "preempt: the output lacks the interruption, the requeue or the resume"; cat "$o"; }
  cmp -s "$S/pre-ref/deltas.safetensors" "$S/pre/deltas.safetensors" &&
    ok "preempt: deltas byte-identical to the uninterrupted 2-node job's" ||
    fail "preempt: deltas differ from the uninterrupted job's"
  /usr/bin/python3 - "$S/pre-ref/metrics.jsonl" "$S/pre/metrics.jsonl" "$PRE_STEPS" <<'EOF' &&
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1])]
got = [json.loads(l) for l in open(sys.argv[2])]
n = int(sys.argv[3])
assert [r["step"] for r in got] == list(range(n)), "steps lost or done twice"
for a, b in zip(ref, got):
    assert (a["step"], a["loss"], a["grad_norm"]) == (b["step"], b["loss"], b["grad_norm"]), (a, b)
EOF
    ok "preempt: every step once in metrics.jsonl, as the uninterrupted job's" || fail "preempt: metrics.jsonl"
}
test_plan() {
  local layout name nodes ranks out
  for layout in "n2x1 2 2" "n2x2 2 4"; do
    read -r name nodes ranks <<< "$layout"
    out=$S/plan-$name.log
    if run 120 "$out" -N "$nodes" -n "$ranks" "$BUILD/tests/test_plan_comm_np2" &&
       grep -q '^\[  PASSED  \] 1 test(s)' "$out"; then
      ok "plan $name: $ranks ranks on $nodes nodes make the sums, floats and shared-memory sums the plan counts"
    else
      fail "plan $name: $ranks ranks on $nodes nodes: the plan's communication count differs"; tail -n 30 "$out"
    fi
  done
}

# steps of the preemption jobs: long enough that the signal lands while the
# 2-node job trains (about 2-5 ms a step across the virtual nodes here)
PRE_STEPS=${DT_MN_PRE_STEPS:-1500}

case "$TEST" in
  fence) test_fence ;;
  parity) test_parity ;;
  share) test_share ;;
  ckpt) test_ckpt ;;
  jobs) test_jobs ;;
  plan) test_plan ;;
  *) echo "test_multinode.sh: unknown test $TEST"; exit 2 ;;
esac
log "$TEST: $fails failure(s)"
(( fails == 0 ))
