#!/usr/bin/python3
"""Every file the build reads from the system belongs to a package that
scripts/install-deps.sh installs, directly or as a hard dependency.

A package that is on this machine but on no install list (left by an earlier
install, or pulled in as a mere Recommends) keeps the build green here and
breaks it on a fresh Debian 12: libdnnl-dev's CMake config looks for OpenCL,
which libdnnl-dev only recommends (issue 19). This check finds that class of
mistake on any machine, fresh or not.

What counts as read by the build:
  - every file a fresh configure opens, stats or executes (strace of
    `cmake -S SRC -B <scratch>`): CMake modules and package configs,
    pkg-config files, find_path/find_library hits, compilers;
  - every header the compiler read for the real build (its .o.d depfiles);
  - every library on the real build's link lines (link.txt), -lNAME resolved
    the way the compiler driver resolves it.
Files under /etc and the C library's locale files are left out: they are
read when present and change nothing when absent. Each remaining file is
mapped to its package with `dpkg -S`. A file under /usr/local or
/opt, or any file no package owns in a folder packages fill, is an error too:
nothing on a fresh machine would put it there.

The allowed packages are the install list, its Depends and Pre-Depends
(recursively, virtual packages through their installed providers, every
installed alternative of an or-group), the Essential packages and apt (what
a minimal Debian 12 has), read from the dpkg status file with python3-apt.

usage: check_build_deps.py SRC BUILD [--without PKG]... [--expect-missing PKG] [--guard PKG]
  --without PKG         take PKG out of the install list first
  --expect-missing PKG  invert: pass only if the check fails naming PKG
  --guard PKG           after a passing check, check the same files against
                        the list without PKG, which must name PKG (the
                        check's own proof that it can fail; one trace for both)
Exit 0 pass, 1 fail.
"""
import argparse
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import apt_pkg

SYSTEM_DIRS = ("/usr/", "/lib", "/opt/", "/bin/", "/sbin/")
# read when present, harmless when absent: the C library's locale and
# dynamic-linker settings (/etc is not looked at: configuration, not inputs)
AMBIENT = ("/usr/share/locale/", "/usr/lib/locale/", "/usr/share/zoneinfo/", "/usr/lib/x86_64-linux-gnu/gconv/")
LOCAL_DIRS = ("/usr/local/", "/opt/")
# strace -e trace=%file: calls whose first path argument is the file
PATH_ARG = re.compile(r'^\w+\((?:AT_FDCWD|\d+(?:<[^>]*>)?), "((?:[^"\\]|\\.)*)"|^\w+\("((?:[^"\\]|\\.)*)"')


def install_list(src, without):
    out = subprocess.run(["bash", os.path.join(src, "scripts/install-deps.sh"), "--list"],
                         check=True, capture_output=True, text=True).stdout
    pkgs = [p for p in out.split() if p not in without]
    missing = set(without) - set(out.split())
    if missing:
        sys.exit(f"check_build_deps: --without {' '.join(sorted(missing))}: not in scripts/install-deps.sh's list")
    return pkgs


def traced_configure(src, real_build):
    """Regular files a scratch configure of SRC opened, stat'ed or ran."""
    files = set()
    with tempfile.TemporaryDirectory(prefix="dt-deps-") as tmp:
        build = os.path.join(tmp, "build")
        trace = os.path.join(tmp, "trace")
        # the tokenizer files the real build fetched, so that this configure
        # finds them (sha256 checked) and asks no registry
        toks = os.path.join(tmp, "tokenizers")
        if os.path.isdir(os.path.join(real_build, "tokenizers")):
            shutil.copytree(os.path.join(real_build, "tokenizers"), toks)
        r = subprocess.run(["strace", "-f", "-ff", "-qq", "-s", "4096", "-e", "trace=%file", "-o", trace,
                            "cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DDT_BUILD_TESTS=ON",
                            "-DDT_TOKENIZER_DIR=" + toks],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"check_build_deps: the traced configure failed (exit {r.returncode}):\n{r.stderr[-4000:]}")
        for t in glob.glob(trace + ".*"):
            with open(t, errors="replace") as f:
                for line in f:
                    if " = -1 " in line or "= ?" in line:
                        continue
                    m = PATH_ARG.match(line)
                    if not m:
                        continue
                    p = m.group(1) if m.group(1) is not None else m.group(2)
                    if p.startswith("/") and not p.startswith(tmp):
                        files.add(p)
    return files


def depfile_headers(build):
    """Files named in the compiler's depfiles (Makefile syntax)."""
    files = set()
    for d in glob.glob(os.path.join(build, "**", "*.o.d"), recursive=True):
        with open(d, errors="replace") as f:
            words = f.read().replace("\\\n", " ").split()
        files.update(w for w in words if w.startswith("/") and not w.endswith(":"))
    return files


def link_libraries(build):
    """Libraries on the link lines: absolute paths, and -lNAME resolved."""
    files = set()
    cc = os.environ.get("CC", "cc")
    for lt in glob.glob(os.path.join(build, "**", "link.txt"), recursive=True):
        with open(lt) as f:
            words = shlex.split(f.read())
        for w in words:
            if w.startswith("/") and (".so" in w or w.endswith(".a")):
                files.add(w)
            elif w.startswith("-l") and len(w) > 2:
                for ext in (".so", ".a"):
                    p = subprocess.run([cc, f"-print-file-name=lib{w[2:]}{ext}"],
                                       capture_output=True, text=True).stdout.strip()
                    if p.startswith("/"):
                        files.add(os.path.normpath(p))
                        break
    return files


def system_files(paths, src, build):
    keep = set()
    for p in paths:
        p = os.path.normpath(p)
        if p.startswith((os.path.realpath(src) + "/", os.path.realpath(build) + "/", src + "/", build + "/")):
            continue
        if p.startswith(SYSTEM_DIRS) and not p.startswith(AMBIENT) and os.path.isfile(p):
            keep.add(p)
    return keep


def spellings(p):
    """The names dpkg may know a file by: as given, across the /usr merge, resolved."""
    out = [p]
    for a, b in (("/usr/lib/", "/lib/"), ("/usr/bin/", "/bin/"), ("/usr/sbin/", "/sbin/"), ("/usr/lib64/", "/lib64/")):
        if p.startswith(a):
            out.append(b + p[len(a):])
        elif p.startswith(b):
            out.append(a + p[len(b):])
    r = os.path.realpath(p)
    if r != p:
        out += spellings(r) if r not in out else []
    return list(dict.fromkeys(out))


def owners(files):
    """{file: [packages]} from dpkg -S; files no package owns map to []."""
    def ask(paths):
        res = {}
        for i in range(0, len(paths), 500):
            r = subprocess.run(["dpkg", "-S"] + paths[i:i + 500], capture_output=True, text=True)
            for line in r.stdout.splitlines():
                if line.startswith("diversion ") or ": " not in line:
                    continue
                pk, path = line.rsplit(": ", 1)
                res.setdefault(path, set()).update(x.strip().split(":")[0] for x in pk.split(","))
        return res

    found = ask(sorted(files))
    result = {}
    retry = {}
    for f in files:
        if f in found:
            result[f] = sorted(found[f])
        else:
            retry[f] = spellings(f)[1:]
    if retry:
        found2 = ask(sorted({s for ss in retry.values() for s in ss}))
        for f, ss in retry.items():
            pk = set()
            for s in ss:
                pk |= found2.get(s, set())
            result[f] = sorted(pk)
    return result


def allowed_packages(listed):
    """Installed packages a fresh machine with the list installed would have."""
    apt_pkg.init()
    cache = apt_pkg.Cache(None)
    installed = {p.name: p for p in cache.packages if p.current_ver is not None}

    def providers(name):
        """Installed packages whose installed version provides NAME."""
        try:
            pkg = cache[name]
        except KeyError:
            return []
        return [v.parent_pkg.name for _, _, v in pkg.provides_list
                if v.parent_pkg.current_ver is not None and v.parent_pkg.current_ver.id == v.id]

    # a listed name is installed, or provided by an installed package (as
    # install-deps.sh counts it: npm from a nodejs build that ships it)
    todo, absent = [], []
    for n in listed:
        got = [n] if n in installed else providers(n)
        todo += got
        if not got:
            absent.append(n)
    todo += [n for n, p in installed.items() if p.essential]
    todo += ["apt"]
    seen = set()
    while todo:
        n = todo.pop()
        if n in seen or n not in installed:
            continue
        seen.add(n)
        ver = installed[n].current_ver
        for kind in ("Depends", "PreDepends"):
            for group in ver.depends_list.get(kind, []):
                for dep in group:
                    t = dep.target_pkg
                    if t.name in installed:
                        todo.append(t.name)
                    for prov in t.provides_list:
                        owner = prov[2].parent_pkg
                        if owner.name in installed and owner.current_ver is not None and \
                           owner.current_ver.id == prov[2].id:
                            todo.append(owner.name)
    return seen, absent


def verdict(files, own, listed):
    """Print the check of FILES (owners OWN) against the LISTED packages:
    (packages the build reads that are not allowed {pkg: [files]}, files
    under /usr/local or /opt)."""
    allowed, _ = allowed_packages(listed)
    local = sorted(f for f in files if f.startswith(LOCAL_DIRS))
    bad = {}
    for f, pk in own.items():
        if pk and not (set(pk) & allowed):
            for p in pk:
                bad.setdefault(p, []).append(f)
    print(f"check_build_deps: {len(files)} system files read by the configure and build; "
          f"{len(listed)} listed packages, {len(allowed)} with their hard dependencies and the essential set")
    for f in local:
        print(f"error: the build reads {f}, which no Debian package installs (a fresh machine has no such file)")
    for p in sorted(bad):
        fs = sorted(bad[p])
        more = f" and {len(fs) - 3} more" if len(fs) > 3 else ""
        print(f"error: the build reads {', '.join(fs[:3])}{more} from package {p}, which scripts/install-deps.sh "
              f"does not install (not listed, nor a Depends/Pre-Depends of a listed package)")
    return bad, local


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("build")
    ap.add_argument("--without", action="append", default=[])
    ap.add_argument("--expect-missing")
    ap.add_argument("--guard")
    a = ap.parse_args()
    src, build = os.path.abspath(a.src), os.path.abspath(a.build)

    listed = install_list(src, a.without)
    _, absent = allowed_packages(listed)
    if absent and not a.expect_missing:
        print("check_build_deps: listed but not installed here (run scripts/install-deps.sh): " + " ".join(absent))
        return 1

    # the files and their owners once; the guard reuses them
    files = system_files(traced_configure(src, build) | depfile_headers(build) | link_libraries(build), src, build)
    own = owners(files)
    local = [f for f in files if f.startswith(LOCAL_DIRS)]
    for f in sorted(f for f in files if not own.get(f) and f not in local):
        print(f"  (owned by no package, ignored: {f})")
    bad, local = verdict(files, own, listed)
    failed = bool(bad or local)

    if a.expect_missing:
        if a.expect_missing in bad:
            print(f"check_build_deps: without {' '.join(a.without)} the check fails naming {a.expect_missing}, "
                  "as it should")
            return 0
        print(f"FAIL: with {' '.join(a.without)} taken out of the list the check did not name {a.expect_missing}")
        return 1
    print("check_build_deps: " + ("FAIL" if failed else "every file comes from a listed package"))
    if a.guard and not failed:
        print(f"check_build_deps: the guard: the same files against the list without {a.guard}")
        bad2, _ = verdict(files, own, install_list(src, a.without + [a.guard]))
        if a.guard not in bad2:
            print(f"FAIL: with {a.guard} taken out of the list the check did not name it")
            return 1
        print(f"check_build_deps: without {a.guard} the check fails naming it, as it should")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
