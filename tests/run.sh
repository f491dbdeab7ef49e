#!/usr/bin/env bash
# Install what is missing, build, and run every test through ctest.
# usage: bash tests/run.sh [extra ctest arguments, e.g. -R parity]
#
# With DT_SANITIZE_SUITE=1 the normal suite is followed by the sanitizer build (ASan + UBSan, build-asan) running the
# tests labelled asan (every test but the Slurm/job-script ones and the two
# that measure memory) and, beside it in the background, a smoke run of each
# libFuzzer target (build-fuzz; fuzz_stage below). See docs/reliability.md.
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
# The virtual-cluster tests (label multinode, docs/testing.md) run here,
# beside the others (one at a time among themselves: RESOURCE_LOCK);
# DT_MULTINODE=0 leaves them out (they need root). They were out of the
# default run while an srun step crashed in Open MPI's start-up in one of
# three whole-suite runs: the PMIx fence of each virtual node completed
# alone (Slurm's tree fence on fewer nodes than TreeWidth); vcluster.sh now
# uses the ring, and multinode_fence checks that MPI_Init holds ranks across
# nodes (issue 25).
# fuzz_build DIR: the libFuzzer targets (clang), the log in DIR/build.log
fuzz_build() {
  local FUZZ_BUILD=$1
  command -v clang >/dev/null || { echo "run.sh: no clang for the fuzz runs (scripts/install-deps.sh installs it)"; return 1; }
  CC=clang cmake -S . -B "$FUZZ_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDT_FUZZ=ON \
    -DDT_BUILD_TESTS=OFF >/dev/null
  cmake --build "$FUZZ_BUILD" --target fuzz -j"$(nproc)" >"$FUZZ_BUILD/build.log" 2>&1 ||
    { tail -40 "$FUZZ_BUILD/build.log"; echo "run.sh: the fuzz build failed"; return 1; }
}
# With the sanitizer suite to follow, its build and the fuzz build run
# beside the normal suite, at a lower priority (nice 10): that suite waits
# more than it computes (MPI start-ups, Slurm jobs, the virtual cluster), and
# the builds take the idle cores instead of a stage of their own.
ASAN_BUILD=${DT_ASAN_BUILD_DIR:-build-asan}
FUZZ_BUILD=${DT_FUZZ_BUILD_DIR:-build-fuzz}
builds_pid=
if [[ "${DT_SANITIZE_SUITE:-0}" == "1" ]]; then
  mkdir -p "$ASAN_BUILD" "$FUZZ_BUILD"
  (
    renice -n 10 -p "$BASHPID" >/dev/null
    cmake -S . -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=Release -DDT_SANITIZE=ON >/dev/null &&
      cmake --build "$ASAN_BUILD" -j"$(nproc)" >"$ASAN_BUILD/build.log" 2>&1 ||
      { echo "run.sh: the sanitizer build failed ($ASAN_BUILD/build.log)"; exit 1; }
    [[ "${DT_FUZZ_SMOKE:-1}" != "1" ]] || fuzz_build "$FUZZ_BUILD" || exit 2
  ) >"$ASAN_BUILD/builds.log" 2>&1 &
  builds_pid=$!
fi
# kill_tree PID: the process and everything it started
kill_tree() {
  local k
  for k in $(pgrep -P "$1"); do kill_tree "$k"; done
  kill "$1" 2>/dev/null || true
}
excluded=()
[[ "${DT_MULTINODE:-1}" == "1" ]] || excluded+=(multinode)
[[ "${DT_SANITIZE_SUITE:-0}" == "1" ]] && excluded+=(asan_covers)
skip_covered=()
[[ ${#excluded[@]} -gt 0 ]] && skip_covered=(-LE "$(IFS='|'; echo "${excluded[*]}")")
if ! (cd "$BUILD" && ctest --output-on-failure -j"$((2 * $(nproc)))" "${skip_covered[@]}" "$@"); then
  [[ -n $builds_pid ]] && kill_tree "$builds_pid"
  exit 1
fi
no_skips "$BUILD"
echo "run.sh: normal build and suite in $((SECONDS - t0)) s"

# The fuzz smoke runs (DT_FUZZ_SMOKE=1, the default with the sanitizer suite):
# each libFuzzer target for a fixed number of executions, one target at a time,
# in the background while the sanitizer suite runs (that suite leaves a core
# idle for about a third of its time: MPI start-ups, waits and 4-rank tests).
# The counts are what each target ran in 20 s alone on a core of the 2-core
# machine (2026-12-05); -max_total_time only bounds a run that is much slower.
fuzz_stage() {
  local FUZZ_BUILD=$1 t c max_len runs failed=0 passed=0
  declare -A count=([safetensors]=455000 [config]=551000 [dataset]=599000 [options]=221000
                    [taskfile]=70000 [checkpoint]=87000 [tokenizer]=71000 [jsonl]=116000)
  for t in safetensors config dataset options taskfile checkpoint tokenizer jsonl; do
    c=$(mktemp -d)
    cp "$FUZZ_BUILD/tests/fuzz/corpus/$t/"* "$c/"
    # a checkpoint's header alone is 7-20 KB: 4096 bytes would cut every seed
    max_len=4096
    [[ $t == checkpoint ]] && max_len=65536
    runs=$((count[$t] * ${DT_FUZZ_SECONDS:-20} / 20))
    if "$FUZZ_BUILD/tests/fuzz/fuzz_$t" -runs="$runs" -max_total_time=$((6 * ${DT_FUZZ_SECONDS:-20})) \
      -max_len=$max_len -artifact_prefix="$FUZZ_BUILD/tests/fuzz/crash-$t-" "$c" \
      >"$FUZZ_BUILD/tests/fuzz/fuzz_$t.log" 2>&1; then
      passed=$((passed + 1))
      echo "fuzz_$t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$FUZZ_BUILD/tests/fuzz/fuzz_$t.log" | tail -1) (of $runs), no finding"
    else
      failed=$((failed + 1))
      echo "fuzz_$t: FINDING (log $FUZZ_BUILD/tests/fuzz/fuzz_$t.log):"
      tail -40 "$FUZZ_BUILD/tests/fuzz/fuzz_$t.log"
    fi
    rm -rf "$c"
  done
  echo "fuzz: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}

# .ci/run sets DT_SANITIZE_SUITE=1 (docs/reliability.md, "CI time").
if [[ "${DT_SANITIZE_SUITE:-0}" == "1" ]]; then
  t1=$SECONDS
  builds_rc=0
  wait "$builds_pid" || builds_rc=$?
  cat "$ASAN_BUILD/builds.log"
  if [[ $builds_rc -eq 1 ]]; then tail -40 "$ASAN_BUILD/build.log"; exit 1; fi
  echo "run.sh: the sanitizer and fuzz builds beside the normal suite ended $((SECONDS - t1)) s after it"
  fuzz_pid=
  if [[ "${DT_FUZZ_SMOKE:-1}" == "1" ]]; then
    if [[ $builds_rc -eq 0 ]]; then
      fuzz_stage "$FUZZ_BUILD" >"$FUZZ_BUILD/smoke.log" 2>&1 &
    else
      echo "fuzz: the build failed" >"$FUZZ_BUILD/smoke.log"; false &
    fi
    fuzz_pid=$!
  fi
  # The suite's reports are not symbolized (symbolize=0, tests/CMakeLists.txt:
  # starting llvm-symbolizer at each process's leak check was a quarter of
  # the sanitizer suite's CPU); a failed test is run again with names.
  # Three slots a core here: the sanitizer suite's 2-rank tests wait more
  # (start-ups, leak checks of idle ranks), and a 4-rank test leaves room for
  # another (the suite beside the fuzz runs: 570 s at -j6, 601 s at -j4).
  if ! (cd "$ASAN_BUILD" && ctest --output-on-failure -j"$((3 * $(nproc)))" -L asan "$@"); then
    echo "run.sh: the failed sanitizer tests again, with symbolized reports and whole stacks (ASAN_OPTIONS=symbolize=1:malloc_context_size=30)"
    (cd "$ASAN_BUILD" && ASAN_OPTIONS=symbolize=1:malloc_context_size=30 ctest --rerun-failed --output-on-failure) || true
    [[ -n $fuzz_pid ]] && kill "$fuzz_pid" 2>/dev/null
    exit 1
  fi
  no_skips "$ASAN_BUILD"
  echo "run.sh: sanitizer build and suite (label asan) in $((SECONDS - t1)) s"
  if [[ -n $fuzz_pid ]]; then
    fuzz_rc=0
    wait "$fuzz_pid" || fuzz_rc=$?
    cat "$FUZZ_BUILD/smoke.log"
    echo "run.sh: fuzz smoke runs done $((SECONDS - t1)) s after the sanitizer build began"
    [[ $fuzz_rc -eq 0 ]]
  fi
fi
