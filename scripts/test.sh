#!/usr/bin/env bash
# Installs what smtpgate needs, builds it, and runs every test: unit tests,
# BPF_PROG_TEST_RUN tests, end-to-end tests in network namespaces on this
# kernel, and the same in VMs on Debian 12's 6.1 and 6.12 kernels, on veth and
# on real NIC drivers (docs/kernels.md); then the unit tests again under
# AddressSanitizer and UndefinedBehaviorSanitizer, the tests that run several
# threads (smtpgated's feed worker and metrics server among them) under
# ThreadSanitizer, and each libFuzzer target for a bounded time
# (docs/reliability.md). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
. scripts/bpffs.sh
bpffs_acquire
trap bpffs_release EXIT
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2

# The unit tests again with ASan and UBSan (any report fails the test).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPGATE_SANITIZE=ON -DSMTPGATE_BENCH=OFF >/dev/null
cmake --build build-asan -j2
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  SMTPGATE_SKIP_VM=1 ctest --test-dir build-asan -L unit --output-on-failure -j2
# The tests labelled "threads" again with ThreadSanitizer: a report fails the
# gtest process (exit code 66), a smtpgatectl run, or the test whose smtpgated
# reported it (sgtest::Daemon reads its stderr).
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPGATE_SANITIZE_THREAD=ON -DSMTPGATE_BENCH=OFF >/dev/null
cmake --build build-tsan -j2
TSAN_OPTIONS=second_deadlock_stack=1 SMTPGATE_SKIP_VM=1 \
  ctest --test-dir build-tsan -L threads --output-on-failure -j2
# Fuzzing: each target 20 s from its seed corpus; a crash fails the run.
bash scripts/fuzz.sh 20
