#!/usr/bin/env bash
# Installs everything smtpgate needs to build, test and run on Debian 12.
# Idempotent: packages already present are left alone.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-deps.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

packages=(
  # build
  build-essential cmake pkg-config clang llvm
  # tests: the sources formatted as .clang-format says
  clang-format
  # BPF
  libbpf-dev libxdp-dev bpftool xdp-tools linux-libc-dev
  # C++ libraries
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev
  libcli11-dev libtomlplusplus-dev libcurl4-openssl-dev libsystemd-dev
  # feed gaps: PTR lookups confirmed forward (c-ares); tests: a DNS server
  libc-ares-dev dnsmasq-base
  # metrics: the Prometheus pull exposer (civetweb inside)
  prometheus-cpp-dev
  # tests: namespaces, veth, traffic, comparisons
  iproute2 ethtool nftables procps util-linux ca-certificates
  # tests: an HTTPS feed server with a test CA
  libssl-dev openssl
  # tests: the JSON output checked against docs/schema
  python3-jsonschema
  # bench/flood.sh: JSON of nft, bpftool and smtpgatectl
  jq
  # vm-tests: Debian 12's kernel under emulation
  qemu-system-x86 busybox-static cpio kmod
  # shipping: man pages, the Debian package, alert rules, Ansible, manifests
  scdoc man-db debhelper lintian file prometheus ansible-core ansible-lint python3 python3-yaml
  # shipping: the systemd unit, scored and started under systemd in a container
  systemd systemd-container
  # shipping: the Postfix snippet, run in a private instance (no system Postfix)
  postfix
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Postfix without a configuration: no /etc/postfix/main.cf, so no system
  # Postfix can start; the test runs its own instance.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if printf '%s\n' "${missing[@]}" | grep -qx postfix && [ -d /run/systemd/system ]; then
    systemctl disable --now postfix.service >/dev/null 2>&1 || true
  fi
fi
