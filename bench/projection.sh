#!/usr/bin/env bash
# The projection tables of docs/parallel.md: LoRA on LLaMA-2-70B and GPT-3
# 175B on 4-64 nodes of an assumed cluster (bench/machines/README.md), from
# `deltatune plan --json` (no weights are loaded; about 20 minutes on the shared
# 2-core machine).
# usage: bash bench/projection.sh BIN [MACHINE_JSON...] > tables.md
#   NODES (default 4 ... 512: past 64 to show where the scaling stops), BATCH
#   (128 rows, the LoRA paper's GPT-3 batch), SEQ (2048), MEM (512G), RPNS, MODELS, WEIGHTS.
#   default machines: bench/machines/ib100-64c.json and ib200-64c.json
#   For every node count the layout is the fastest that fits MEM per node:
#   every ranks-per-node of RPNS and every power-of-two --tp that divides the
#   ranks and leaves whole rows per replica (dp divides BATCH). Each row's
#   plan command is printed under its table as a template (ROW_COMMANDS=1:
#   every row's in full).
#   Where the chosen tensor groups span nodes, the last column estimates the
#   same ranks as pipeline stages across nodes (tensor groups inside nodes),
#   from the plan's own compute and sum times (docs/parallel.md says how).
set -uo pipefail
BIN=${1:?binary}
shift
HERE=$(cd "$(dirname "$0")" && pwd)
MACHINES=("$@")
[[ ${#MACHINES[@]} -gt 0 ]] || MACHINES=("$HERE/machines/ib100-64c.json" "$HERE/machines/ib200-64c.json")
[[ $PWD/bench == "$HERE" ]] && MACHINES=("${MACHINES[@]/#$PWD\//}") # relative in the commands
export BIN NODES=${NODES:-"4 8 16 32 64 128 256 512"} RPNS=${RPNS:-"64 32 16 8"} BATCH=${BATCH:-128} \
  SEQ=${SEQ:-2048} MEM=${MEM:-512G} MODELS=${MODELS:-"llama2-70b gpt3-175b"} \
  WEIGHTS=${WEIGHTS:-"bf16 nf4"}
python3 - "${MACHINES[@]}" <<'EOF'
import json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

BIN = os.environ["BIN"]
NODES = [int(x) for x in os.environ["NODES"].split()]
RPNS = [int(x) for x in os.environ["RPNS"].split()]
BATCH, SEQ, MEM = int(os.environ["BATCH"]), int(os.environ["SEQ"]), os.environ["MEM"]
MODELS, WEIGHTS = os.environ["MODELS"].split(), os.environ["WEIGHTS"].split()
machines = sys.argv[1:]
cache = {}

def args(model, wd, n, rpn, tp, machine):
    return ["plan", "--model", "synthetic:" + model, "--method", "lora", "--weights-dtype", wd,
            "--matmul-dtype", "bf16", "--nodes", str(n), "--ranks-per-node", str(rpn), "--tp", str(tp),
            "--batch-size", str(BATCH), "--micro-batch", "1", "--seq-len", str(SEQ), "--recompute",
            "--mem-per-node", MEM, "--compare-full", "no", "--machine", machine]

def plan(a):
    k = tuple(a)
    if k not in cache:
        r = subprocess.run([BIN] + a + ["--json"], capture_output=True, text=True)
        cache[k] = json.loads(r.stdout)["plan"] if r.returncode == 0 else None
    return cache[k]

def candidates(model, wd, n, machine):
    out = []
    for rpn in RPNS:
        R = n * rpn
        tp = 1
        while tp <= R:
            if R % tp == 0 and BATCH % (R // tp) == 0:
                out.append(args(model, wd, n, rpn, tp, machine))
            tp *= 2
    return out

def comm(p):
    t = p["time"]
    return (t["tp_sums_s"] + t["reductions_s"]) / t["step_s"]

def pipeline(p, model, wd, n, machine, link_bytes_per_s):
    """Tensor groups of rpn ranks inside nodes, P = tp / rpn pipeline stages
    across nodes, the same dp: estimated from the plan of tp = rpn (same
    ranks, FLOPs per rank and in-node sums per rank; P times the replicas)."""
    lay = p["layout"]
    rpn, tp = lay["ranks_per_node"], lay["tp"]
    P = tp // rpn
    q = plan(args(model, wd, n, rpn, rpn, machine))
    if q is None or P < 2:
        return None
    t = q["time"]
    m = BATCH // lay["dp"]                     # micro-batches (rows) per pipeline replica
    bubble = (m + P - 1) / m
    act = 4.0 * SEQ * D[model]                 # one row's [S, d] fp32 activations
    p2p = m * 2 * act / link_bytes_per_s       # forward activation + backward gradient per stage
    step = (t["compute_s"] + t["tp_sums_s"]) * bubble + p2p + t["reductions_s"] + t["update_s"]
    return {"P": P, "m": m, "bubble": bubble, "p2p": p2p, "step": step,
            "tokens_per_s": BATCH * SEQ / step}

def d_model(model):
    r = subprocess.run([BIN, "plan", "--model", "synthetic:" + model, "--compare-full", "no",
                        "--machine", "/nonexistent/machine.json"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("backbone:"):
            return int(line.split("d=")[1].split(",")[0])
    raise SystemExit("no d_model for " + model)

D = {m: d_model(m) for m in MODELS}
for machine in machines:
    mc = json.load(open(machine))
    link = mc["p2p_bytes_per_s"]  # not read by deltatune: the pipeline estimate's sends
    name = os.path.basename(machine)
    for wd in WEIGHTS:
        for model in MODELS:
            jobs = [a for n in NODES for a in candidates(model, wd, n, machine)]
            with ThreadPoolExecutor(max_workers=2) as ex:
                list(ex.map(plan, jobs))
            print(f"\n#### {model}, LoRA r=8 (default targets), {wd} weights, bf16 products, "
                  f"{BATCH} x {SEQ} tokens per step, --micro-batch 1 --recompute, {MEM} per node; "
                  f"`{name}`\n")
            print("| row | nodes | ranks/node | tp | replicas | groups | memory/node (GiB) | tokens/s | "
                  "communication | efficiency vs 4 nodes | pipeline estimate (tokens/s) |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            cmds, base, prev, stopped = [], None, None, False
            for n in NODES:
                best, best_a = None, None
                for a in candidates(model, wd, n, machine):
                    p = plan(a)
                    if p and p["node"]["fits"] and (best is None or
                                                    p["time"]["tokens_per_s"] > best["time"]["tokens_per_s"]):
                        best, best_a = p, a
                if best is None:
                    print(f"| - | {n} | - | - | - | - | none fits | - | - | - | - |")
                    continue
                lay, tps = best["layout"], best["time"]["tokens_per_s"]
                if base is None:
                    base = (n, tps)
                eff = (tps / n) / (base[1] / base[0])
                note = ""
                if not stopped and prev is not None and (tps <= prev * 1.02 or eff < 0.5):
                    note, stopped = " **(scaling stops)**", True
                prev = tps
                spans = lay["tp"] > lay["ranks_per_node"]
                pe = "-"
                if spans:
                    e = pipeline(best, model, wd, n, machine, link)
                    if e:
                        pe = (f"{e['tokens_per_s']:.0f} (P={e['P']}, bubble x{e['bubble']:.2f}, "
                              f"p2p {e['p2p']:.0f} s)")
                row = len(cmds) + 1
                cmds.append(best_a)
                print(f"| {row} | {n} | {lay['ranks_per_node']} | {lay['tp']} | {lay['dp']} | "
                      f"{'span ' + str(lay['tp'] // lay['ranks_per_node']) + ' nodes' if spans else 'in a node' if lay['tp'] > 1 else '-'} | "
                      f"{best['node']['bytes'] / 2**30:.0f} | {tps:.0f}{note} | {100 * comm(best):.1f}% | "
                      f"{100 * eff:.0f}% | {pe} |")
            print()
            if cmds:  # the rows differ only in --nodes, --ranks-per-node and --tp
                t = list(cmds[0])
                for opt, col in (("--nodes", "NODES"), ("--ranks-per-node", "RANKS/NODE"), ("--tp", "TP")):
                    t[t.index(opt) + 1] = col
                print(f"Each row: `deltatune {' '.join(t)}` with the row's columns "
                      f"(row 1: `--nodes {cmds[0][cmds[0].index('--nodes') + 1]} --ranks-per-node "
                      f"{cmds[0][cmds[0].index('--ranks-per-node') + 1]} --tp {cmds[0][cmds[0].index('--tp') + 1]}`).")
            if os.environ.get("ROW_COMMANDS"):
                for i, a in enumerate(cmds, 1):
                    print(f"- row {i}: `deltatune {' '.join(a)}`")
EOF
