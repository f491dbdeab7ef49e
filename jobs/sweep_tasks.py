#!/usr/bin/env python3
"""Task files of the batch jobs (jobs/sweep.sbatch, jobs/array.sbatch).

Two formats, told apart by the first line that is neither blank nor a
comment (# or ;):
  INI   (`[task NAME]` sections, keys are `deltatune train` options without
        the dashes), the format of `deltatune sweep --tasks` (docs/sweep.md);
  lines (one task per line, the task's train options split on whitespace),
        the older format of array.sbatch (jobs/tasks.example.txt).
The INI is read with Python's configparser, set up to accept what
`deltatune sweep` (inih) accepts: keys keep their case, no interpolation,
`#`/`;` comment lines, `;` inline comments after whitespace, no [DEFAULT]
section. A section or key given twice, a continuation line, a key outside a
section, a section that is not [task NAME] or one without keys is refused
here, as deltatune sweep refuses them.

  sweep_tasks.py count FILE
      the number of tasks (for sbatch --array=1-N).
  sweep_tasks.py task FILE INDEX
      task INDEX (from 1), NUL-separated on stdout: its name (INI: the NAME
      of its section; lines: task-INDEX), its output folder's name (the name,
      characters other than letters, digits and ._+- made _), then its train
      options (INI: --key=value for each key; lines: the words of its line).
  sweep_tasks.py resolve FILE OUT_FILE --out-root DIR [--default KEY=VALUE]...
                         [--skip-done]
      the task file of one sweep job: each INI task, completed with the
      defaults for the keys it does not give, `out = DIR/NAME` unless it
      gives out, `metrics = OUT/metrics.jsonl` unless it gives metrics;
      creates those folders. With --skip-done a task whose OUT already holds
      deltas.safetensors (finished by an earlier run of the job) is left out.
      Writes OUT_FILE (INI), prints one line per task on stdout:
      `run NAME OUT` or `done NAME OUT`, tab-separated. Exit 3 when every
      task is done.
Errors: a message on stderr and exit 2.
"""
import argparse
import configparser
import os
import re
import sys


def die(msg):
    print("sweep_tasks.py: %s" % msg, file=sys.stderr)
    sys.exit(2)


def first_line(path):
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                s = line.strip()
                if s and s[0] not in "#;":
                    return s
    except OSError as e:
        die("cannot read the task file %s: %s" % (path, e.strerror))
    return ""


def is_ini(path):
    return first_line(path).startswith("[")


def read_ini(path):
    """[(name, [(key, value), ...]), ...] in file order."""
    cp = configparser.ConfigParser(interpolation=None, strict=True, empty_lines_in_values=False,
                                   comment_prefixes=("#", ";"), inline_comment_prefixes=(";",),
                                   default_section="\0no default section\0")
    cp.optionxform = str
    try:
        with open(path, encoding="utf-8") as f:
            cp.read_file(f)
    except configparser.Error as e:
        die("%s: %s" % (path, " ".join(str(e).split())))
    except OSError as e:
        die("cannot read the task file %s: %s" % (path, e.strerror))
    tasks = []
    for sec in cp.sections():
        if not sec.startswith("task ") or not sec[5:].strip():
            die("%s: section [%s]: expected [task NAME]" % (path, sec))
        name = sec[5:].strip()
        kv = []
        for key, value in cp.items(sec, raw=True):
            if "\n" in value:
                die("%s: [task %s] %s: a value spans lines (continuation lines are not supported)"
                    % (path, name, key))
            kv.append((key, value))
        if not kv:
            die("%s: [task %s] has no keys" % (path, name))
        tasks.append((name, kv))
    if not tasks:
        die("%s: no [task NAME] section" % path)
    return tasks


def read_lines(path):
    tasks = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if s and not s.startswith("#"):
                tasks.append(("task-%d" % (len(tasks) + 1), s.split()))
    return tasks


def folder_name(name):
    """A task name as one folder name."""
    s = re.sub(r"[^A-Za-z0-9._+-]", "_", name)
    return "_" + s if s in ("", ".", "..") else s


def cmd_count(a):
    print(len(read_ini(a.file) if is_ini(a.file) else read_lines(a.file)))


def cmd_task(a):
    if is_ini(a.file):
        tasks = read_ini(a.file)
        fmt = lambda kv: ["--%s=%s" % (k, v) for k, v in kv]  # noqa: E731
    else:
        tasks = read_lines(a.file)
        fmt = lambda words: words  # noqa: E731
    if not 1 <= a.index <= len(tasks):
        die("task %d: %s has %d task(s) (tasks count from 1)" % (a.index, a.file, len(tasks)))
    name, opts = tasks[a.index - 1]
    sys.stdout.write("\0".join([name, folder_name(name)] + fmt(opts)) + "\0")


def cmd_resolve(a):
    if not is_ini(a.file):
        die("%s is not an INI task file ([task NAME] sections; docs/sweep.md): deltatune sweep "
            "reads only those" % a.file)
    tasks = read_ini(a.file)
    defaults = []
    for d in a.default:
        key, eq, value = d.partition("=")
        if not eq or not key:
            die("--default %s: expected KEY=VALUE" % d)
        if value:
            defaults.append((key, value))
    seen = {}
    out = configparser.ConfigParser(interpolation=None, default_section="\0no default section\0")
    out.optionxform = str
    report = []
    for name, kv in tasks:
        keys = {k for k, _ in kv}
        kv = kv + [(k, v) for k, v in defaults if k not in keys]
        d = dict(kv)
        if "out" not in d:
            d["out"] = os.path.join(a.out_root, folder_name(name))
            kv.append(("out", d["out"]))
        if "metrics" not in d:
            kv.append(("metrics", os.path.join(d["out"], "metrics.jsonl")))
            d["metrics"] = kv[-1][1]
        o = os.path.normpath(d["out"])
        if o in seen:
            die("%s: tasks '%s' and '%s' write the same folder %s" % (a.file, seen[o], name, d["out"]))
        seen[o] = name
        done = a.skip_done and os.path.isfile(os.path.join(d["out"], "deltas.safetensors"))
        report.append("%s\t%s\t%s" % ("done" if done else "run", name, d["out"]))
        if done:
            continue
        for folder in (d["out"], os.path.dirname(d["metrics"])):
            if folder:
                os.makedirs(folder, exist_ok=True)
        sec = "task " + name
        out.add_section(sec)
        for k, v in kv:
            out.set(sec, k, v)
    with open(a.out_file, "w", encoding="utf-8") as f:
        f.write("# written by jobs/sweep_tasks.py from %s\n" % os.path.abspath(a.file))
        out.write(f)
    print("\n".join(report))
    if not out.sections():
        sys.exit(3)


def main():
    p = argparse.ArgumentParser(description="Task files of the deltatune batch jobs.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count")
    c.add_argument("file")
    c.set_defaults(fn=cmd_count)
    c = sub.add_parser("task")
    c.add_argument("file")
    c.add_argument("index", type=int)
    c.set_defaults(fn=cmd_task)
    c = sub.add_parser("resolve")
    c.add_argument("file")
    c.add_argument("out_file")
    c.add_argument("--out-root", required=True)
    c.add_argument("--default", action="append", default=[])
    c.add_argument("--skip-done", action="store_true")
    c.set_defaults(fn=cmd_resolve)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
