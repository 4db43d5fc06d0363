#!/usr/bin/env bash
# smtpgated's resident memory with N operator ranges (default 1 000 000):
# imports N spread /24s into a fresh state directory, starts smtpgated on a
# veth inside a network namespace it creates, waits until the allowlist is
# published, and prints VmRSS and VmHWM (peak) of the daemon, with the time the
# import and the start took. Removes everything it made when it ends.
# Usage: bench/daemon_memory.sh BUILD_DIR [N]. Run as root.
set -euo pipefail
build=$(cd "${1:?usage: bench/daemon_memory.sh BUILD_DIR [N]}" && pwd)
n=${2:-1000000}
ctl_bin="$build/control/smtpgatectl"
daemon_bin="$build/loader/smtpgated"
tag="sgmem$$"
pins="/sys/fs/bpf/$tag"; work=$(mktemp -d); daemon_pid=""

cleanup() {
  set +e
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  nsenter --net=/var/run/netns/"$tag" "$ctl_bin" --pin-dir "$pins" detach m0 >/dev/null 2>&1
  ip netns del "$tag" 2>/dev/null
  rm -rf "$pins" "$work"
  rmdir /sys/fs/bpf/xdp 2>/dev/null
  bpffs_release
}
. "$(dirname "$0")/../scripts/bpffs.sh"
trap cleanup EXIT

bpffs_acquire
ip netns add "$tag"
ip -n "$tag" link add m0 type veth peer name m1
ip -n "$tag" link set m0 up; ip -n "$tag" link set m1 up

# N distinct /24s spread over 1.0.0.0-99.255.255.0 (clear of special-purpose
# space except 10/8, skipped), deterministic.
awk -v n="$n" 'BEGIN { c = 0; for (i = 0; c < n; i++) { a = 1 + int(i / 65536) % 99; if (a == 10) continue;
  printf "%d.%d.%d.0/24\n", a, int(i / 256) % 256, i % 256; c++ } }' > "$work/ranges.txt"
cat > "$work/smtpgate.toml" <<TOML
max_rules = $((n + 1024))
table_chunks = 16384
[feed]
enabled = false
[metrics]
listen = ""
TOML

t0=$(date +%s.%N)
"$ctl_bin" --pin-dir "$pins" --state-dir "$work/state" ranges import "$work/ranges.txt" >/dev/null
t1=$(date +%s.%N)
nsenter --net=/var/run/netns/"$tag" "$daemon_bin" -c "$work/smtpgate.toml" --interface m0 \
  --pin-dir "$pins" --state-dir "$work/state" &
daemon_pid=$!
for _ in $(seq 600); do
  nsenter --net=/var/run/netns/"$tag" "$ctl_bin" --pin-dir "$pins" --state-dir "$work/state" -j status 2>/dev/null |
    grep -q '"prog_id"' && break
  kill -0 "$daemon_pid" 2>/dev/null || { echo "daemon_memory: smtpgated exited" >&2; exit 1; }
  sleep 0.5
done
t2=$(date +%s.%N)
awk -v n="$n" -v t0="$t0" -v t1="$t1" -v t2="$t2" '
  /VmRSS/ { rss = $2 } /VmHWM/ { hwm = $2 }
  END {
    printf "smtpgated with %d ranges: VmRSS %.1f MiB (%.0f bytes per range), peak VmHWM %.1f MiB\n",
      n, rss / 1024, rss * 1024 / n, hwm / 1024
    printf "import of the range file: %.1f s; daemon start to attached: %.1f s\n", t1 - t0, t2 - t1
    if (n == 1000000)
      printf "target: smtpgated resident memory at 1 000 000 ranges, %.0f bytes per range <= 150: %s\n",
        rss * 1024 / n, (rss * 1024 / n <= 150 ? "met" : "missed")
  }' /proc/$daemon_pid/status
# Where the resident memory is: mmapped BPF maps, the malloc heap (brk and
# anonymous mappings), the binary and its libraries.
awk '/^[0-9a-f]+-[0-9a-f]+ / { name = $6 == "" ? "[anon]" : $6 }
  /^Rss:/ { if (name ~ /bpf/) bpf += $2; else if (name == "[heap]" || name == "[anon]") heap += $2; else other += $2 }
  END { printf "of the resident memory: BPF map mmaps %.1f MiB, heap and anonymous %.1f MiB, binary, libraries and stack %.1f MiB\n",
    bpf / 1024, heap / 1024, other / 1024 }' /proc/$daemon_pid/smaps
