#!/usr/bin/env bash
# Smoke test of the end-to-end flood benchmark, so that it cannot rot: a tiny
# run (10 prefixes, 50,000 frames per flood, one round; the ACK flood of the
# modes part; no pairs), then checks of its results, independent of the
# harness's own checks: the four configurations ran, nftables and smtpgate
# dropped the flood from outside the prefixes (their own counters) and
# smtpgate none of the ACK flood, every admitted connect succeeded, the kernel
# timed the XDP programs, every yardstick probe's included, and the ACK
# flood's target was judged. Usage: bench/flood_smoke.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: $0 BUILD_DIR}
tsv=$(mktemp /tmp/sgflood-smoke.XXXXXX)
trap 'rm -f "$tsv"' EXIT

rc=0
bash "$(dirname "$0")/flood.sh" "$BUILD" --scales 10 --syns 50000 --rounds 1 --parts table,modes,yardstick \
  --modes ack --tsv "$tsv" || rc=$?
cat "$tsv"
[ "$rc" = 0 ] || { echo "smoke: flood.sh exited $rc" >&2; exit 1; }

errors=0
check() {  # check DESCRIPTION CONDITION...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what" >&2; errors=$((errors + 1)); fi
}
col() {  # col CONFIG COLUMN: a value of that configuration's row
  awk -F'\t' -v c="$1" -v k="$2" 'NR == 1 { for (i = 1; i <= NF; i++) idx[$i] = i; next }
    $2 == c { print $idx[k] }' "$tsv"
}

for c in none nftables smtpgate floor; do
  check "$c ran" [ "$(col "$c" status)" = ok ]
  check "$c sent 50000 SYNs" [ "$(col "$c" syns)" = 50000 ]
done
for c in nftables smtpgate; do
  out=$(col "$c" outside)
  dropped=$(col "$c" dropped)
  check "$c: the flood came mostly from outside the prefixes ($out of 50000)" [ "${out:-0}" -gt 45000 ]
  check "$c dropped the flood from outside ($dropped of $out)" \
    [ "${dropped:-0}" -le "${out:-0}" -a "$((${dropped:-0} * 100))" -ge "$((${out:-0} * 99))" ]
done
for c in none nftables smtpgate; do
  att=$(col "$c" connects_attempted)
  ok=$(col "$c" connects_succeeded)
  check "$c: admitted connects all succeeded ($ok of $att)" [ "${att:-0}" -gt 0 -a "$att" = "$ok" ]
done
check "smtpgate/ack ran" [ "$(col smtpgate/ack status)" = ok ]
check "smtpgate dropped none of the ACK flood ($(col smtpgate/ack dropped))" [ "$(col smtpgate/ack dropped)" = 0 ]
check "the ACK flood's target was judged" \
  [ "$(awk -F'\t' '$2 == "target" && $19 ~ /^ACK flood/ { print $3 }' "$tsv")" = met -o \
    "$(awk -F'\t' '$2 == "target" && $19 ~ /^ACK flood/ { print $3 }' "$tsv")" = missed ]
probes=()
for o in "$BUILD"/bpf/testprogs/read_*.bpf.o; do o=${o##*/}; probes+=("${o%.bpf.o}"); done
check "every yardstick probe is in the run (${#probes[@]} built)" [ ${#probes[@]} -ge 10 ]
for c in smtpgate floor "${probes[@]}"; do
  check "$c: the kernel timed the program ($(col "$c" prog_run_cnt) runs)" [ "$(col "$c" prog_run_cnt)" -gt 0 ]
done
check "floor/ack: the kernel timed the program ($(col floor/ack prog_ns_per_pkt) ns)" [ -n "$(col floor/ack prog_ns_per_pkt)" ]
[ "$errors" = 0 ] || { echo "smoke: $errors check(s) failed" >&2; exit 1; }
