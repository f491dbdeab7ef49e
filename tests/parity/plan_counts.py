#!/usr/bin/env python3
"""`deltatune plan` counts what a family's checkpoint holds (issue 24): for
each model folder written by transformers' save_pretrained (the hf-parity
fixtures' model/ folders, made on the 16-core machine), the parameters plan
reports equal the elements of the folder's safetensors tensors, read here
with st.py, not the engine's reader (a tied head is stored once, and plan
counts it once). The presets' counts (test_family_presets) come from the
same architecture tables with the published config values.

  plan_counts.py DELTATUNE MODEL_DIR [MODEL_DIR ...]"""
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def file_elements(folder):
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise SystemExit("plan_counts: no safetensors in %s" % folder)
    return sum(int(a.size) for f in files for a in st.read(f)[0].values())


def plan_parameters(binary, folder):
    r = subprocess.run([binary, "plan", "--model", folder, "--seq-len", "8", "--batch-size", "1",
                        "--compare-full", "no"], capture_output=True, text=True)
    m = re.search(r"backbone: .*?: (\d+) parameters", r.stdout)
    if r.returncode != 0 or not m:
        raise SystemExit("plan_counts: deltatune plan --model %s failed (rc %d):\n%s%s"
                         % (folder, r.returncode, r.stdout, r.stderr))
    return int(m.group(1))


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    bad = 0
    for folder in sys.argv[2:]:
        want, got = file_elements(folder), plan_parameters(sys.argv[1], folder)
        ok = want == got
        bad += not ok
        print("%s %s: plan %d parameters, the files %d" % ("ok  " if ok else "FAIL", folder, got, want))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
