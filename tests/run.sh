#!/usr/bin/env bash
# Install what is missing, build, and run every test through ctest.
# usage: bash tests/run.sh [extra ctest arguments, e.g. -R parity]
#
# With DT_SANITIZE_SUITE=1 the normal suite is followed by the sanitizer build (ASan + UBSan, build-asan) running the
# tests labelled asan (every test but the Slurm/job-script ones and the two
# that measure memory), and by a 20-second smoke
# run of each libFuzzer target (build-fuzz), as many side by side as there
# are cores. See docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/env.sh
BUILD=${DT_BUILD_DIR:-build}

# Under CI=true no test may pass by skipping (a real component that cannot
# start is a failure): neither a ctest skip (exit 77) nor a cmocka skip()
# inside a passing test. ctest's LastTest.log holds every test's output.
no_skips() {
  [[ "${CI:-}" == "true" ]] || return 0
  local log="$1/Testing/Temporary/LastTest.log" found
  found=$(grep -E '\[  SKIPPED \] [A-Za-z_]|^SKIPPED: |[*]{3}Skipped|[(]Skipped[)]' "$log" || true)
  if [[ -n "$found" ]]; then
    echo "run.sh: tests skipped under CI=true ($log):"
    echo "$found"
    return 1
  fi
  echo "run.sh: no test skipped ($1)"
}

t0=$SECONDS
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
# twice as many ctest slots as cores: every test declares the ranks it
# starts (PROCESSORS), and two 2-rank tests side by side took no longer than
# each alone (docs/reliability.md, "CI time": the suite 373 s instead of 565 s)
# with the sanitizer suite to follow (CI), the tests it covers run there only
# (label asan_covers, tests/CMakeLists.txt)
skip_covered=()
[[ "${DT_SANITIZE_SUITE:-0}" == "1" ]] && skip_covered=(-LE asan_covers)
(cd "$BUILD" && ctest --output-on-failure -j"$((2 * $(nproc)))" "${skip_covered[@]}" "$@")
no_skips "$BUILD"
echo "run.sh: normal build and suite in $((SECONDS - t0)) s"

# .ci/run sets DT_SANITIZE_SUITE=1 (docs/reliability.md, "CI time").
if [[ "${DT_SANITIZE_SUITE:-0}" == "1" ]]; then
  t1=$SECONDS
  ASAN_BUILD=${DT_ASAN_BUILD_DIR:-build-asan}
  cmake -S . -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=Release -DDT_SANITIZE=ON >/dev/null
  cmake --build "$ASAN_BUILD" -j"$(nproc)"
  # The suite's reports are not symbolized (symbolize=0, tests/CMakeLists.txt:
  # starting llvm-symbolizer at each process's leak check was a quarter of
  # the sanitizer suite's CPU); a failed test is run again with names.
  if ! (cd "$ASAN_BUILD" && ctest --output-on-failure -j"$((2 * $(nproc)))" -L asan "$@"); then
    echo "run.sh: the failed sanitizer tests again, with symbolized reports (ASAN_OPTIONS=symbolize=1)"
    (cd "$ASAN_BUILD" && ASAN_OPTIONS=symbolize=1 ctest --rerun-failed --output-on-failure) || true
    exit 1
  fi
  no_skips "$ASAN_BUILD"
  echo "run.sh: sanitizer build and suite (label asan) in $((SECONDS - t1)) s"

  if [[ "${DT_FUZZ_SMOKE:-1}" == "1" ]]; then
    command -v clang >/dev/null || { echo "run.sh: no clang for the fuzz runs (scripts/install-deps.sh installs it)"; exit 1; }
    t2=$SECONDS
    FUZZ_BUILD=${DT_FUZZ_BUILD_DIR:-build-fuzz}
    CC=clang cmake -S . -B "$FUZZ_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDT_FUZZ=ON \
      -DDT_BUILD_TESTS=OFF >/dev/null
    cmake --build "$FUZZ_BUILD" --target fuzz -j"$(nproc)"
    # one target per core at a time: each libFuzzer run is one process on one
    # core, so running them side by side keeps every target's seconds (and
    # its executions) and divides the wall time by the cores
    targets=(safetensors config dataset options taskfile checkpoint tokenizer jsonl)
    jobs=$(nproc)
    passed=0 failed=0
    declare -A corpus
    for ((i = 0; i < ${#targets[@]}; i += jobs)); do
      batch=("${targets[@]:i:jobs}")
      pids=()
      for t in "${batch[@]}"; do
        corpus[$t]=$(mktemp -d)
        cp "$FUZZ_BUILD/tests/fuzz/corpus/$t/"* "${corpus[$t]}/"
        # a checkpoint's header alone is 7-20 KB: 4096 bytes would cut every seed
        max_len=4096
        [[ $t == checkpoint ]] && max_len=65536
        "$FUZZ_BUILD/tests/fuzz/fuzz_$t" -max_total_time="${DT_FUZZ_SECONDS:-20}" -max_len=$max_len \
          -artifact_prefix="$FUZZ_BUILD/tests/fuzz/crash-$t-" "${corpus[$t]}" >"$FUZZ_BUILD/tests/fuzz/fuzz_$t.log" 2>&1 &
        pids+=($!)
      done
      for k in "${!batch[@]}"; do
        t=${batch[$k]}
        log="$FUZZ_BUILD/tests/fuzz/fuzz_$t.log"
        if wait "${pids[$k]}"; then
          passed=$((passed + 1))
          echo "fuzz_$t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -1), no finding"
        else
          failed=$((failed + 1))
          echo "fuzz_$t: FINDING (log $log):"
          tail -40 "$log"
        fi
        rm -rf "${corpus[$t]}"
      done
    done
    echo "run.sh: fuzz smoke runs in $((SECONDS - t2)) s"
    echo "fuzz: $passed passed, $failed failed"
    [[ $failed -eq 0 ]]
  fi
fi
