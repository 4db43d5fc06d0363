// Packets as data, Katran style:
//   Packet().eth().vlan(100).ipv4("40.92.0.10", "192.0.2.1").tcp(40000, 25, SYN)
// Lengths, next-header fields and checksums are filled in by bytes().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sgtest {

enum TcpFlags : uint8_t {
  FIN = 0x01,
  SYN = 0x02,
  RST = 0x04,
  PSH = 0x08,
  ACK = 0x10,
  URG = 0x20,
  ECE = 0x40,
  CWR = 0x80
};

// IPv6 extension header numbers.
enum Ext : uint8_t { HOP = 0, ROUTING = 43, FRAGMENT = 44, AH = 51, DSTOPTS = 60 };

class Packet {
 public:
  Packet& eth(const std::string& dst = "02:00:00:00:00:01", const std::string& src = "02:00:00:00:00:02");
  /// A VLAN tag (tpid 0x8100 for 802.1Q, 0x88a8 for 802.1ad).
  Packet& vlan(uint16_t vid, uint16_t tpid = 0x8100);
  /// Raw ethertype for what follows (e.g. ARP 0x0806); default is derived.
  Packet& ethertype(uint16_t type);
  /// IPv4; opt_len bytes of options (multiple of 4, NOPs then EOL);
  /// frag_offset in 8-byte units.
  Packet& ipv4(const std::string& src, const std::string& dst, unsigned opt_len = 0, uint16_t frag_offset = 0,
               bool more_fragments = false);
  Packet& ipv6(const std::string& src, const std::string& dst);
  /// An IPv6 extension header (HOP, ROUTING, DSTOPTS: len a multiple of 8;
  /// AH: len a multiple of 4, at least 12).
  Packet& ext(Ext type, unsigned len = 8);
  /// An IPv6 fragment header; offset in 8-byte units.
  Packet& frag6(uint16_t offset, bool more_fragments);
  Packet& tcp(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq = 1000, unsigned payload = 0,
              unsigned opt_len = 0, uint32_t ack = 0);
  Packet& udp(uint16_t sport, uint16_t dport);
  Packet& icmp();
  /// Raw bytes as the last layer; proto is what the IP header announces for
  /// them (6: a cut TCP header in a fragment).
  Packet& raw(std::vector<uint8_t> b, uint8_t proto = 253);

  /// The frame, all fields filled in.
  std::vector<uint8_t> bytes() const;

 private:
  struct Layer {
    enum Kind { Eth, Vlan, Ethertype, Ip4, Ip6, Ext6, Frag6, Tcp, Udp, Icmp, Raw } kind;
    std::vector<uint8_t> b;
    uint16_t type = 0;  // Vlan tpid / Ethertype / Ext type
  };
  std::vector<Layer> layers_;
};

/// RFC 1071 checksum over bytes (as the test's independent check).
uint16_t inet_checksum(const uint8_t* p, size_t n, uint32_t seed = 0);
/// True when the TCP checksum of an IPv4 or IPv6 frame (after l2_len bytes of
/// L2 header, no IPv4 options, no extension headers) verifies over the
/// segment the IP header's length gives (bytes past it are link padding).
bool tcp_checksum_ok(const std::vector<uint8_t>& frame, size_t l2_len);

}  // namespace sgtest
