#!/usr/bin/env bash
# Install what is missing, build, and run every test through ctest.
# usage: bash tests/run.sh [extra ctest arguments, e.g. -R parity]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/env.sh
BUILD=${DT_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
ctest --output-on-failure -j"$(nproc)" "$@"
