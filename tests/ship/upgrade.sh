#!/usr/bin/env bash
# The package over a running gate, under traffic: two packages built from
# this tree, the second with another map layout (SMTPGATE_ABI_TEST_PAD: a
# field more in the per-rule counters) and a higher version. The first is
# installed and its gate attached (a veth in namespaces of the test, joined
# with nsenter so the pins stay the machine's); the second is installed over
# it and smtpgated restarted, as postinst does under systemd; then the first
# again (a downgrade). Meanwhile an admitted source connects and a stranger
# sends SYNs: every connect must succeed, no stranger's SYN be answered, and
# each new daemon must say it replaced the gate beside itself.
# Then the same under a real systemd, which restarts smtpgated itself:
# systemd booted in a container of this machine's files (nspawn.sh: writes
# go to memory, dpkg's database and bpffs are the container's own) in the
# gateway's namespace; the first package installed there and smtpgated
# started by systemctl; the second installed over it, and the first again,
# each by dpkg -i alone: its postinst restarts the unit (a new main process
# running the new binary), the new daemon's journal says it replaced the
# gate, the veth has the new program, live the new generation with the new
# layout, the counters went on, and the traffic met no gap. A reinstall where
# policy-rc.d forbids restarts must say that nothing was restarted; the purge
# stops the unit and detaches the gate.
# Skipped (77) when this machine has an smtpgate of its own, or (after the
# first part) without systemd-nspawn.
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
xdp_dir_before=$(ls -d /sys/fs/bpf/xdp 2>/dev/null || true)
# shellcheck source=tests/ship/nspawn.sh
. "$here/nspawn.sh"
cleanup() {
    set +e
    for p in $traffic $listener $daemon; do { kill "$p" && wait "$p"; } 2>/dev/null; done
    ct_stop
    if [ "$installed_here" = 1 ]; then
        nsenter --net="/var/run/netns/$gw" dpkg --purge smtpgate >/dev/null 2>&1 || true
        rm -rf /etc/smtpgate /var/lib/smtpgate /sys/fs/bpf/smtpgate
    fi
    ip netns del "$gw" 2>/dev/null || true
    ip netns del "$tx" 2>/dev/null || true
    rm -rf "$work"
    # libxdp's directory for its dispatchers, when this test made it (empty).
    [ -n "$xdp_dir_before" ] || rmdir /sys/fs/bpf/xdp 2>/dev/null || true
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
# start_traffic NAME: the admitted source and the stranger connecting, their
# counts in $work/traffic-NAME.txt when stop_traffic ends them.
start_traffic() {
    nsenter --net="/var/run/netns/$tx" python3 "$here/syn_traffic.py" send 192.0.2.1 25 40.92.0.10 203.0.113.10 \
        >"$work/traffic-$1.txt" &
    traffic=$!
    sleep 2
}
# stop_traffic NAME: what the traffic met, through every change since start_traffic.
stop_traffic() {
    local counts
    kill "$traffic"; wait "$traffic" || true; traffic=
    counts=$(cat "$work/traffic-$1.txt")
    echo "traffic ($1): $counts"
    count() { echo "$counts" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    [ "$(count eop_failed)" = 0 ] || fail "$1: an admitted source's connect failed during a change"
    [ "$(count stranger_admitted)" = 0 ] || fail "$1: a stranger's SYN was answered during a change"
    if [ "$(count eop_ok)" -le 5 ] || [ "$(count stranger_refused)" -le 5 ]; then
        fail "$1: too little traffic: $counts"
    fi
}
start_traffic daemon

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

# 5. What the traffic met; the package purged.
stop_traffic daemon
stop_daemon
out=$(in_gw dpkg --purge smtpgate 2>&1) || { echo "$out"; fail "dpkg --purge failed"; }
[ -e /sys/fs/bpf/smtpgate ] && fail "purge left /sys/fs/bpf/smtpgate"
installed_here=0
echo "package upgrade and downgrade over a running gate: no connect lost, no stranger admitted"
if ! command -v systemd-nspawn >/dev/null; then
    echo "under systemd: skipped, no systemd-nspawn (package systemd-container)"
    exit 77
fi

# 6. Under systemd: a container booted to a target of its own (the journal,
# none of this machine's services), the packages bound in, the first one
# installed, configured for the veth and started with systemctl.
ct_fail() {
    echo "FAIL: $*"
    in_ct journalctl -u smtpgated --no-pager | tail -30
    exit 1
}
target=smtpgate-upgrade-test.target
printf '[Unit]\nDescription=smtpgate upgrade test\nRequires=sysinit.target\nAfter=sysinit.target\n' >"$work/$target"
ct_boot all "$gw" "$work/boot.log" --bind-ro="$work/$target:/etc/systemd/system/$target" \
    --bind-ro="$deb_old:/srv/old.deb" --bind-ro="$deb_new:/srv/new.deb" "systemd.unit=$target" ||
    fail "systemd did not boot in the container"
case $ct_state in
running) ;;
degraded) in_ct systemctl --failed --no-pager || true ;;  # units of no concern here
*) fail "the container's systemd is $ct_state" ;;
esac
# A gateway lets maintainer scripts restart services (the policy-rc.d of
# Docker images forbids it; step 8 puts one back).
in_ct rm -f /usr/sbin/policy-rc.d
ct_dpkg() { in_ct dpkg "$@" </dev/null 2>&1; }
out=$(ct_dpkg -i /srv/old.deb) || { echo "$out"; fail "dpkg -i $old failed under systemd"; }
echo "$out" | grep -q 'enabled but not started' || { echo "$out"; fail "postinst did not say smtpgated is not started"; }
in_ct systemctl is-enabled --quiet smtpgated || fail "the package did not enable smtpgated"
in_ct systemctl is-active --quiet smtpgated && fail "the package started smtpgated"
if [ -e /usr/sbin/smtpgated ] || dpkg-query -W smtpgate >/dev/null 2>&1; then
    fail "dpkg in the container wrote this machine's files"
fi
printf 'interfaces = ["sgtupga"]\nmode = "skb"\n[feed]\nenabled = false\n[metrics]\nlisten = ""\n' |
    in_ct tee /etc/smtpgate/smtpgate.toml >/dev/null
in_ct smtpgatectl ranges add 40.92.0.0/15 >/dev/null
in_ct systemctl start smtpgated || ct_fail "systemctl start smtpgated failed"
start_traffic systemd

# What the gate is: its unit's main process, the XDP program on the veth,
# the generation live names, the value size of its per-rule counters (the
# layout), the SYNs its rule for the admitted source admitted.
main_pid() { in_ct systemctl show -p MainPID --value smtpgated; }
xdp_prog() { ip -n "$gw" -d link show sgtupga | grep -o 'prog/xdp id [0-9]*' | head -1; }
live_gen() { in_ct readlink /sys/fs/bpf/smtpgate/live; }
counter_size() {  # the first gate's maps are in the pin directory itself
    # shellcheck disable=SC2016 # sh's
    in_ct sh -c 'd=/sys/fs/bpf/smtpgate; [ -e $d/live ] && d=$d/live; bpftool -j map show pinned $d/rule_counters' |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["bytes_value"])'
}
admitted() {
    in_ct smtpgatectl -j explain 40.92.0.10 |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["rule"]["counters"]["admit_packets"])'
}

# 7. Each package over the running unit by dpkg -i alone.
# sd_change DEB VERSION_BEFORE GENERATION VALUE_SIZE
sd_change() {
    local pid prog before out inv log=
    pid=$(main_pid) prog=$(xdp_prog) before=$(admitted)
    out=$(ct_dpkg -i "$1") || { echo "$out"; ct_fail "dpkg -i $1 failed under systemd"; }
    echo "$out" | grep -q "smtpgated restarted after the change from $2" ||
        { echo "$out"; ct_fail "postinst did not restart smtpgated"; }
    in_ct systemctl is-active --quiet smtpgated || ct_fail "smtpgated is not active after dpkg -i $1"
    [ "$(main_pid)" != "$pid" ] || ct_fail "smtpgated's main process is still $pid"
    in_ct readlink "/proc/$(main_pid)/exe" | grep -qx /usr/sbin/smtpgated ||
        ct_fail "smtpgated does not run the installed binary"
    inv=$(in_ct systemctl show -p InvocationID --value smtpgated)
    for _ in $(seq 50); do
        log=$(in_ct journalctl --no-pager -o cat "_SYSTEMD_INVOCATION_ID=$inv")
        echo "$log" | grep -q 'carried over gate_config' && break
        sleep 0.1
    done
    echo "$log" | grep -q 'replacing it without a gap' || { echo "$log"; ct_fail "$1: no replacement in the journal"; }
    echo "$log" | grep -q 'carried over gate_config' || { echo "$log"; ct_fail "$1: nothing carried over"; }
    if [ -z "$(xdp_prog)" ] || [ "$(xdp_prog)" = "$prog" ]; then
        ct_fail "$1: not a new program on the veth: '$(xdp_prog)', was '$prog'"
    fi
    [ "$(live_gen)" = "$3" ] || ct_fail "$1: live names $(live_gen), not $3"
    [ "$(counter_size)" = "$4" ] || ct_fail "$1: per-rule counters of $(counter_size) bytes, not $4"
    [ "$(admitted)" -ge "$before" ] || ct_fail "$1: the admitted source's counter went from $before to $(admitted)"
    echo "$out" | grep 'smtpgated restarted'
    echo "$log" | grep 'the gate now runs' | sed 's/^/journal: /'
    sleep 1
}
size_old=$(counter_size)
sd_change /srv/new.deb "$old" gen-1 $((size_old + 8))
sd_change /srv/old.deb "$new" gen-2 "$size_old"
in_ct test -e /sys/fs/bpf/smtpgate/gen-1 && ct_fail "the retired generation gen-1 is still pinned"

# 8. A reinstall where policy-rc.d forbids restarts: the daemon runs on, and
# postinst says so.
pid=$(main_pid)
in_ct sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
out=$(ct_dpkg -i /srv/old.deb) || { echo "$out"; ct_fail "dpkg -i (a reinstall) failed under systemd"; }
echo "$out" | grep -q 'smtpgated was not restarted' || { echo "$out"; ct_fail "postinst did not say it did not restart"; }
[ "$(main_pid)" = "$pid" ] || ct_fail "smtpgated was restarted against policy-rc.d"
in_ct rm -f /usr/sbin/policy-rc.d
stop_traffic systemd

# 9. The purge stops the unit and detaches the gate.
out=$(ct_dpkg --purge smtpgate) || { echo "$out"; ct_fail "dpkg --purge failed under systemd"; }
echo "$out" | grep -q 'smtpgated stopped' || { echo "$out"; fail "prerm did not stop smtpgated"; }
echo "$out" | grep -q 'detached the gate from sgtupga' || { echo "$out"; fail "prerm did not detach the gate"; }
in_ct systemctl is-active --quiet smtpgated && fail "smtpgated runs after the purge"
ip -n "$gw" link show sgtupga | grep -q xdp && fail "the purge left the gate attached"
ct_stop
echo "under systemd: postinst restarted the unit over the running gate, up and down, without a gap"
