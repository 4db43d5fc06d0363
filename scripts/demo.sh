#!/usr/bin/env bash
# Installs what smtpgate needs, builds it, and runs the demo. Run as root on
# Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPGATE_TESTS=OFF -DSMTPGATE_BENCH=OFF >/dev/null
cmake --build build -j2
bash demo/run.sh build
