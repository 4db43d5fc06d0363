#!/usr/bin/env bash
# Installs what smtpgate needs, builds it, and runs every test: unit tests,
# BPF_PROG_TEST_RUN tests, end-to-end tests in network namespaces on this
# kernel, and the same on Debian 12's 6.1 kernel in a VM. Run as root on
# Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
ctest --test-dir build --output-on-failure -j2
