#!/usr/bin/env bash
# Runs smtpgate's kernel-facing tests on Debian 12's own 6.1 kernel under qemu
# (software emulation: no KVM needed).
#
#   run-vm-tests.sh BUILD_DIR [TEST_BINARY...]
#
# Fetches linux-image-6.1.0-*-cloud-amd64-unsigned with apt-get download (once;
# cached in BUILD_DIR/vm-cache), unpacks it with dpkg -x (never installs it),
# builds an initramfs with busybox-static, iproute2, bpftool, xdp-tools, the
# given test binaries, smtpgated and smtpgatectl and the libraries they link,
# boots it, and reads the one result line /init prints on the serial console.
# Exits non-zero on any failed test, a kernel panic, a missing result line or
# a timeout (SMTPGATE_VM_TIMEOUT seconds, default 1500).
set -euo pipefail

build=$(cd "${1:?usage: run-vm-tests.sh BUILD_DIR [TEST_BINARY...]}" && pwd)
shift
here=$(cd "$(dirname "$0")" && pwd)
timeout_s=${SMTPGATE_VM_TIMEOUT:-1500}
cache="$build/vm-cache"
mkdir -p "$cache"

tests=("$@")
if [ "${#tests[@]}" -eq 0 ]; then
  tests=("$build/tests/test_xdp_verdicts" "$build/tests/test_gate_ops" "$build/vm-tests/e2e_gate")
fi

# --- the kernel: newest 6.1 cloud image Debian offers, fetched once ---------
pkg=$(ls "$cache"/linux-image-6.1.0-*-cloud-amd64-unsigned_*.deb 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$pkg" ]; then
  name=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' | awk '{print $1}' | sort -V | tail -1)
  if [ -z "$name" ]; then
    apt-get update -qq
    name=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' | awk '{print $1}' | sort -V | tail -1)
  fi
  [ -n "$name" ] || { echo "run-vm-tests: no linux-image-6.1.0-*-cloud-amd64-unsigned in apt's lists" >&2; exit 1; }
  (cd "$cache" && apt-get download -q "$name" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  pkg=$(ls "$cache"/linux-image-6.1.0-*-cloud-amd64-unsigned_*.deb | sort -V | tail -1)
fi
kroot="$cache/kernel-$(basename "$pkg" .deb)"
if [ ! -d "$kroot" ]; then
  rm -rf "$kroot.tmp" && dpkg -x "$pkg" "$kroot.tmp" && mv "$kroot.tmp" "$kroot"
fi
vmlinuz=$(ls "$kroot"/boot/vmlinuz-* | head -1)
kver=$(basename "$vmlinuz" | sed 's/^vmlinuz-//')

# --- the initramfs ------------------------------------------------------------
root=$(mktemp -d "$cache/initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
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
# says: the shell the tests' popen() gets is dash.
rm -f "$root/bin/sh"
add_binary /bin/dash /bin/sh
for tool in /usr/sbin/ip /usr/sbin/bpftool /usr/sbin/xdp-filter /usr/sbin/xdp-loader /usr/bin/nsenter; do
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
for t in "${tests[@]}"; do
  add_binary "$t" "/smtpgate/bin/$(basename "$t")"
  names+=("$(basename "$t")")
done
mods="$kroot/lib/modules/$kver"
# The package ships no modules.dep (installation makes it): make it here.
[ -f "$mods/modules.dep" ] || depmod -b "$kroot" "$kver"
mkdir -p "$root/lib/modules/$kver"
# veth for the sandboxes; vxlan and tun for the tunnel devices e2e_wire makes.
for m in veth vxlan tun; do
  path=$(grep -E "/$m\.ko(\.xz)?:" "$mods/modules.dep" | cut -d: -f1)
  [ -n "$path" ] || continue  # built in
  # modules.dep names a module's dependencies deepest last: load them first.
  for dep in $(grep -E "/$m\.ko(\.xz)?:" "$mods/modules.dep" | cut -d: -f2 | tr ' ' '\n' | tac) "$path"; do
    grep -qx "$dep" "$root/modules.order" 2>/dev/null && continue
    mkdir -p "$root/lib/modules/$kver/$(dirname "$dep")"
    cp "$mods/$dep" "$root/lib/modules/$kver/$dep"
    echo "$dep" >> "$root/modules.order"
  done
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
sed -e "s|@TESTS@|${names[*]}|" -e "s|@KVER@|$kver|" "$here/init.sh" > "$root/init"
chmod +x "$root/init"
initrd="$cache/initramfs.cpio.gz"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$initrd")

# --- boot ---------------------------------------------------------------------
log="$build/vm-tests/vm-$kver.log"
mkdir -p "$(dirname "$log")"
echo "run-vm-tests: booting $kver with ${names[*]} (log: $log)"
start=$(date +%s)
set +e
timeout "$timeout_s" qemu-system-x86_64 -machine q35 -cpu max -m 2048 -smp 2 -nographic -no-reboot \
  -kernel "$vmlinuz" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3" > "$log" 2>&1
rc=$?
set -e
echo "run-vm-tests: VM ran $(( $(date +%s) - start )) s"
grep -E '^\[ *(PASSED|FAILED|SKIPPED) *\]|^\[  FAILED  \]|SMTPGATE-VM' "$log" | tr -d '\r' || true
if [ "$rc" -eq 124 ]; then echo "run-vm-tests: timed out after $timeout_s s" >&2; exit 1; fi
if grep -q "Kernel panic" "$log"; then echo "run-vm-tests: kernel panic (see $log)" >&2; exit 1; fi
result=$(grep -a '^SMTPGATE-VM-RESULT' "$log" | tr -d '\r' | tail -1)
[ -n "$result" ] || { echo "run-vm-tests: no result line from the VM (see $log)" >&2; exit 1; }
failed=$(echo "$result" | sed -n 's/.*failed=\([0-9]*\).*/\1/p')
passed=$(echo "$result" | sed -n 's/.*passed=\([0-9]*\).*/\1/p')
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
