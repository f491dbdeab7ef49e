#!/usr/bin/python3
"""Results of bench/quality.sh (stdlib only).

  quality_report.py --cell DIR --model M --task T --method X --lr LR --steps N --ranks R --jobs J --eval-wall S
      one cell folder (train.log, metrics.jsonl, eval.txt, segments, *.cmd) -> one JSON line on stdout
  quality_report.py [--doc docs/quality.md] RESULTS...
      merge result lines (result.json / results.jsonl files, or folders searched for them; for a cell found
      twice the one with more steps, then the newer, wins; a cell's seeds are averaged) and write the generated part of the doc, between
      the markers <!-- quality:begin --> and <!-- quality:end --> (appended when they are missing).
"""
import argparse
import json
import os
import platform
import re
import socket
import sys
import time

# ../shared/tasks/README.md: exact match after 600 steps, transformers + PEFT, bf16 autocast.
# method -> (label, lr, {(model, task): accuracy}, (trainable gpt2, trainable llama))
G, L, S, F = "tiny-gpt2", "tiny-llama", "supersense", "fortune-topic"
REFERENCE = {
    "full": ("full fine-tuning", "1e-4", {(G, S): .758, (G, F): .600, (L, S): .757, (L, F): .584}, (5853184, 6450432)),
    "lastlayer": ("last layer", "5e-4", {(G, S): .710, (G, F): .502, (L, S): .699, (L, F): .517}, (789760, 725504)),
    "lora": ("LoRA r=8 a=16, c_attn / q,v", "2e-3", {(G, S): .692, (G, F): .567, (L, S): .690, (L, F): .531},
             (49152, 43008)),
    "ia3": ("IA3", "1e-2", {(G, S): .667, (G, F): .529, (L, S): .642, (L, F): .502}, (10752, 5664)),
    "bitfit": ("BitFit", "3e-3", {(G, S): .616, (G, F): .479}, (17152, None)),
    "prefix": ("prefix, 10 tokens, MLP 256", "3e-3", {(G, S): .519, (G, F): .176, (L, S): .592, (L, F): .393},
               (857856, 429056)),
    "prompt": ("prompt, 10 tokens", "3e-2", {(G, S): .404, (G, F): .385, (L, S): .426, (L, F): .295}, (2560, 2560)),
}
EXTRA = {"adapter": "Houlsby adapter, m=8", "said": "SAID, d=1000"}
ORDER = ["full", "lastlayer", "lora", "ia3", "bitfit", "prefix", "prompt", "adapter", "said"]
MODELS, TASKS = [G, L], [S, F]
BEGIN, END = "<!-- quality:begin -->", "<!-- quality:end -->"


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def machine():
    cpu = ""
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = read("/proc/loadavg").split()[:1]
    return {"host": socket.gethostname(), "cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "load1": float(load[0]) if load else None}


def cell(a):
    d = a.cell
    log = read(os.path.join(d, "train.log"))
    trainable = sum(int(n) for n in re.findall(r"^method \S+: (\d+) trainable parameters", log, re.M)
                    [-len(a.method.split(",")):])
    medians = [float(x) for x in re.findall(r"^summary: median step ([0-9.]+)s", log, re.M)]
    metrics = [json.loads(line) for line in read(os.path.join(d, "metrics.jsonl")).splitlines() if line.strip()]
    losses = [m["loss"] for m in metrics if m.get("loss") is not None]
    ev = read(os.path.join(d, "eval.txt"))
    em = re.search(r"^exact_match ([0-9.]+) \((\d+) of (\d+) rows\)", ev, re.M)
    ta = re.search(r"^token_accuracy ([0-9.]+)", ev, re.M)
    el = re.search(r"^loss ([0-9.]+)", ev, re.M)
    if not em:
        sys.exit("quality_report.py: no exact_match in %s/eval.txt" % d)
    segs = [line.split() for line in read(os.path.join(d, "segments")).splitlines() if line.strip()]
    train_wall = sum(float(s[0]) for s in segs)
    train_cpu = sum(float(s[2]) for s in segs if len(s) > 2)
    tail = losses[-20:]
    r = {
        "model": a.model, "task": a.task, "method": a.method, "lr": a.lr, "steps": a.steps,
        "steps_done": len(metrics), "trainable": trainable,
        "exact_match": float(em.group(1)), "exact_rows": int(em.group(2)), "eval_rows": int(em.group(3)),
        "token_accuracy": float(ta.group(1)) if ta else None, "eval_loss": float(el.group(1)) if el else None,
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(tail) / len(tail) if tail else None,
        "train_wall_s": round(train_wall, 2), "eval_wall_s": a.eval_wall, "wall_s": round(train_wall + a.eval_wall, 2),
        "segments": len(segs), "median_step_s": medians[-1] if medians else None,
        "step_s": round(train_wall / len(metrics), 4) if metrics else None,
        "train_cpu_s": round(train_cpu, 2), "eval_cpu_s": a.eval_cpu,
        "cpu_step_s": round(train_cpu / len(metrics), 4) if metrics and train_cpu else None,
        "ranks": a.ranks, "jobs": a.jobs, "seed": a.seed or 1,
        "train_cmd": "deltatune " + read(os.path.join(d, "train.cmd")).strip(),
        "eval_cmd": "deltatune " + read(os.path.join(d, "eval.cmd")).strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
    }
    print(json.dumps(r))


def load(paths):
    found = []
    for p in paths:
        if os.path.isdir(p):
            for root, _, files in os.walk(p):
                found += [os.path.join(root, f) for f in files if f == "result.json"]
        else:
            found.append(p)
    best = {}
    for f in found:
        for line in read(f).splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            k = (r["model"], r["task"], r["method"], r.get("seed", 1))
            o = best.get(k)
            if o is None or (r["steps_done"], r["date"]) > (o["steps_done"], o["date"]):
                best[k] = r
    return best


def pct(x):
    return "-" if x is None else "%.3f" % x


def seeds_of(best, mo, t, me):
    """The finished-or-not results of one cell, seed 1 first."""
    return [best[k] for k in sorted(k for k in best if k[:3] == (mo, t, me))]


def mean_cell(rs):
    """One result standing for a cell's seeds: the mean exact match of those with the most steps."""
    if not rs:
        return None
    top = max(r["steps_done"] for r in rs)
    rs = [r for r in rs if r["steps_done"] == top]
    m = dict(rs[0])
    m["exact_match"] = sum(r["exact_match"] for r in rs) / len(rs)
    m["seeds"] = [(r.get("seed", 1), r["exact_match"]) for r in rs]
    return m


def peft_section(best, peft):
    """The reference recipe re-run through transformers + PEFT at several seeds (bench/quality_peft.py lines),
    next to the reference table's single cell and deltatune's mean over its seeds."""
    groups = {}
    for r in peft:
        groups.setdefault((r["model"], r["task"], r["method"], r["precision"]), []).append(r)
    out = ["### The reference's own seed-to-seed spread (transformers + PEFT, `bench/quality_peft.py`)", "",
           "The published table has one seed per cell. The same recipe through transformers %s + PEFT %s (torch %s, "
           "CPU, %s thread(s) per run; %s, %s) at other seeds:" % (
               peft[0].get("transformers", "?"), peft[0].get("peft", "?"), peft[0].get("torch", "?"),
               peft[0].get("threads", "?"), peft[0].get("machine", "?"), peft[0].get("date", "?")), "",
           "| model | task | method | precision | PEFT exact match per seed | PEFT mean (sd) | reference table | "
           "deltatune mean (seeds) | deltatune - PEFT mean |",
           "|---|---|---|---|---|---|---|---|---|"]
    for (mo, t, me, prec), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["seed"])
        v = [r["exact_match"] for r in rs]
        mean = sum(v) / len(v)
        sd = (sum((x - mean) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
        ref = REFERENCE[me][2].get((mo, t)) if me in REFERENCE else None
        dt = mean_cell(seeds_of(best, mo, t, me))
        dts = "-" if dt is None else "%.3f (%d)" % (dt["exact_match"], len(dt["seeds"]))
        dd = "-" if dt is None else "%+.3f" % (dt["exact_match"] - mean)
        out.append("| %s | %s | %s | %s | %s | %.3f (%.3f) | %s | %s | %s |" % (
            mo, t, me, prec, ", ".join("%d: %.3f" % (r["seed"], r["exact_match"]) for r in rs), mean, sd, pct(ref),
            dts, dd))
    out.append("")
    return out


def doc(best, peft=()):
    out = []
    steps = sorted({r["steps_done"] for r in best.values()})
    out.append("Generated by `bash bench/quality.sh report` from %d cells (%s steps)." %
               (len(best), ", ".join(map(str, steps)) or "no"))
    out.append("")
    diffs = []
    for mo in MODELS:
        fam = 0 if mo == G else 1
        if not any(k[0] == mo for k in best):
            continue
        out.append("### %s" % mo)
        out.append("")
        out.append("| method (lr) | supersense PEFT | deltatune | diff | fortune-topic PEFT | deltatune | diff "
                   "| trainable PEFT | deltatune |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for me in ORDER:
            if me in REFERENCE:
                label, lr, acc, tr = REFERENCE[me]
                reft = tr[fam]
            else:
                label, lr, acc, reft = EXTRA[me], None, {}, None
            if reft is None and me in REFERENCE:
                continue  # BitFit on LLaMA: no biases
            rs = [mean_cell(seeds_of(best, mo, t, me)) for t in TASKS]
            if all(r is None for r in rs) and me not in REFERENCE:
                continue
            if lr is None:
                lr = next((r["lr"] for r in rs if r), "?")
            row = ["%s (%s)" % (label, lr)]
            dtt = None
            for t, r in zip(TASKS, rs):
                ref = acc.get((mo, t))
                mine = r["exact_match"] if r else None
                if r:
                    dtt = r["trainable"]
                d = None if ref is None or mine is None else mine - ref
                if d is not None and r["steps_done"] == 600:
                    diffs.append((abs(d), mo, t, me, d))
                flag = "" if not r or r["steps_done"] == 600 else " (%d steps)" % r["steps_done"]
                if r and len(r["seeds"]) > 1:
                    flag += " (mean of seeds %s: %s)" % (",".join(str(x[0]) for x in r["seeds"]),
                                                          ", ".join("%.3f" % x[1] for x in r["seeds"]))
                row += [pct(ref), pct(mine) + flag, "-" if d is None else "%+.3f" % d]
            row += ["-" if reft is None else "{:,}".format(reft), "-" if dtt is None else "{:,}".format(dtt)]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    if diffs:
        diffs.sort(reverse=True)
        within = sum(1 for x in diffs if x[0] <= 0.03)
        worse = sum(1 for x in diffs if x[4] < -0.03)
        out.append("Cells of the reference table at 600 steps: %d; within 3 points: %d; more than 3 points below the "
                   "reference: %d; largest difference %+.3f (%s %s %s)." % (
                       len(diffs), within, worse, diffs[0][4], diffs[0][1], diffs[0][2], diffs[0][3]))
        out.append("")
    if peft:
        out += peft_section(best, list(peft))
    out.append("### Every cell")
    out.append("")
    out.append("| model | task | method | lr | seed | steps | exact match | token acc | eval loss | train loss "
               "first -> last 20 | train wall s | s/step | eval s | calls | jobs x ranks |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for mo in MODELS:
        for t in TASKS:
            for me in ORDER:
                for r in seeds_of(best, mo, t, me):
                    out.append("| %s | %s | %s | %s | %d | %d | %.3f (%d/%d) | %s | %s | %.3f -> %.3f | %.0f | %.3f "
                           "| %.0f | %d | %d x %d |" % (
                               mo, t, me, r["lr"], r.get("seed", 1), r["steps_done"], r["exact_match"], r["exact_rows"],
                               r["eval_rows"], pct(r["token_accuracy"]), pct(r["eval_loss"]), r["first_loss"],
                               r["final_loss"], r["train_wall_s"], r["step_s"], r["eval_wall_s"], r["segments"],
                               r["jobs"], r["ranks"]))
    out.append("")
    est = [r for r in best.values() if r["steps_done"] < 600]
    if est:
        out.append("### Projected cost of 600 steps (from the short runs above)")
        out.append("")
        out.append("CPU seconds of one single-rank cell = CPU s/step x 600 + the eval's CPU seconds (the cost on a "
                   "free core of the machine measured: wall time on a loaded machine is longer); the wall s/step "
                   "as measured, under the load listed in Machines, next to it.")
        out.append("")
        out.append("| model | method | supersense CPU s/step (wall) | 600 steps + eval, CPU s | fortune-topic CPU "
                   "s/step (wall) | 600 steps + eval, CPU s |")
        out.append("|---|---|---|---|---|---|")
        total = 0.0
        for mo in MODELS:
            for me in ORDER:
                rs = [mean_cell(seeds_of(best, mo, t, me)) for t in TASKS]
                if all(r is None or r["steps_done"] >= 600 for r in rs):
                    continue
                row = [mo, me]
                for r in rs:
                    if r is None:
                        row += ["-", "-"]
                        continue
                    per = r.get("cpu_step_s") or r["step_s"]
                    c = per * 600 + (r.get("eval_cpu_s") or r["eval_wall_s"])
                    total += c
                    row += ["%.2f (%.2f)" % (per, r["step_s"]), "%.0f" % c]
                out.append("| " + " | ".join(row) + " |")
        out.append("")
        out.append("Sum over these cells: %.0f core-seconds (%.1f core-hours)." % (total, total / 3600))
        out.append("")
    machines = {}
    for r in best.values():
        m = r["machine"]
        machines.setdefault((m["host"], m["cpu"], m["cores"]), []).append(r)
    out.append("### Machines")
    out.append("")
    for (host, cpu, cores), rs in sorted(machines.items()):
        dates = sorted(r["date"] for r in rs)
        loads = [r["machine"]["load1"] for r in rs if r["machine"]["load1"] is not None]
        out.append("- %s: %s, %d cores; %d cells, %s .. %s, JOBS %s, load average at the end of a cell %.1f..%.1f"
                   % (host, cpu, cores, len(rs), dates[0], dates[-1],
                      "/".join(sorted({str(r["jobs"]) for r in rs})), min(loads or [0]), max(loads or [0])))
    out.append("")
    ex = best.get((L, S, "lora", 1)) or next(iter(best.values()), None)
    if ex:
        out.append("Commands of one cell (%s %s %s; every cell's are in its result line):" %
                   (ex["model"], ex["task"], ex["method"]))
        out.append("")
        out.append("```")
        out.append(ex["train_cmd"])
        out.append(ex["eval_cmd"])
        out.append("```")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell")
    for k in ("model", "task", "method", "lr"):
        ap.add_argument("--" + k)
    for k in ("steps", "ranks", "jobs", "seed"):
        ap.add_argument("--" + k, type=int)
    ap.add_argument("--eval-wall", type=float, default=0.0)
    ap.add_argument("--eval-cpu", type=float, default=0.0)
    ap.add_argument("--doc", default="docs/quality.md")
    ap.add_argument("--peft", action="append", default=[],
                    help="JSON lines of bench/quality_peft.py runs (the reference's own seed spread)")
    ap.add_argument("results", nargs="*")
    a = ap.parse_args()
    if a.cell:
        return cell(a)
    if not a.results:
        ap.error("no results given (files or folders)")
    best = load(a.results)
    if not best:
        sys.exit("quality_report.py: no results in " + " ".join(a.results))
    peft = [json.loads(line) for f in a.peft for line in read(f).splitlines() if line.strip()]
    gen = doc(best, peft)
    text = read(a.doc)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN) + len(BEGIN)] + "\n" + gen + text[text.index(END):]
    else:
        text += "\n" + BEGIN + "\n" + gen + END + "\n"
    with open(a.doc, "w") as f:
        f.write(text)
    print("quality_report.py: %d cells -> %s" % (len(best), a.doc))


if __name__ == "__main__":
    main()
