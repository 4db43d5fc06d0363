#!/usr/bin/env bash
# Every C and C++ source of smtpgate is formatted as .clang-format says.
# Usage: check_format.sh SOURCE_DIR. Prints the files that differ and how to
# fix them; exit 1 when any does.
set -euo pipefail
src=$(cd "$1" && pwd)
command -v clang-format >/dev/null || { echo "check_format: no clang-format: apt-get install clang-format"; exit 1; }
mapfile -t files < <(cd "$src" && find bpf loader control demo tests vm-tests bench \
    -path tests/regressions -prune -o -type f \( -name '*.c' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' \) -print | sort)
bad=()
for f in "${files[@]}"; do
    (cd "$src" && clang-format --style=file --dry-run --Werror "$f" >/dev/null 2>&1) || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
    printf '%s: not formatted as .clang-format says\n' "${bad[@]}"
    echo "fix: clang-format -i ${bad[*]}"
    exit 1
fi
echo "${#files[@]} files formatted as .clang-format says"
