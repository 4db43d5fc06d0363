#!/usr/bin/env bash
# Runs smtpgate's kernel-facing tests on a Debian kernel under qemu (software
# emulation: no KVM needed).
#
#   run-vm-tests.sh [--kernel 6.1|6.12] [--flavour cloud|amd64]
#                   [--scenario suite|nic] [--nic virtio|e1000]
#                   BUILD_DIR [BINARY...]
#
# --kernel picks the line (default 6.1, Debian 12's own; 6.12 is Debian 13's,
# carried by Debian 12 as 6.12.*+deb12), --flavour the package: cloud (small,
# virtio drivers) or amd64 (every NIC driver, e1000 among them). The newest
# linux-image-<line>*-<flavour>-unsigned in apt's lists is fetched with
# apt-get download once (cached in BUILD_DIR/vm-cache) and unpacked with
# dpkg -x; it is never installed.
#
# Scenarios:
#   suite  the guest runs BINARY... (gtest binaries; veth inside the guest)
#          and prints one result line, SMTPGATE-VM-RESULT.
#   nic    the guest gets a real NIC (virtio-net with 4 queue pairs, 2 used
#          for receive, 2 left for XDP_TX; or an e1000, which has no native
#          XDP) whose other end is a tap in a network namespace this script
#          creates on the host. qemu runs inside that namespace, so the tap
#          never meets the machine's own interfaces. The guest configures the
#          NIC and serves a command agent on it; BINARY (default
#          BUILD_DIR/vm-tests/vm_nic_peer) runs on the host inside the
#          namespace and drives the test through the driver: real TCP from
#          the tap's addresses, a SYN flood, smtpgatectl in the guest.
#
# Exits non-zero on any failed test, a kernel panic, a missing result line or
# a timeout (SMTPGATE_VM_TIMEOUT seconds, default 1500). The namespace, the
# tap and qemu are removed on every exit.
set -euo pipefail

usage() {
  echo "usage: run-vm-tests.sh [--kernel 6.1|6.12] [--flavour cloud|amd64] [--scenario suite|nic] [--nic virtio|e1000] BUILD_DIR [BINARY...]" >&2
  exit 2
}
line=6.1 flavour=cloud scenario=suite nic=virtio
while [ $# -gt 0 ]; do
  case $1 in
    --kernel) line=${2:?}; shift 2 ;;
    --flavour) flavour=${2:?}; shift 2 ;;
    --scenario) scenario=${2:?}; shift 2 ;;
    --nic) nic=${2:?}; shift 2 ;;
    --*) usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
case $line in 6.1|6.12) ;; *) echo "run-vm-tests: --kernel $line: use 6.1 or 6.12" >&2; exit 2 ;; esac
case $flavour in cloud) flav=cloud-amd64 ;; amd64) flav=amd64 ;; *) echo "run-vm-tests: --flavour $flavour: use cloud or amd64" >&2; exit 2 ;; esac
case $scenario in suite|nic) ;; *) echo "run-vm-tests: --scenario $scenario: use suite or nic" >&2; exit 2 ;; esac
case $nic in virtio|e1000) ;; *) echo "run-vm-tests: --nic $nic: use virtio or e1000" >&2; exit 2 ;; esac

build=$(cd "$1" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
timeout_s=${SMTPGATE_VM_TIMEOUT:-1500}
cache="$build/vm-cache"
mkdir -p "$cache"

binaries=("$@")
if [ "${#binaries[@]}" -eq 0 ]; then
  if [ "$scenario" = nic ]; then
    binaries=("$build/vm-tests/vm_nic_peer")
  else
    binaries=("$build/tests/test_xdp_verdicts" "$build/tests/test_gate_ops" "$build/vm-tests/e2e_gate")
  fi
fi

# --- the kernel: newest package of the line and flavour, fetched once ---------
# 6.1.0-57-cloud-amd64, 6.12.118+deb12-amd64: never the rt or another flavour.
pkg_re="linux-image-${line//./\\.}\.[0-9]+(-[0-9]+|\+deb12)-${flav}-unsigned"
cached_pkg() { ls "$cache"/*.deb 2>/dev/null | grep -E "/${pkg_re}_[^/]*\.deb$" | sort -V | tail -1 || true; }
pkg=$(cached_pkg)
if [ -z "$pkg" ]; then
  newest() { apt-cache search --names-only "^${pkg_re}\$" | awk '{print $1}' | sort -V | tail -1; }
  name=$(newest)
  if [ -z "$name" ]; then
    apt-get update -qq
    name=$(newest)
  fi
  [ -n "$name" ] || { echo "run-vm-tests: no package matching $pkg_re in apt's lists" >&2; exit 1; }
  (cd "$cache" && apt-get download -q "$name" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  pkg=$(cached_pkg)
  [ -n "$pkg" ] || { echo "run-vm-tests: apt-get download $name failed" >&2; exit 1; }
fi
kroot="$cache/kernel-$(basename "$pkg" .deb)"
if [ ! -d "$kroot" ]; then
  rm -rf "$kroot.tmp" && dpkg -x "$pkg" "$kroot.tmp" && mv "$kroot.tmp" "$kroot"
fi
vmlinuz=$(ls "$kroot"/boot/vmlinuz-* | head -1)
kver=$(basename "$vmlinuz" | sed 's/^vmlinuz-//')

# --- the initramfs ------------------------------------------------------------
root=$(mktemp -d "$cache/initramfs.XXXXXX")
initrd="$root.cpio.gz"
netns="" qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
  if [ -n "$netns" ]; then ip netns del "$netns" 2>/dev/null || true; fi
  rm -rf "$root" "$initrd"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc,proc,sys,dev,tmp,run,var,smtpgate/bin,smtpgate/bpf/testprogs}
ln -s /run "$root/var/run"
cp /bin/busybox "$root/bin/busybox"
for app in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$app" ] || ln -s busybox "$root/bin/$app"
done

# Copies a program and every shared library it links, keeping paths.
add_binary() {
  local src=$1 dest=${2:-$1}
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$src" "$root$dest"
  ldd "$src" 2>/dev/null | grep -oE '/[^ ]+' | while read -r lib; do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
# busybox's shell runs its own applets (its "ip" lacks netns) whatever PATH
# says: the shell the tests' popen() and the command agent get is dash.
rm -f "$root/bin/sh"
add_binary /bin/dash /bin/sh
for tool in /usr/sbin/ip /usr/sbin/bpftool /usr/sbin/xdp-filter /usr/sbin/xdp-loader /usr/bin/nsenter /usr/sbin/ethtool; do
  add_binary "$tool"
done
mkdir -p "$root/usr/lib/x86_64-linux-gnu/bpf"
cp /usr/lib/x86_64-linux-gnu/bpf/*.o "$root/usr/lib/x86_64-linux-gnu/bpf/"
add_binary "$build/loader/smtpgated" /smtpgate/bin/smtpgated
add_binary "$build/control/smtpgatectl" /smtpgate/bin/smtpgatectl
cp "$build/bpf/testprogs/"*.bpf.o "$root/smtpgate/bpf/testprogs/"
cp "$build/bpf/smtpgate.bpf.o" "$root/smtpgate/bpf/"
mkdir -p "$root/smtpgate/fixtures"
cp "$here/../../tests/fixtures/"*.json "$root/smtpgate/fixtures/"
names=()
if [ "$scenario" = suite ]; then
  for t in "${binaries[@]}"; do
    add_binary "$t" "/smtpgate/bin/$(basename "$t")"
    names+=("$(basename "$t")")
  done
fi

# Modules of the same package: veth for the suite, the NIC's driver for nic.
# A driver the flavour builds in needs no module; one it lacks fails here.
mods="$kroot/lib/modules/$kver"
# The package ships no modules.dep (installation makes it): make it here.
[ -f "$mods/modules.dep" ] || depmod -b "$kroot" "$kver"
mkdir -p "$root/lib/modules/$kver"
: > "$root/modules.order"
case $scenario/$nic in
  # veth for the sandboxes; vxlan and tun for the tunnel devices e2e_wire makes.
  suite/*) want=(veth vxlan tun) ;;
  nic/virtio) want=(virtio_pci virtio_net) ;;
  nic/e1000) want=(e1000) ;;
esac
for m in "${want[@]}"; do
  entry=$(grep -E "/$m\.ko(\.[a-z]+)?:" "$mods/modules.dep" || true)
  if [ -z "$entry" ]; then
    grep -qE "/$m\.ko$" "$mods/modules.builtin" && continue
    echo "run-vm-tests: $kver ($flavour) has no $m driver; try --flavour amd64" >&2
    exit 1
  fi
  # modules.dep lists the dependencies in reverse load order.
  deps=$(echo "$entry" | cut -d: -f2 | tr ' ' '\n' | tac)
  for dep in $deps $(echo "$entry" | cut -d: -f1); do
    grep -qx "$dep" "$root/modules.order" && continue
    mkdir -p "$root/lib/modules/$kver/$(dirname "$dep")"
    cp "$mods/$dep" "$root/lib/modules/$kver/$dep"
    echo "$dep" >> "$root/modules.order"
  done
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
sed -e "s|@TESTS@|${names[*]:-}|" -e "s|@KVER@|$kver|" -e "s|@SCENARIO@|$scenario|" \
  -e "s|@NIC@|$nic|" "$here/init.sh" > "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$initrd")

# --- boot ---------------------------------------------------------------------
tag=$kver
[ "$scenario" = nic ] && tag="$kver-nic-$nic"
log="$build/vm-tests/vm-$tag.log"
mkdir -p "$(dirname "$log")"
rm -f "$log"
# One emulator thread for both vCPUs: with a thread per vCPU, a guest that
# patches kernel text on one vCPU (the XDP dispatcher, when a program is
# replaced) while the other runs it has died with "Oops: int3" under
# emulation (docs/kernels.md); one thread runs each vCPU's code as it is.
qemu=(qemu-system-x86_64 -machine q35 -accel tcg,thread=single -cpu max -m 2048 -smp 2 -no-reboot -display none -monitor none
      -nic none -serial "file:$log" -kernel "$vmlinuz" -initrd "$initrd"
      -append "console=ttyS0 panic=-1 quiet loglevel=3")
start=$(date +%s)
if [ "$scenario" = suite ]; then
  echo "run-vm-tests: booting $kver with ${names[*]} (log: $log)"
  set +e
  timeout "$timeout_s" "${qemu[@]}"
  rc=$?
  set -e
  echo "run-vm-tests: VM ran $(( $(date +%s) - start )) s"
  grep -aE '^\[ *(PASSED|FAILED|SKIPPED) *\]|^\[  FAILED  \]|SMTPGATE-VM' "$log" | tr -d '\r' || true
  if [ "$rc" -eq 124 ]; then echo "run-vm-tests: timed out after $timeout_s s" >&2; exit 1; fi
  if grep -q "Kernel panic" "$log"; then echo "run-vm-tests: kernel panic (see $log)" >&2; exit 1; fi
  result=$(grep -a '^SMTPGATE-VM-RESULT' "$log" | tr -d '\r' | tail -1)
  [ -n "$result" ] || { echo "run-vm-tests: no result line from the VM (see $log)" >&2; exit 1; }
  failed=$(echo "$result" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
  passed=$(echo "$result" | sed -n 's/.*passed=\([0-9]*\).*/\1/p')
  echo "$passed passed, $failed failed"
  if [ "$failed" != 0 ]; then
    # What each failed assertion said (the log itself stays in the build tree).
    echo "run-vm-tests: the failures, from $log:"
    grep -aE -A8 ': Failure' "$log" | tr -d '\r' | head -200 || true
  fi
  [ "$failed" = 0 ] && [ "$passed" -gt 0 ]
  exit
fi

# nic: the tap's end of the link lives in a namespace of this run's own. The
# addresses are the documentation ranges the guest's routes point at; the
# peer binary adds its EOP and stranger source addresses itself.
# Namespaces of runs that were killed before they could clean up.
for stale in $(ip netns list | awk '/^sgvm[0-9]+/ {print $1}'); do
  kill -0 "${stale#sgvm}" 2>/dev/null || ip netns del "$stale" 2>/dev/null || true
done
netns="sgvm$$"
ip netns add "$netns"
if [ "$nic" = virtio ]; then
  # 4 queue pairs: the guest receives on 2 (one per vCPU) and virtio_net keeps
  # the other 2 for XDP_TX, so the reset leaves on a queue of its own instead
  # of a shared, locked one.
  queues=4
  ip -n "$netns" tuntap add dev sgtap0 mode tap multi_queue
  netdev="tap,id=n0,ifname=sgtap0,script=no,downscript=no,vhost=off,queues=$queues"
  device="virtio-net-pci,netdev=n0,mac=52:54:00:53:47:01,mq=on,vectors=$((2 * queues + 2))"
else
  ip -n "$netns" tuntap add dev sgtap0 mode tap
  netdev="tap,id=n0,ifname=sgtap0,script=no,downscript=no"
  device="e1000,netdev=n0,mac=52:54:00:53:47:01"
fi
# Long queues toward the guest (set before qemu opens them): the emulated
# guest drains a flood far slower than the peer writes it.
ip -n "$netns" link set sgtap0 txqueuelen 4096
ip -n "$netns" link set lo up
ip -n "$netns" addr add 192.0.2.2/24 dev sgtap0
ip -n "$netns" link set sgtap0 up
echo "run-vm-tests: booting $kver with a $nic NIC on sgtap0 in namespace $netns (log: $log)"
timeout "$timeout_s" nsenter --net="/var/run/netns/$netns" "${qemu[@]}" -netdev "$netdev" -device "$device" &
qemu_pid=$!
# The guest says when its agent listens; a dead qemu or a deadline ends the wait.
until grep -qa '^SMTPGATE-VM AGENT-READY' "$log" 2>/dev/null; do
  kill -0 "$qemu_pid" 2>/dev/null || { echo "run-vm-tests: the VM stopped before its agent was ready (see $log)" >&2; exit 1; }
  [ $(( $(date +%s) - start )) -lt 300 ] || { echo "run-vm-tests: the VM's agent was not ready after 300 s (see $log)" >&2; exit 1; }
  sleep 1
done
echo "run-vm-tests: guest ready after $(( $(date +%s) - start )) s"
set +e
SMTPGATE_VM_NIC=$nic SMTPGATE_VM_KERNEL=$kver timeout "$timeout_s" \
  nsenter --net="/var/run/netns/$netns" "${binaries[0]}" --gtest_color=no
rc=$?
set -e
echo "run-vm-tests: VM ran $(( $(date +%s) - start )) s"
if grep -q "Kernel panic" "$log"; then echo "run-vm-tests: kernel panic (see $log)" >&2; exit 1; fi
[ "$rc" -ne 124 ] || { echo "run-vm-tests: timed out after $timeout_s s" >&2; exit 1; }
exit "$rc"
