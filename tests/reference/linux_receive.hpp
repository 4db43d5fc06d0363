// What Linux's receive path makes of a frame, as far as a TCP listener on a
// guarded port is concerned: would it hand the listener a connection-opening
// SYN, and from which source? Written from the kernel's receive path
// (net/core/dev.c, net/ipv4/ip_input.c, net/ipv6/ip6_input.c and
// reassembly.c, tcp_ipv4.c, tcp_ipv6.c, tcp_input.c), not from the gate's
// parser: the differential test holds the gate's verdicts against it, so a
// frame Linux delivers and the gate does not judge is named a bypass.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace sgref {

struct LinuxView {
  enum class Fate : uint8_t {
    Dropped,        // the stack drops it before any socket sees it
    Other,          // delivered (or held), but never a connection-opening SYN to a guarded port
    GuardedSyn,     // a SYN, no ACK, RST or FIN, to a guarded port, handed to the listener
    MayGuardedSyn,  // a first fragment held for reassembly that may complete into such a SYN
  };
  Fate fate = Fate::Dropped;
  int family = 0;                 // of the IP header, when there is one
  std::array<uint8_t, 16> src{};  // the true source (IPv4 in the first 4 bytes)
  unsigned tags = 0;              // VLAN tags stripped
  std::string why;                // for messages: the step that decided

  bool guarded_syn() const { return fate == Fate::GuardedSyn || fate == Fate::MayGuardedSyn; }
};

/// Linux's view of an Ethernet frame on the gateway's NIC, for a listener on
/// `ports`. Assumed of the gateway: it may own any unicast address and carry
/// a VLAN device for any VLAN id it can (1 to 4094); IPsec (AH) may be set up
/// with any peer. Assumed of the sender: checksums and IPv6 option TLVs are
/// well formed (an attacker gets them right; the generator does not bother).
LinuxView linux_receive(const std::vector<uint8_t>& frame, const std::vector<uint16_t>& ports);

}  // namespace sgref
