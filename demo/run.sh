#!/usr/bin/env bash
# The smtpgate demo: a gateway and a sender in two network namespaces joined
# by veth, the gate on the gateway's veth, a listener on port 25, one connect
# from an EOP address and one from a stranger, then status, stats, explain.
# Usage: demo/run.sh BUILD_DIR. Removes everything it made when it ends.
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
ctl_bin="$build/control/smtpgatectl"
daemon_bin="$build/loader/smtpgated"
connect_bin="$build/demo/sg-connect"
tag="sgdemo$$"
gw="${tag}gw"; tx="${tag}tx"
pins="/sys/fs/bpf/$tag"; state="/tmp/$tag-state"
daemon_pid=""; listener_pid=""

cleanup() {
  set +e
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null
  ip netns pids "$gw" 2>/dev/null | xargs -r kill 2>/dev/null
  nsenter --net=/var/run/netns/"$gw" "$ctl_bin" --pin-dir "$pins" detach gw0 >/dev/null 2>&1
  ip netns del "$gw" 2>/dev/null; ip netns del "$tx" 2>/dev/null
  rm -rf "$pins" "$state"
  rmdir /sys/fs/bpf/xdp 2>/dev/null  # libxdp's shared directory, only if empty
  bpffs_release
}
. "$here/../scripts/bpffs.sh"
trap cleanup EXIT

in_gw() { nsenter --net=/var/run/netns/"$gw" "$@"; }
in_tx() { nsenter --net=/var/run/netns/"$tx" "$@"; }
ctl() { in_gw "$ctl_bin" --pin-dir "$pins" --state-dir "$state" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bpffs_acquire
ip netns add "$gw"; ip netns add "$tx"
ip -n "$gw" link add gw0 type veth peer name tx0 netns "$tx"
ip -n "$gw" link set lo up; ip -n "$tx" link set lo up
ip -n "$gw" addr add 192.0.2.1/24 dev gw0; ip -n "$gw" addr add 2001:db8::1/64 dev gw0 nodad
ip -n "$tx" addr add 192.0.2.2/24 dev tx0; ip -n "$tx" addr add 2001:db8::2/64 dev tx0 nodad
ip -n "$tx" addr add 40.92.0.10/32 dev tx0               # an EOP outbound address
ip -n "$tx" addr add 2a01:111:f400::10/128 dev tx0 nodad # an EOP IPv6 address
ip -n "$tx" addr add 203.0.113.66/32 dev tx0             # a stranger (spam bot)
ip -n "$gw" link set gw0 up; ip -n "$tx" link set tx0 up
ip -n "$gw" route add default via 192.0.2.2; ip -n "$gw" -6 route add default via 2001:db8::2
# veth delivers the gate's resets (XDP_TX) only to a peer running XDP: pass-all.
ip -n "$tx" link set dev tx0 xdpdrv obj "$build/bpf/testprogs/xdp_pass.bpf.o" sec xdp

say "Load Microsoft's port-25 ranges from the bundled feed snapshot (offline)"
snapshot="$here/feed-snapshot/endpoints-worldwide.json"
ctl feed import "$snapshot"

say "Start smtpgated on the gateway's veth (action: reject)"
in_gw "$daemon_bin" --interface gw0 --pin-dir "$pins" --state-dir "$state" --no-feed --action reject &
daemon_pid=$!
for _ in $(seq 50); do ctl -j status 2>/dev/null | grep -q '"prog_id"' && break; sleep 0.2; done
in_gw "$connect_bin" --listen 25 &
listener_pid=$!
sleep 0.3

say "Connect to port 25 from EOP (40.92.0.10, 2a01:111:f400::10) and from a stranger (203.0.113.66)"
printf '  from 40.92.0.10:        %s\n' "$(in_tx "$connect_bin" 40.92.0.10 192.0.2.1 25 || true)"
printf '  from 2a01:111:f400::10: %s\n' "$(in_tx "$connect_bin" 2a01:111:f400::10 2001:db8::1 25 || true)"
printf '  from 203.0.113.66:      %s\n' "$(in_tx "$connect_bin" 203.0.113.66 192.0.2.1 25 || true)"

say "smtpgatectl status";            ctl status
say "smtpgatectl stats";             ctl stats
say "smtpgatectl explain 203.0.113.66"; ctl explain 203.0.113.66
say "smtpgatectl explain 40.92.0.10";   ctl explain 40.92.0.10
printf '\nOn a real gateway: smtpgated --interface eth0 (feed from https://endpoints.office.com); see README.md.\n'
