#!/bin/sh
# /init of the smtpgate test VM: mount what the tests need, load veth, run
# each test binary, print one result line, power off.
export PATH=/smtpgate/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /sys/fs/bpf /run/netns
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
for m in $(cat /modules.order); do insmod "/lib/modules/@KVER@/$m"; done
export SMTPGATE_BIN_DIR=/smtpgate/bin SMTPGATE_BPF_DIR=/smtpgate/bpf SMTPGATE_FIXTURES_DIR=/smtpgate/fixtures
echo "SMTPGATE-VM kernel $(uname -r)"
passed=0
failed=0
for t in @TESTS@; do
  echo "SMTPGATE-VM running $t"
  if "/smtpgate/bin/$t" --gtest_brief=1 --gtest_color=no; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "SMTPGATE-VM FAILED $t"
  fi
done
echo "SMTPGATE-VM-RESULT kernel=$(uname -r) passed=$passed failed=$failed"
poweroff -f
