#!/usr/bin/env python3
"""Results of deltatune scaling studies (jobs/scaling.sh).

  scaling_report.py record --dir RUN --study S --launcher L --ranks R --nodes N
                           --rc RC [--job-id ID] -- TRAIN_OPTIONS...
      one point: read RUN/train.log (the `summary: median step ...` and, where
      printed, `summary: communication ...` lines of deltatune train), RUN/metrics.jsonl and RUN/mem/rank-*.txt
      (jobs/peakmem.sh) and write RUN/result.json.
  scaling_report.py report DIR
      every DIR/*/result.json -> DIR/results.json (all points), DIR/report.md
      (Markdown table) and, with matplotlib, DIR/scaling-throughput.png,
      DIR/scaling-efficiency.png, DIR/scaling-memory.png and, when deltatune
      printed its `summary: communication ...` line, DIR/scaling-communication.png.

Speedup and parallel efficiency are relative to the study's smallest rank
count R0: speedup = tokens/s(R) / tokens/s(R0), efficiency = speedup * R0 / R.
For strong scaling (fixed global batch) that is T(R0) R0 / (T(R) R); for
weak scaling (fixed rows per rank) it is the step time ratio T(R0) / T(R).
Only the Python standard library is needed except for the plots.
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys

SUMMARY = re.compile(
    r"^summary: median step [0-9.naif]+s: ([0-9.]+) tokens/s, ([0-9.]+) GFLOP/s model FLOPs "
    r"\(([0-9.]+) MFLOP per token, ([0-9]+) of ([0-9]+) tokens scored per step\)")
# printed by deltatune builds that time their communication (rank 0's time in
# MPI sums and gradient buckets over the time of the steps)
COMM = re.compile(r"^summary: communication ([0-9.]+)s of ([0-9.]+)s in the steps \(([0-9.]+)%")
COMM_NOTE = ("Communication share: not reported. The deltatune that ran does not print a "
             "`summary: communication ...` line, so there is no communication column or plot.")


def option(args, name):
    """Value of --name in a deltatune argument list (--name V or --name=V)."""
    for i, a in enumerate(args):
        if a == "--" + name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--" + name + "="):
            return a.split("=", 1)[1]
    return None


def record(a):
    res = {"study": a.study, "launcher": a.launcher, "job_id": a.job_id or None,
           "nodes": a.nodes, "ranks": a.ranks, "rc": a.rc,
           "model": option(a.train, "model"), "data": option(a.train, "data"),
           "method": option(a.train, "method"),
           "batch_size": int(option(a.train, "batch-size") or 0),
           "steps": int(option(a.train, "steps") or 0), "tp": int(option(a.train, "tp") or 1),
           "command": a.train}
    log = os.path.join(a.dir, "train.log")
    lines = open(log, errors="replace").read().splitlines() if os.path.exists(log) else []
    for line in lines:
        m = SUMMARY.match(line)
        if m:
            tps, gflops = float(m.group(1)), float(m.group(2))
            tokens = int(m.group(5))
            res.update(tokens_per_step=tokens, tokens_per_s=tps, gflops=gflops,
                       mflop_per_token=float(m.group(3)),
                       median_step_s=tokens / tps if tps > 0 else None)
        m = COMM.match(line)
        if m:
            res.update(comm_s=float(m.group(1)), comm_window_s=float(m.group(2)),
                       comm_share=float(m.group(3)) / 100)
    # per-step throughput from the metrics (step 0 is warm-up, as in the summary)
    mpath = os.path.join(a.dir, "metrics.jsonl")
    if os.path.exists(mpath):
        steps = [json.loads(l) for l in open(mpath) if l.strip()]
        res["steps_recorded"] = len(steps)
        tps = [s["tokens_per_s"] for s in steps[1:] or steps]
        if tps:
            res["metrics_median_tokens_per_s"] = statistics.median(tps)
    mem = []
    for f in sorted(glob.glob(os.path.join(a.dir, "mem", "rank-*.txt")),
                    key=lambda p: int(re.findall(r"rank-(\d+)", p)[0])):
        kv = dict(l.split(" ", 1) for l in open(f).read().splitlines() if " " in l)
        if "max_rss_kib" in kv:
            mem.append({"rank": int(re.findall(r"rank-(\d+)", f)[0]),
                        "max_rss_kib": int(kv["max_rss_kib"]),
                        "source": kv.get("source"), "host": kv.get("host")})
    res["memory"] = mem
    if mem:
        rss = [m["max_rss_kib"] for m in mem]
        res["max_rss_mib_max"] = max(rss) / 1024
        res["max_rss_mib_mean"] = sum(rss) / len(rss) / 1024
    res["ok"] = a.rc == 0 and "tokens_per_s" in res
    with open(os.path.join(a.dir, "result.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    return 0


def load(d):
    pts = []
    for f in sorted(glob.glob(os.path.join(d, "*", "result.json"))):
        r = json.load(open(f))
        r["dir"] = os.path.basename(os.path.dirname(f))
        pts.append(r)
    return pts


def derive(pts):
    """Speedup and efficiency per study, against its smallest rank count."""
    for study in sorted({p["study"] for p in pts}):
        ok = sorted((p for p in pts if p["study"] == study and p.get("ok")),
                    key=lambda p: (p["ranks"], p["nodes"]))
        if not ok:
            continue
        base = ok[0]
        for p in ok:
            p["speedup"] = p["tokens_per_s"] / base["tokens_per_s"]
            p["efficiency"] = p["speedup"] * base["ranks"] / p["ranks"]
            p["base_ranks"] = base["ranks"]


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def table(pts, d):
    out = []
    first = pts[0] if pts else {}
    out.append("# Scaling study\n")
    study_txt = os.path.join(d, "study.txt")
    if os.path.exists(study_txt):
        out.append("```\n" + open(study_txt).read().rstrip() + "\n```\n")
    out.append(f"Backbone `{first.get('model')}`, data `{first.get('data')}`, "
               f"method `{first.get('method')}`, {first.get('steps')} steps per run; "
               "median step time over the steps after the first. Speedup and "
               "efficiency are relative to the smallest rank count of each study.\n")
    comm = any(p.get("comm_share") is not None for p in pts)
    out.append("| study | nodes | ranks | global batch | tokens/step | median step (s) | tokens/s "
               "| speedup | efficiency | GFLOP/s | peak RSS/rank MiB (max / mean) |" +
               (" communication |" if comm else ""))
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if comm else ""))
    for p in sorted(pts, key=lambda p: (p["study"], p["ranks"], p["nodes"])):
        if not p.get("ok"):
            out.append(f"| {p['study']} | {p['nodes']} | {p['ranks']} | {p['batch_size']} "
                       f"| failed (exit {p['rc']}, see {p['dir']}/train.log) | | | | | | |" +
                       (" |" if comm else ""))
            continue
        mem = "-"
        if p.get("max_rss_mib_max") is not None:
            mem = f"{p['max_rss_mib_max']:.1f} / {p['max_rss_mib_mean']:.1f}"
        share = p.get("comm_share")
        out.append(f"| {p['study']} | {p['nodes']} | {p['ranks']} | {p['batch_size']} "
                   f"| {p['tokens_per_step']} | {fmt(p.get('median_step_s'), '.4f')} "
                   f"| {p['tokens_per_s']:.0f} | {fmt(p.get('speedup'), '.2f')} "
                   f"| {fmt(p.get('efficiency'), '.2f')} | {p['gflops']:.2f} | {mem} |" +
                   ((" - |" if share is None else f" {100 * share:.1f}% |") if comm else ""))
    how = {"gnu-time": "GNU time's maximum resident set size (the kernel's ru_maxrss) of each rank",
           "vmhwm-sampled": "VmHWM of /proc/PID/status of each rank, read every 0.2 s"}
    sources = sorted({m.get("source") for p in pts for m in p.get("memory", [])} - {None})
    out.append("")
    out.append("Peak RSS per rank (jobs/peakmem.sh): " +
               ("; ".join(how.get(s, s) for s in sources) if sources else "not measured") + ".\n")
    if comm:
        out.append("Communication: rank 0's time in MPI sums (tensor-group sums and gradient "
                   "buckets) as a share of the time of the steps, from deltatune's "
                   "`summary: communication ...` line.\n")
    else:
        out.append(COMM_NOTE + "\n")
    return "\n".join(out)


def plots(pts, d):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plots not made: matplotlib is missing (Debian: python3-matplotlib)"
    made = []
    studies = sorted({p["study"] for p in pts if p.get("ok")})

    def series(study, key):
        s = sorted((p for p in pts if p["study"] == study and p.get("ok")
                    and p.get(key) is not None), key=lambda p: p["ranks"])
        return [p["ranks"] for p in s], [p[key] for p in s], s

    def figure(name, ylabel, key, scale=1.0, ideal=None):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for study in studies:
            x, y, s = series(study, key)
            if not x:
                continue
            line, = ax.plot(x, [v * scale for v in y], "o-", label=f"{study} scaling")
            if ideal and s:
                ax.plot(x, [ideal(s[0], p) * scale for p in s], "--", color=line.get_color(),
                        alpha=0.5, label=f"{study}: ideal")
        ax.set_xscale("log", base=2)
        ranks = sorted({p["ranks"] for p in pts if p.get("ok")})
        ax.set_xticks(ranks)
        ax.set_xticklabels([str(r) for r in ranks])
        ax.set_xlabel("MPI ranks")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = os.path.join(d, name)
        fig.savefig(path)
        plt.close(fig)
        made.append(name)

    figure("scaling-throughput.png", "tokens/s", "tokens_per_s",
           ideal=lambda b, p: b["tokens_per_s"] * p["ranks"] / b["ranks"])
    figure("scaling-efficiency.png", "parallel efficiency", "efficiency", ideal=lambda b, p: 1.0)
    figure("scaling-memory.png", "peak RSS per rank, max over ranks (MiB)", "max_rss_mib_max")
    if any(p.get("comm_share") is not None for p in pts if p.get("ok")):
        figure("scaling-communication.png", "communication share of the step time (%)",
               "comm_share", scale=100.0)
    return "plots: " + ", ".join(made)


def report(a):
    pts = load(a.dir)
    if not pts:
        print(f"scaling_report.py: no */result.json under {a.dir}", file=sys.stderr)
        return 1
    derive(pts)
    with open(os.path.join(a.dir, "results.json"), "w") as f:
        json.dump(pts, f, indent=1)
        f.write("\n")
    md = table(pts, a.dir)
    note = plots(pts, a.dir)
    names = ("scaling-throughput.png", "scaling-efficiency.png", "scaling-memory.png",
             "scaling-communication.png")
    md += "\n" + "\n".join(f"![{n}]({n})" for n in names
                           if os.path.exists(os.path.join(a.dir, n))) + "\n"
    with open(os.path.join(a.dir, "report.md"), "w") as f:
        f.write(md)
    print(md)
    print(f"scaling_report.py: {os.path.join(a.dir, 'report.md')}; {note}")
    failed = [p["dir"] for p in pts if not p.get("ok")]
    if failed:
        print(f"scaling_report.py: failed runs: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="write RUN/result.json of one point")
    r.add_argument("--dir", required=True)
    r.add_argument("--study", required=True, choices=["strong", "weak"])
    r.add_argument("--launcher", required=True)
    r.add_argument("--ranks", type=int, required=True)
    r.add_argument("--nodes", type=int, required=True)
    r.add_argument("--rc", type=int, required=True)
    r.add_argument("--job-id", default="")
    r.add_argument("train", nargs="*", help="the deltatune train options of the run")
    p = sub.add_parser("report", help="table and plots of every point under DIR")
    p.add_argument("dir")
    a = ap.parse_args()
    return record(a) if a.cmd == "record" else report(a)


if __name__ == "__main__":
    sys.exit(main())
