#!/bin/sh
# /init of the smtpgate test VM: mount what the tests need, load the modules
# the runner packed, then by scenario:
#   suite  run each test binary, print one result line, power off;
#   nic    configure the NIC, serve the command agent on it until the runner
#          stops the VM.
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

if [ "@SCENARIO@" = nic ]; then
  # The NIC: 192.0.2.1 and 2001:db8::1, the host's tap is .2/::2 and routes
  # back to the peer's source addresses.
  i=0
  until [ -e /sys/class/net/eth0 ] || [ $i -ge 50 ]; do sleep 0.2; i=$((i + 1)); done
  echo "SMTPGATE-VM nic $(ethtool -i eth0 | sed -n 's/^driver: //p')"
  sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 2>/dev/null
  if [ "@NIC@" = virtio ]; then
    # Receive on one queue pair per vCPU; the rest stay free for XDP_TX.
    ethtool -L eth0 combined 2
    ethtool -l eth0 | sed 's/^/SMTPGATE-VM /'
  fi
  ip addr add 192.0.2.1/24 dev eth0
  ip addr add 2001:db8::1/64 dev eth0 nodad
  ip link set eth0 up
  ip route add default via 192.0.2.2
  ip -6 route add default via 2001:db8::2
  # A listener on port 25 that accepts and closes each connection.
  nc -ll -p 25 -e /bin/true &
  # The command agent: one shell per connection, its output sent back. It is
  # reachable only from the namespace that holds the tap.
  echo "SMTPGATE-VM AGENT-READY"
  while :; do nc -l -p 7000 -e /bin/sh; done
fi

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
