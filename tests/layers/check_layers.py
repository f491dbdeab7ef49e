#!/usr/bin/env python3
"""The layer rule and the absence of cycles (docs/design.md, "Layers").

usage: check_layers.py SOURCE_DIR [LIBRARY.a ...]

1. Includes only look down: every "..." include of a file resolves to a
   header of its own layer or of a layer below (base < text < io < mpi <
   engine < drivers; the engine's files of src/ are listed in
   CMakeLists.txt's DT_ENGINE_FILES, the rest of src/ are drivers).
2. No include cycle between files: a file and its header are one unit
   (x.c + x.h); the graph of units by includes has no cycle.
3. No call cycle between files: in the object files of the libraries given,
   the graph "x.o uses a symbol defined in y.o" has no cycle (nm).
4. Architecture as data: a family (DT_ARCH_GPT2, ...) is named only in the
   descriptor table (io/arch.*) and the config reader (io/hf_config.c);
   everything else reads descriptor fields.
Prints every violation and exits 1 when there is one.
"""
import collections
import os
import re
import subprocess
import sys

LAYERS = ["base", "text", "io", "mpi", "engine", "drivers"]


def engine_files(src):
    cm = open(os.path.join(src, "CMakeLists.txt")).read()
    m = re.search(r"set\(DT_ENGINE_FILES([^)]*)\)", cm)
    return set(m.group(1).split())


def layer_of(rel, engine):
    top = rel.split("/")[0]
    if top in ("base", "text", "io", "mpi"):
        return top
    if rel.startswith("src/methods/"):
        return "engine"
    stem = os.path.splitext(os.path.basename(rel))[0]
    # a header without a source of its own belongs to the engine when the
    # engine's files use it (method.h, vmath.h, model.h ...): decided below
    return "engine" if stem in engine else "drivers"


def sccs(graph):
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(100000)

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    src = os.path.abspath(sys.argv[1])
    libs = sys.argv[2:]
    engine = engine_files(src)
    files = []
    for top in ("base", "text", "io", "mpi", "src", "src/methods"):
        d = os.path.join(src, top)
        files += [f"{top}/{f}" for f in sorted(os.listdir(d)) if f.endswith((".c", ".h"))]
    by_name = collections.defaultdict(list)
    for f in files:
        by_name[os.path.basename(f)].append(f)
    inc = {}
    for f in files:
        text = open(os.path.join(src, f), encoding="utf-8").read()
        inc[f] = re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, re.M)
    # headers of src/ without a .c: engine when an engine file includes them
    layer = {f: layer_of(f, engine) for f in files}
    changed = True
    while changed:
        changed = False
        for f in files:
            if layer[f] != "engine":
                continue
            for h in inc[f]:
                for g in by_name.get(os.path.basename(h), []):
                    if g.startswith("src/") and not os.path.exists(
                            os.path.join(src, g[:-2] + ".c")) and layer[g] == "drivers":
                        layer[g] = "engine"
                        changed = True
    bad = []
    units = collections.defaultdict(set)
    for f in files:
        uf = os.path.splitext(f)[0]
        for h in inc[f]:
            cands = by_name.get(os.path.basename(h), [])
            if f.startswith("src/methods/"):
                local = [c for c in cands if c.startswith("src/methods/")]
                cands = local or cands
            if not cands:
                continue  # a generated or system-side header
            if len(cands) > 1:
                bad.append(f"{f}: \"{h}\" is ambiguous ({', '.join(cands)})")
                continue
            g = cands[0]
            if LAYERS.index(layer[g]) > LAYERS.index(layer[f]):
                bad.append(f"{f} ({layer[f]}) includes {g} ({layer[g]}): an include that goes up")
            ug = os.path.splitext(g)[0]
            if ug != uf:
                units[uf].add(ug)
    for comp in sccs(units):
        bad.append("include cycle between " + ", ".join(comp))
    arch_files = {"io/arch.h", "io/arch.c", "io/hf_config.c"}
    for f in files:
        if f in arch_files:
            continue
        text = open(os.path.join(src, f), encoding="utf-8").read()
        for n, line in enumerate(text.splitlines(), 1):
            for name in re.findall(r"\bDT_ARCH_(?!MAX_)[A-Z0-9_]+", line):
                bad.append(f"{f}:{n}: names the family {name} (read the descriptor, io/arch.h)")
    if libs:
        defs, uses = {}, collections.defaultdict(set)
        for lib in libs:
            out = subprocess.run(["nm", "-A", "-P", lib], capture_output=True, text=True,
                                 check=True).stdout
            for line in out.splitlines():
                p = line.split()
                if len(p) < 3:
                    continue
                obj = p[0].rstrip(":").split("[")[-1].rstrip("]")
                sym, t = p[1], p[2]
                if t in "TDBRG":
                    defs.setdefault(sym, obj)
                elif t in "Uw":
                    uses[obj].add(sym)
        calls = collections.defaultdict(set)
        for obj, syms in uses.items():
            for s in syms:
                if s in defs and defs[s] != obj:
                    calls[obj].add(defs[s])
        for comp in sccs(calls):
            bad.append("call cycle between " + ", ".join(comp))
    for b in bad:
        print(b)
    print(f"{len(files)} files, {sum(len(v) for v in inc.values())} includes, "
          f"{len(libs)} libraries: {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
