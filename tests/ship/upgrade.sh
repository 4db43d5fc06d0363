#!/usr/bin/env bash
# The package over a running gate, under traffic: two packages built from
# this tree, the second with another map layout (SMTPGATE_ABI_TEST_PAD: a
# field more in the per-rule counters) and a higher version. The first is
# installed and its gate attached (a veth in namespaces of the test, joined
# with nsenter so the pins stay the machine's); the second is installed over
# it and smtpgated restarted, as postinst does under systemd; then the first
# again (a downgrade). Meanwhile an admitted source connects and a stranger
# sends SYNs: every connect must succeed, no stranger's SYN be answered, and
# each new daemon must say it replaced the gate beside itself. Skipped (77)
# when this machine has an smtpgate of its own.
# Usage: upgrade.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
if dpkg-query -W smtpgate >/dev/null 2>&1 || [ -e /etc/smtpgate ] || [ -e /var/lib/smtpgate ] ||
    [ -e /sys/fs/bpf/smtpgate ]; then
    echo "package upgrade skipped: this machine has an smtpgate of its own"
    exit 77
fi
work=$(mktemp -d /tmp/sgt$$upg.XXXXXX)
gw=sgt$$x0upg
tx=sgt$$x1upg
daemon='' listener='' traffic='' installed_here=0
cleanup() {
    for p in $traffic $listener $daemon; do { kill "$p" && wait "$p"; } 2>/dev/null || true; done
    if [ "$installed_here" = 1 ]; then
        nsenter --net="/var/run/netns/$gw" dpkg --purge smtpgate >/dev/null 2>&1 || true
        rm -rf /etc/smtpgate /var/lib/smtpgate /sys/fs/bpf/smtpgate
    fi
    ip netns del "$gw" 2>/dev/null || true
    ip netns del "$tx" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 1. Two packages: this tree, and this tree with another map layout and a
# higher version, built side by side.
# shellcheck source=tests/ship/deb_build.sh
. "$here/deb_build.sh"
copy_tree "$src" "$work/a"
copy_tree "$src" "$work/b"
old=$(dpkg-parsechangelog -l "$work/a/debian/changelog" -S Version)
new="$old+layout1"
sed -i 's/-DSMTPGATE_BENCH=OFF/-DSMTPGATE_BENCH=OFF -DSMTPGATE_ABI_TEST_PAD=ON/' "$work/b/debian/rules"
grep -q SMTPGATE_ABI_TEST_PAD=ON "$work/b/debian/rules" || fail "debian/rules has no SMTPGATE_BENCH=OFF to extend"
maint=$(dpkg-parsechangelog -l "$work/a/debian/changelog" -S Maintainer)
{
    printf 'smtpgate (%s) unstable; urgency=medium\n\n  * Test build: another map layout.\n\n -- %s  %s\n\n' \
        "$new" "$maint" "$(date -R)"
    cat "$work/a/debian/changelog"
} >"$work/b/debian/changelog"
build_deb "$work/a" & a=$!
build_deb "$work/b" & b=$!
wait "$a" || fail "the package of this tree did not build"
wait "$b" || fail "the package of another layout did not build"
deb_old=$work/smtpgate_${old}_amd64.deb
deb_new=$work/smtpgate_${new}_amd64.deb
if [ ! -f "$deb_old" ] || [ ! -f "$deb_new" ]; then fail "packages missing: $(ls "$work")"; fi

# 2. A gateway and a sender, one veth between them.
ip netns add "$gw"
ip netns add "$tx"
ip link add sgtupga netns "$gw" type veth peer name sgtupgb netns "$tx"
ip -n "$gw" addr add 192.0.2.1/24 dev sgtupga
ip -n "$tx" addr add 192.0.2.2/24 dev sgtupgb
for addr in 40.92.0.10/32 203.0.113.10/32; do ip -n "$tx" addr add "$addr" dev sgtupgb; done
for ns in "$gw" "$tx"; do ip -n "$ns" link set lo up; done
ip -n "$gw" link set sgtupga up
ip -n "$tx" link set sgtupgb up
ip -n "$gw" route add default via 192.0.2.2
in_gw() { nsenter --net="/var/run/netns/$gw" "$@"; }

# smtpgated of the installed package, in the gateway's namespace (nsenter
# execs it: $! is the daemon), until it is ready; its log in $work/$1.log.
start_daemon() {
    nsenter --net="/var/run/netns/$gw" /usr/sbin/smtpgated --interface sgtupga --mode skb --no-feed \
        --metrics-listen "" >"$work/$1.log" 2>&1 &
    daemon=$!
    for _ in $(seq 300); do
        grep -q 'smtpgated ready' "$work/$1.log" && return 0
        kill -0 "$daemon" 2>/dev/null || { cat "$work/$1.log"; fail "smtpgated ($1) exited"; }
        sleep 0.1
    done
    cat "$work/$1.log"
    fail "smtpgated ($1) did not become ready"
}
stop_daemon() { kill "$daemon"; wait "$daemon" || true; daemon=; }

# 3. The first package, its gate running.
installed_here=1
dpkg -i "$deb_old" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "dpkg -i $old failed"; }
/usr/sbin/smtpgatectl ranges add 40.92.0.0/15 >/dev/null
start_daemon first
# nsenter itself, not the in_gw function: a function run with & is a subshell
# whose pid $! would be, and killing it would leave the listener (and the
# test's output pipe) behind.
nsenter --net="/var/run/netns/$gw" python3 "$here/syn_traffic.py" listen 25 &
listener=$!
sleep 0.5
nsenter --net="/var/run/netns/$tx" python3 "$here/syn_traffic.py" send 192.0.2.1 25 40.92.0.10 203.0.113.10 \
    >"$work/traffic.txt" &
traffic=$!
sleep 1

# 4. The upgrade, then the downgrade; each time postinst says what it did and
# the new daemon replaces the gate beside itself.
change() {  # change DEB VERSION_BEFORE NAME
    out=$(in_gw dpkg -i "$1" 2>&1) || { echo "$out"; fail "dpkg -i $1 failed"; }
    echo "$out" | grep -q "changed from $2" || { echo "$out"; fail "postinst did not say what it did"; }
    stop_daemon  # what systemd's restart does: the gate stays attached meanwhile
    start_daemon "$3"
    grep -q 'replacing it without a gap' "$work/$3.log" || { cat "$work/$3.log"; fail "$3: no replacement"; }
    grep -q 'carried over gate_config' "$work/$3.log" || { cat "$work/$3.log"; fail "$3: nothing carried over"; }
    ip -n "$gw" link show sgtupga | grep -q xdp || fail "$3: the gate is not attached"
    /usr/sbin/smtpgatectl status >/dev/null || fail "$3: smtpgatectl status fails on the new generation"
    sleep 1
}
change "$deb_new" "$old" upgraded
[ "$(readlink /sys/fs/bpf/smtpgate/live)" = gen-1 ] || fail "live does not name gen-1 after the upgrade"
change "$deb_old" "$new" downgraded
[ "$(readlink /sys/fs/bpf/smtpgate/live)" = gen-2 ] || fail "live does not name gen-2 after the downgrade"
[ -e /sys/fs/bpf/smtpgate/gen-1 ] && fail "the retired generation gen-1 is still pinned"

# 5. What the traffic met.
kill "$traffic"; wait "$traffic" || true; traffic=
counts=$(cat "$work/traffic.txt")
echo "traffic: $counts"
count() { echo "$counts" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
[ "$(count eop_failed)" = 0 ] || fail "an admitted source's connect failed during a change"
[ "$(count stranger_admitted)" = 0 ] || fail "a stranger's SYN was answered during a change"
if [ "$(count eop_ok)" -le 5 ] || [ "$(count stranger_refused)" -le 5 ]; then fail "too little traffic: $counts"; fi
stop_daemon
out=$(in_gw dpkg --purge smtpgate 2>&1) || { echo "$out"; fail "dpkg --purge failed"; }
[ -e /sys/fs/bpf/smtpgate ] && fail "purge left /sys/fs/bpf/smtpgate"
installed_here=0
echo "package upgrade and downgrade over a running gate: no connect lost, no stranger admitted"
