#!/usr/bin/env python3
"""The checks a build's ctest runs through test_parity, test_identity and
deltatune gradcheck, one line per case, sorted:
NAME PROGRAM ranks=NP words...

Reads `ctest --show-only=json-v1` of BUILD_DIR (or of a saved JSON file) and
understands both forms: one case per ctest entry (test_parity FAMILY METHOD TOL
options, launched through DT_TEST_LAUNCH="mpiexec ... -np N"; test_identity
FAMILY options; deltatune gradcheck options) and several cases per entry
([mpiexec -np N] test_parity|test_identity|test_gradcheck --case NAME words
--case ...). Two builds run the same checks when their lists are equal:

    diff <(python3 tests/case_list.py old.json) <(python3 tests/case_list.py build)
"""
import json
import os
import subprocess
import sys

PROGRAMS = {"test_parity": "parity", "test_identity": "identity", "test_gradcheck": "gradcheck"}


def show_only(src):
    if os.path.isdir(src):
        out = subprocess.run(["ctest", "--show-only=json-v1"], cwd=src, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out)
    with open(src) as f:
        return json.load(f)


def ranks(words):
    """-np N of an mpiexec command line (1 when there is none)."""
    return int(words[words.index("-np") + 1]) if "-np" in words else 1


def cases(doc):
    for t in doc["tests"]:
        cmd = t.get("command") or []
        base = [os.path.basename(w) for w in cmd]
        env = {}
        for p in t.get("properties", []):
            if p["name"] == "ENVIRONMENT":
                env = dict(e.split("=", 1) for e in p["value"])
        if len(cmd) > 1 and base[0] == "deltatune" and cmd[1] == "gradcheck":
            yield t["name"], "gradcheck", 1, cmd[2:]
            continue
        at = [i for i, w in enumerate(base) if w in PROGRAMS]
        if not at:
            continue
        kind, args = PROGRAMS[base[at[0]]], cmd[at[0] + 1:]
        if "--case" not in args:  # one case per entry
            yield t["name"], kind, ranks(env.get("DT_TEST_LAUNCH", "").split()), args
            continue
        np = ranks(cmd[:at[0]])
        cut = [i for i, w in enumerate(args) if w == "--case"] + [len(args)]
        for a, b in zip(cut, cut[1:]):
            yield args[a + 1], kind, np, args[a + 2:b]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    lines = sorted(f"{name} {kind} ranks={np} {' '.join(args)}" for name, kind, np, args in
                   cases(show_only(sys.argv[1])))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
