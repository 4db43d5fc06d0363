#!/usr/bin/env bash
# The systemd unit as shipped, started for real: systemd boots in a container
# of this machine's own /usr (systemd-nspawn --volatile=yes: the host's files
# are not written, only the pins), and the unit, with only the path of the
# binary changed, loads the gate under its system-call filter, capability
# set and sandbox, attaches it to a veth in a network namespace of this test,
# serves metrics, reloads and stops, leaving the gate attached. Everything
# made is removed at the end, also on failure.
# Usage: unit.sh SOURCE_DIR BUILD_DIR. Exit 77 (skipped) without systemd-nspawn.
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
command -v systemd-nspawn >/dev/null || { echo "skipped: no systemd-nspawn (package systemd-container)"; exit 77; }

tag=sgt$$unit
ns=$tag
pins=/sys/fs/bpf/$tag
work=$(mktemp -d "/tmp/$tag.XXXXXX")
xdp_dir_before=$(ls -d /sys/fs/bpf/xdp 2>/dev/null || true)
# shellcheck source=tests/ship/nspawn.sh
. "$(dirname "$0")/nspawn.sh"
cleanup() {
    set +e
    ct_stop
    nsenter --net="/var/run/netns/$ns" "$build/control/smtpgatectl" --pin-dir "$pins" detach u0 >/dev/null 2>&1
    ip netns del "$ns" 2>/dev/null
    rm -rf "$pins" "$work"
    # libxdp's directory for its dispatchers, when this test made it (empty).
    [ -n "$xdp_dir_before" ] || rmdir /sys/fs/bpf/xdp 2>/dev/null
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -n "$ct_init" ] && in_ct journalctl -u smtpgated --no-pager | tail -20; exit 1; }

ip netns add "$ns"
ip -n "$ns" link add u0 type veth peer name u1
for i in lo u0 u1; do ip -n "$ns" link set "$i" up; done

# The unit as shipped; the binaries where the container has them.
sed 's#/usr/sbin/smtpgated#/opt/smtpgate/smtpgated#g' "$src/packaging/smtpgated.service" >"$work/smtpgated.service"
mkdir "$work/wants"
ln -s /etc/systemd/system/smtpgated.service "$work/wants/smtpgated.service"
cat >"$work/smtpgate.toml" <<EOF
interfaces = ["u0"]
mode = "skb"
action = "reject"
pin_dir = "$pins"
allow_empty = true
[feed]
enabled = false
[metrics]
listen = "127.0.0.1:9725"
EOF
ct_boot usr "$ns" "$work/boot.log" \
    --bind=/sys/fs/bpf \
    --bind-ro="$build/loader/smtpgated:/opt/smtpgate/smtpgated" \
    --bind-ro="$work/smtpgated.service:/etc/systemd/system/smtpgated.service" \
    --bind-ro="$work/wants:/etc/systemd/system/multi-user.target.wants" \
    --bind-ro="$work/smtpgate.toml:/etc/smtpgate/smtpgate.toml" \
    --bind-ro=/dev/null:/etc/systemd/system/systemd-networkd-wait-online.service || fail "systemd did not boot"
state=
for _ in $(seq 150); do
    state=$(in_ct systemctl is-active smtpgated 2>/dev/null || true)
    [ "$state" = active ] || [ "$state" = failed ] && break
    sleep 0.2
done
[ "$state" = active ] || fail "smtpgated.service is $state"

# Loaded and attached under the unit's filter and capabilities.
main=$(in_ct systemctl show -p MainPID --value smtpgated)
in_ct grep -q '^Seccomp:[[:space:]]*2' "/proc/$main/status" || fail "no system-call filter on smtpgated"
caps=$(in_ct grep '^CapBnd' "/proc/$main/status" | awk '{print $2}')
[ "$caps" = 000000c000201000 ] || fail "capability bounding set $caps (want BPF, PERFMON, SYS_ADMIN, NET_ADMIN)"
ip -n "$ns" link show u0 | grep -q 'prog/xdp' || fail "the gate is not attached to u0"
status=$(nsenter --net="/var/run/netns/$ns" "$build/control/smtpgatectl" --pin-dir "$pins" --state-dir "$work/none" -j status)
echo "$status" | grep -q '"action": "reject"' || fail "the gate's action is not reject: $status"
metrics=$(nsenter --net="/var/run/netns/$ns" python3 -c \
    'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9725/metrics", timeout=5).read().decode())')
echo "$metrics" | grep -q '^smtpgate_program_attached{interface="u0"} 1$' || fail "metrics: $metrics"
echo "$metrics" | grep -q '^smtpgate_drops_recording 1$' || fail "the daemon does not read refused SYNs"
in_ct stat -c %a /var/lib/smtpgate/drops.lock | grep -qx 600 || fail "drops.lock is not 0600"

# Reload, stop: the gate stays.
in_ct systemctl reload smtpgated || fail "reload failed"
# systemctl returns once the signal is sent: the daemon logs the reload
# when it has done it, within 5 s.
for i in $(seq 50); do
    in_ct journalctl -u smtpgated --no-pager | grep -q 'configuration reloaded' && break
    sleep 0.1
done
in_ct journalctl -u smtpgated --no-pager | grep -q 'configuration reloaded' || fail "no reload in the journal"
in_ct systemctl stop smtpgated || fail "stop failed"
ip -n "$ns" link show u0 | grep -q 'prog/xdp' || fail "stopping detached the gate"
echo "systemd unit: started under systemd $(systemctl --version | head -1 | awk '{print $2}'), gate loaded and attached under its filter, metrics, reload, stop"
