#!/usr/bin/env bash
# The Debian package, built as a packager would: the source tree copied to a
# temporary directory, dpkg-buildpackage -us -uc -b there (2 jobs, tests
# off), lintian with no error allowed, then the .deb's contents, conffiles
# and maintainer scripts checked. If this machine has no smtpgate of its own
# (no package, no /etc/smtpgate, /var/lib/smtpgate or /sys/fs/bpf/smtpgate),
# the package is also installed, a gate attached (on a veth in a namespace
# of the test) and the package purged, and the machine restored if anything
# fails.
# Usage: package.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
work=$(mktemp -d /tmp/sgt$$pkg.XXXXXX)
installed_here=0
ns=sgt$$x0pkg
daemon=
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
    if [ "$installed_here" = 1 ]; then
        dpkg --purge smtpgate >/dev/null 2>&1 || true
        rm -rf /etc/smtpgate /var/lib/smtpgate /sys/fs/bpf/smtpgate
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# 1. A copy of the tree, without build directories.
# shellcheck source=tests/ship/deb_build.sh
. "$(dirname "$0")/deb_build.sh"
copy_tree "$src" "$work/smtpgate"

# 2. The package.
build_deb "$work/smtpgate" || exit 1
deb=$(ls "$work"/smtpgate_*.deb)

# 3. lintian: no error.
lintian --allow-root --fail-on error --tag-display-limit 0 "$deb" | tee "$work/lintian.txt" ||
    fail "lintian reports errors"
grep -q '^E: ' "$work/lintian.txt" && fail "lintian reports errors"

# 4. What the package holds.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' >"$work/files"
for want in \
    /usr/sbin/smtpgated /usr/sbin/smtpgatectl \
    '/usr/lib/*/smtpgate/smtpgate.bpf.o' \
    /lib/systemd/system/smtpgated.service \
    /etc/smtpgate/smtpgate.toml \
    /usr/share/man/man8/smtpgated.8.gz /usr/share/man/man8/smtpgatectl.8.gz \
    /usr/share/man/man5/smtpgate.toml.5.gz \
    /usr/share/bash-completion/completions/smtpgatectl /usr/share/bash-completion/completions/smtpgated \
    '/usr/share/doc/smtpgate/README.md*' '/usr/share/doc/smtpgate/fleet.md*' \
    '/usr/share/doc/smtpgate/json-schema.md*' \
    /usr/share/doc/smtpgate/examples/prometheus/smtpgate-alerts.yml \
    /usr/share/doc/smtpgate/examples/grafana/smtpgate.json \
    /usr/share/doc/smtpgate/examples/bpfman/xdpprogram.yaml \
    /usr/share/doc/smtpgate/examples/ansible/monitor.yml; do
    # shellcheck disable=SC2053
    found=0
    while read -r f; do [[ $f == $want ]] && found=1 && break; done <"$work/files"
    [ "$found" = 1 ] || fail "the package lacks $want"
done
grep -q '^/usr/share/doc/smtpgate/examples/.*\.test\.' "$work/files" && fail "test files shipped"
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/smtpgate/smtpgate.toml "$work/control/conffiles" || fail "smtpgate.toml is not a conffile"
dpkg-deb -x "$deb" "$work/root"
file "$work"/root/usr/lib/*/smtpgate/smtpgate.bpf.o | grep -q 'eBPF' || fail "the BPF object is not an eBPF ELF"
# The BPF object keeps its BTF (bpfman and libbpf need it for the maps).
readelf -SW "$work"/root/usr/lib/*/smtpgate/smtpgate.bpf.o | grep -q ' \.BTF ' || fail "the BPF object lost its BTF"

# 5. The conffile: every key smtpgated knows is there, commented, and with
# every one uncommented it is a valid configuration (the defaults shown are
# accepted values).
conf=$work/root/etc/smtpgate/smtpgate.toml
keys=$(sed -n '/check_keys(/,/);/p' "$src/loader/ops/config.cpp" | grep -o '"[a-z_0-9]*"' | tr -d '"' |
    grep -vx -e feed -e metrics -e feed_gaps -e feed. -e metrics. -e feed_gaps. | sort -u)
[ -n "$keys" ] || fail "no keys found in loader/ops/config.cpp"
for k in $keys; do
    grep -Eq "^#$k = " "$conf" || fail "the conffile does not show key '$k' with its default"
done
grep -Eq '^[a-z_0-9]+ *=' "$conf" && fail "the conffile sets a key instead of showing it commented"
sed -E 's/^#([a-z_0-9]+ = )/\1/' "$conf" >"$work/uncommented.toml"
"$work/root/usr/sbin/smtpgated" --check-config -c "$work/uncommented.toml" ||
    fail "the conffile's defaults, uncommented, are refused"

# 6. Maintainer scripts: the unit is enabled, never started by a fresh
# install; an upgrade restarts only a smtpgated that was running (it takes the
# gate over, tests/ship/upgrade.sh); removal detaches; purge removes pins,
# state and config, saying so.
grep -q 'deb-systemd-helper .*enable' "$work/control/postinst" || fail "postinst does not enable smtpgated"
grep -Eq 'deb-systemd-invoke +start' "$work/control/postinst" && fail "postinst starts smtpgated"
restart_at=$(grep -n 'deb-systemd-invoke restart smtpgated' "$work/control/postinst" | cut -d: -f1 | head -1)
upgrade_at=$(grep -n 'if \[ "\$1" = configure \] && \[ -n "\$2" \]' "$work/control/postinst" | cut -d: -f1 | head -1)
if [ -n "$restart_at" ] && { [ -z "$upgrade_at" ] || [ "$restart_at" -lt "$upgrade_at" ]; }; then
    fail "postinst restarts smtpgated outside an upgrade"
fi
grep -q 'smtpgatectl detach' "$work/control/prerm" || fail "prerm does not detach the gate"
grep -q 'deb-systemd-invoke stop smtpgated' "$work/control/prerm" || fail "prerm does not stop smtpgated"
for d in /sys/fs/bpf/smtpgate /var/lib/smtpgate /etc/smtpgate; do
    grep -q "rm -rf $d" "$work/control/postrm" || fail "postrm purge leaves $d"
done

# 7. Install and purge, when this machine has no smtpgate of its own.
if dpkg-query -W smtpgate >/dev/null 2>&1 || [ -e /etc/smtpgate ] || [ -e /var/lib/smtpgate ] ||
    [ -e /sys/fs/bpf/smtpgate ]; then
    echo "install/purge skipped: this machine has an smtpgate of its own"
else
    installed_here=1
    out=$(dpkg -i "$deb" 2>&1) || { echo "$out"; fail "dpkg -i failed"; }
    echo "$out" | grep -q 'enabled but not started' || fail "postinst did not say the unit is not started"
    [ -x /usr/sbin/smtpgatectl ] && [ -f /etc/smtpgate/smtpgate.toml ] || fail "installed files missing"
    /usr/sbin/smtpgated --check-config >/dev/null || fail "the installed configuration is refused"
    # A gateway as purge finds it: state, pins, and a gate left attached by
    # a stopped smtpgated, on a veth in a namespace of this test (joined
    # with nsenter, so the pins stay the machine's).
    /usr/sbin/smtpgatectl ranges add 40.95.0.0/16 >/dev/null
    ip netns add "$ns"
    ip -n "$ns" link add sgtpkga type veth peer name sgtpkgb
    ip -n "$ns" link set sgtpkga up
    ip -n "$ns" link set sgtpkgb up
    in_ns() { nsenter --net="/var/run/netns/$ns" "$@"; }
    # nsenter itself, not in_ns: a function sent to the background runs in a
    # subshell, whose pid $! would be, and killing it would leave smtpgated
    # running. nsenter execs smtpgated, so $! is the daemon's pid.
    nsenter --net="/var/run/netns/$ns" /usr/sbin/smtpgated --interface sgtpkga --mode skb --no-feed \
      --metrics-listen "" >"$work/daemon.log" 2>&1 &
    daemon=$!
    for _ in $(seq 100); do ip -n "$ns" link show sgtpkga | grep -q xdp && break; sleep 0.2; done
    kill "$daemon"; wait "$daemon" || true; daemon=
    ip -n "$ns" link show sgtpkga | grep -q xdp || { cat "$work/daemon.log"; fail "the gate did not attach"; }
    [ -f /var/lib/smtpgate/ranges.json ] && [ -d /sys/fs/bpf/smtpgate ] || fail "no state or pin dir to purge"
    out=$(in_ns dpkg --purge smtpgate 2>&1) || { echo "$out"; fail "dpkg --purge failed"; }
    echo "$out"
    echo "$out" | grep -q "detached the gate from sgtpkga" || fail "purge did not say it detached the gate"
    ip -n "$ns" link show sgtpkga | grep -q xdp && fail "purge left the gate attached"
    for d in /sys/fs/bpf/smtpgate /var/lib/smtpgate /etc/smtpgate; do
        [ -e "$d" ] && fail "purge left $d"
        echo "$out" | grep -q "removed .* $d" || fail "purge did not say it removed $d"
    done
    [ -e /usr/sbin/smtpgatectl ] && fail "purge left /usr/sbin/smtpgatectl"
    installed_here=0
fi
echo "debian package: built, lintian clean of errors, contents, conffile and maintainer scripts checked"
