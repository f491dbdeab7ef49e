#!/usr/bin/env bash
# Install the Debian packages deltatune needs, only those that are missing.
# Non-interactive; silent when everything is already present.
# Usage: bash scripts/install-deps.sh [--with-reference]   (reference: torch/numpy for test references)
set -euo pipefail

pkgs=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libscalapack-openmpi-dev
      libopenblas-dev liblapacke-dev libpnetcdf-dev pnetcdf-bin netcdf-bin libcmocka-dev
      libjansson-dev libxxhash-dev python3-numpy python3-torch)
case "${1:-}" in
  --minimal) pkgs=("${pkgs[@]:0:13}") ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
