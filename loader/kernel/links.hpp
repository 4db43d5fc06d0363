// The network interfaces as the gate must know them: where a device's
// packets start (an Ethernet header, or the IP header of a tunnel), and
// which devices, or UDP ports, decapsulate traffic that the gate on the NIC
// never sees whole (tunnels).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace smtpgate {

/// What the gate needs to know of a device, as the kernel reports it.
struct LinkFacts {
  unsigned type = 0;  // ARPHRD_*
  bool up = false;
  std::string driver;  // ethtool's, "" when the device has none
  /// ARPHRD_IPGRE only: the tunnel has a fixed unicast remote. Without one
  /// (point-to-multipoint, "NBMA" GRE, or a multicast remote) the device
  /// has a link-layer header, the outer IP header, and XDP on it sees the
  /// packet from there: outer IP, GRE, then the inner IP header.
  bool gre_fixed_remote = true;
};

/// The kernel's facts about ifname. Throws SystemError when it has no such
/// device.
LinkFacts read_link_facts(const std::string& ifname);

/// True when the program on a device with these facts sees packets from the
/// IP header on (IPIP, GRE with a fixed remote, SIT, ip6tnl, ip6gre,
/// WireGuard, tun, PPP), false for an Ethernet device. Throws InputError,
/// naming ifname, for any other link, and for a GRE device without a fixed
/// remote, whose packets start at the outer IP header.
bool link_without_ethernet(const LinkFacts& link, const std::string& ifname);
/// The same for the device ifname.
bool link_without_ethernet(const std::string& ifname);

/// The kind of tunnel a device with these facts is, "" for none: "ipip",
/// "gre", "gre without a fixed remote", "sit", "ip6tnl", "ip6gre",
/// "tun/wireguard", "ppp", "vxlan", "geneve", "tap", "gretap".
std::string tunnel_kind(const LinkFacts& link);

/// A device that hands on what it decapsulates, up and without the gate; or
/// a UDP port the stack decapsulates (FOU, GUE), which no device shows.
struct UnguardedTunnel {
  std::string ifname;     // the device, or "udp port N" for a FOU/GUE port
  std::string kind;       // tunnel_kind()'s, or "fou", "gue"
  bool guardable = true;  // attaching to ifname gates what it decapsulates
  uint16_t udp_port = 0;  // the FOU/GUE port, 0 for a device
};

/// A UDP port the kernel decapsulates (`ip fou add port N ...`).
struct FouPort {
  uint16_t port = 0;
  uint8_t family = 0;  // AF_INET or AF_INET6
  bool gue = false;    // GUE rather than direct FOU
};

/// The FOU/GUE receive ports of this network namespace (generic netlink
/// family "fou"); none when the kernel has no fou module loaded.
std::vector<FouPort> fou_ports();

/// The FOU_CMD_GET answers in a netlink receive buffer (any number of
/// messages); throws SystemError on a malformed or error message.
std::vector<FouPort> parse_fou_dump(const uint8_t* buf, size_t len);

/// The tunnel devices of this network namespace that are up and carry no
/// smtpgate program, and its FOU/GUE ports: a SYN they decapsulate reaches
/// port 25 ungated.
std::vector<UnguardedTunnel> unguarded_tunnels();

/// One line per unguarded tunnel, saying what to do.
std::string tunnel_advice(const UnguardedTunnel& t);

}  // namespace smtpgate
