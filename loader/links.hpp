// The network interfaces as the gate must know them: where a device's
// packets start (an Ethernet header, or the IP header of a tunnel), and
// which devices decapsulate traffic that the gate on the NIC never sees
// whole (tunnels).
#pragma once

#include <string>
#include <vector>

namespace smtpgate {

/// True when the program on ifname sees packets from the IP header on (IPIP,
/// GRE, SIT, ip6tnl, ip6gre, WireGuard, tun), false for an Ethernet device.
/// Throws InputError for any other link type, naming it.
bool link_without_ethernet(const std::string& ifname);

/// A device that hands on what it decapsulates, up and without the gate.
struct UnguardedTunnel {
  std::string ifname;
  std::string kind;  // "ipip", "gre", "sit", "ip6tnl", "ip6gre", "vxlan", "geneve", "tun/wireguard", "tap"
};

/// The tunnel devices of this network namespace that are up and carry no
/// smtpgate program: a SYN they decapsulate reaches port 25 ungated.
std::vector<UnguardedTunnel> unguarded_tunnels();

/// One line per unguarded tunnel, saying what to do.
std::string tunnel_advice(const UnguardedTunnel& t);

}  // namespace smtpgate
