#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each for a
# bounded time from its checked-in seed corpus. A crash, a failed check or a
# leak fails the run; libFuzzer saves the input as crash-*/leak-* in
# build-fuzz/fuzz-artifacts/. Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
CXX=clang++ CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPGATE_FUZZ=ON \
  -DSMTPGATE_BENCH=OFF >/dev/null
cmake --build build-fuzz -j2 --target fuzz_feed fuzz_cidr fuzz_ranges
mkdir -p build-fuzz/fuzz-artifacts
declare -A seeds=([fuzz_feed]=tests/fixtures [fuzz_cidr]=tests/fuzz/corpus/cidr [fuzz_ranges]=tests/fuzz/corpus/ranges)
for target in fuzz_feed fuzz_cidr fuzz_ranges; do
  # The working corpus grows in the build tree; the checked-in seeds stay as they are.
  work=build-fuzz/corpus/$target
  mkdir -p "$work"
  echo "== $target: ${secs}s"
  log=build-fuzz/fuzz-artifacts/$target.log
  status=0
  build-fuzz/tests/fuzz/$target -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix=build-fuzz/fuzz-artifacts/$target- "$work" "${seeds[$target]}" >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "$target failed (exit $status): input saved in build-fuzz/fuzz-artifacts/" >&2
    exit 1
  fi
done
