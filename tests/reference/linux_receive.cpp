#include "linux_receive.hpp"

#include <algorithm>

namespace sgref {

namespace {

using Fate = LinuxView::Fate;

constexpr uint16_t kDot1Q = 0x8100, kDot1ad = 0x88A8, kIPv4 = 0x0800, kIPv6 = 0x86DD;
constexpr uint8_t kTcp = 6, kHop = 0, kRouting = 43, kFragment = 44, kAuth = 51, kDestOpts = 60, kNoNext = 59;

struct Frame {
  const std::vector<uint8_t>& f;
  size_t end;  // after trimming to the IP length
  bool has(size_t at, size_t n) const { return at <= end && n <= end - at; }
  uint8_t u8(size_t at) const { return f[at]; }
  uint16_t u16(size_t at) const { return static_cast<uint16_t>(f[at] << 8 | f[at + 1]); }
};

LinuxView verdict(LinuxView v, Fate fate, const char* why) {
  v.fate = fate;
  v.why = why;
  return v;
}

// tcp_v4_rcv / tcp_v6_rcv, then the listener (tcp_rcv_state_process, LISTEN):
// a whole header (doff >= 5, doff * 4 bytes present), then ACK goes to the
// reset path, RST and SYN+FIN are discarded, SYN opens a connection.
LinuxView tcp_segment(LinuxView v, const Frame& b, size_t at, const std::vector<uint16_t>& ports) {
  if (!b.has(at, 20)) return verdict(v, Fate::Dropped, "TCP header cut");
  unsigned doff = b.u8(at + 12) >> 4;
  if (doff < 5 || !b.has(at, doff * 4u)) return verdict(v, Fate::Dropped, "TCP data offset");
  uint8_t flags = b.u8(at + 13);
  bool opening = (flags & 0x02) && !(flags & (0x10 | 0x04 | 0x01));
  bool guarded = std::find(ports.begin(), ports.end(), b.u16(at + 2)) != ports.end();
  return verdict(v, opening && guarded ? Fate::GuardedSyn : Fate::Other, "TCP");
}

// A first fragment held for reassembly: what its bytes already say (later
// fragments may not overlap them: Linux drops overlapping fragments).
LinuxView first_fragment(LinuxView v, const Frame& b, size_t at, const std::vector<uint16_t>& ports) {
  if (!b.has(at, 4)) return verdict(v, Fate::MayGuardedSyn, "first fragment without its port");
  if (std::find(ports.begin(), ports.end(), b.u16(at + 2)) == ports.end())
    return verdict(v, Fate::Other, "first fragment to another port");
  if (!b.has(at, 14)) return verdict(v, Fate::MayGuardedSyn, "first fragment without its flags");
  uint8_t flags = b.u8(at + 13);
  bool opening = (flags & 0x02) && !(flags & (0x10 | 0x04 | 0x01));
  return verdict(v, opening ? Fate::MayGuardedSyn : Fate::Other, "first fragment");
}

bool v4_martian_source(const uint8_t* a) { return a[0] == 0 || a[0] == 127 || a[0] >= 224; }
bool v4_not_unicast(const uint8_t* a) { return a[0] == 0 || a[0] == 127 || a[0] >= 224; }

// ip_rcv_core, ip_route_input (martians), ip_local_deliver (reassembly).
LinuxView ipv4(LinuxView v, const std::vector<uint8_t>& f, size_t at, const std::vector<uint16_t>& ports) {
  Frame b{f, f.size()};
  if (!b.has(at, 20)) return verdict(v, Fate::Dropped, "IPv4 header cut");
  unsigned ihl = (b.u8(at) & 15) * 4u;
  if (b.u8(at) >> 4 != 4 || ihl < 20 || !b.has(at, ihl)) return verdict(v, Fate::Dropped, "IPv4 version or IHL");
  unsigned tot = b.u16(at + 2);
  if (at + tot > f.size() || tot < ihl) return verdict(v, Fate::Dropped, "IPv4 total length");
  b.end = at + tot;  // pskb_trim_rcsum
  v.family = 4;
  std::copy_n(f.begin() + static_cast<long>(at + 12), 4, v.src.begin());
  if (v4_martian_source(&f[at + 12])) return verdict(v, Fate::Dropped, "martian source");
  if (b.u8(at + 9) != kTcp) return verdict(v, Fate::Other, "not TCP");
  // tcp_v4_rcv and the listener take only unicast to a local address.
  if (v4_not_unicast(&f[at + 16])) return verdict(v, Fate::Dropped, "not unicast");
  uint16_t frag = b.u16(at + 6);
  if (frag & 0x1fff) return verdict(v, Fate::Other, "later fragment: held");
  if (frag & 0x2000) {
    // ip_frag_queue: a fragment with more to come keeps whole 8-byte
    // blocks only, and one that keeps none is discarded.
    size_t data = (tot - ihl) & ~size_t{7};
    if (data == 0) return verdict(v, Fate::Dropped, "first fragment under 8 bytes");
    b.end = at + ihl + data;
    return first_fragment(v, b, at + ihl, ports);
  }
  return tcp_segment(v, b, at + ihl, ports);
}

bool v6_loopback(const uint8_t* a) {
  return std::all_of(a, a + 15, [](uint8_t x) { return x == 0; }) && a[15] == 1;
}
bool v6_unspecified(const uint8_t* a) {
  return std::all_of(a, a + 16, [](uint8_t x) { return x == 0; });
}
bool v6_v4mapped(const uint8_t* a) {
  return std::all_of(a, a + 10, [](uint8_t x) { return x == 0; }) && a[10] == 0xff && a[11] == 0xff;
}

// ipv6_rcv, the extension headers as ip6_protocol_deliver_rcu walks them
// (hop-by-hop first only; a routing header with segments left forwards;
// reassembly with RFC 8200's first-fragment rule as ipv6frag_thdr_truncated
// applies it; a second fragment header is refused), tcp_v6_rcv.
LinuxView ipv6(LinuxView v, const std::vector<uint8_t>& f, size_t at, const std::vector<uint16_t>& ports) {
  Frame b{f, f.size()};
  if (!b.has(at, 40)) return verdict(v, Fate::Dropped, "IPv6 header cut");
  if (b.u8(at) >> 4 != 6) return verdict(v, Fate::Dropped, "IPv6 version");
  unsigned plen = b.u16(at + 4);
  uint8_t next = b.u8(at + 6);
  if (plen == 0 && next == kHop) return verdict(v, Fate::Dropped, "jumbogram on a normal link");
  if (at + 40 + plen > f.size()) return verdict(v, Fate::Dropped, "IPv6 payload length");
  b.end = at + 40 + plen;
  v.family = 6;
  const uint8_t* src = &f[at + 8];
  const uint8_t* dst = &f[at + 24];
  std::copy_n(src, 16, v.src.begin());
  if (src[0] == 0xff || v6_loopback(src) || v6_loopback(dst)) return verdict(v, Fate::Dropped, "martian");
  size_t pos = at + 40;
  bool fragmented = false;
  for (bool first = true;; first = false) {
    if (next == kTcp) break;
    if (next != kHop && next != kRouting && next != kDestOpts && next != kAuth && next != kFragment)
      return verdict(v, Fate::Other, "not TCP");
    if (next == kHop && !first) return verdict(v, Fate::Dropped, "hop-by-hop not first");
    if (!b.has(pos, 2)) return verdict(v, Fate::Dropped, "extension header cut");
    if (next == kFragment) {
      if (fragmented) return verdict(v, Fate::Dropped, "second fragment header");
      if (!b.has(pos, 8)) return verdict(v, Fate::Dropped, "fragment header cut");
      uint16_t fo = b.u16(pos + 2);
      fragmented = true;
      if (fo >> 3) return verdict(v, Fate::Other, "later fragment: held");
      if (fo & 1) {
        // ip6_frag_queue: a fragment with more to come is a whole number
        // of 8-byte blocks, else it is refused.
        size_t data = b.end - (pos + 8);
        if (data == 0 || data % 8) return verdict(v, Fate::Dropped, "first fragment not in 8-byte blocks");
        // ipv6frag_thdr_truncated: walk on as ipv6_skip_exthdr does; a
        // chain it cannot read counts as whole, one read to TCP must hold
        // the TCP header.
        uint8_t n = b.u8(pos);
        size_t p = pos + 8;
        bool second = false;  // reassembled, a second fragment header is refused
        while (n == kHop || n == kRouting || n == kDestOpts || n == kAuth || n == kFragment) {
          auto beyond = [&] {
            return second ? verdict(v, Fate::Dropped, "second fragment header")
                          : verdict(v, Fate::MayGuardedSyn, "first fragment, chain beyond it");
          };
          if (!b.has(p, 2)) return beyond();
          if (n == kFragment) {
            second = true;
            if (!b.has(p, 4)) return beyond();
            if (b.u16(p + 2) & ~7u) break;
          }
          size_t len = n == kFragment ? 8 : n == kAuth ? (b.u8(p + 1) + 2u) * 4 : (b.u8(p + 1) + 1u) * 8;
          n = b.u8(p);
          p += len;
        }
        if (n == kTcp && !b.has(p, 20)) return verdict(v, Fate::Dropped, "first fragment without its TCP header");
        if (second) return verdict(v, Fate::Dropped, "second fragment header");
        if (n != kTcp) return verdict(v, n == kNoNext ? Fate::Dropped : Fate::Other, "first fragment, not TCP");
        if (dst[0] == 0xff || v6_unspecified(dst) || v6_v4mapped(src)) return verdict(v, Fate::Dropped, "not unicast");
        return first_fragment(v, b, p, ports);
      }
      next = b.u8(pos);
      pos += 8;
      continue;
    }
    if (next == kRouting && b.has(pos, 4) && b.u8(pos + 3) != 0) return verdict(v, Fate::Other, "routed on");
    size_t len = next == kAuth ? (b.u8(pos + 1) + 2u) * 4 : (b.u8(pos + 1) + 1u) * 8;
    if (!b.has(pos, len)) return verdict(v, Fate::Dropped, "extension header cut");
    next = b.u8(pos);
    pos += len;
  }
  if (dst[0] == 0xff || v6_unspecified(dst)) return verdict(v, Fate::Dropped, "not unicast");
  if (v6_v4mapped(src)) return verdict(v, Fate::Dropped, "v4-mapped source");
  return tcp_segment(v, b, pos, ports);
}

}  // namespace

LinuxView linux_receive(const std::vector<uint8_t>& f, const std::vector<uint16_t>& ports) {
  LinuxView v;
  if (f.size() < 14) return verdict(v, Fate::Dropped, "runt");
  // eth_type_trans: a group destination is not PACKET_HOST, and TCP takes
  // only PACKET_HOST.
  bool to_host = !(f[0] & 1);
  size_t at = 14;
  uint16_t type = static_cast<uint16_t>(f[12] << 8 | f[13]);
  if (type < 0x0600) return verdict(v, Fate::Other, "802.3 length, not an ethertype");
  // __netif_receive_skb_core: eth_type_vlan() tags are stripped one by one,
  // any number of them; VLAN id 0 by the core itself, any other by a VLAN
  // device for it (4095 can have none: PACKET_OTHERHOST, dropped by IP).
  while (type == kDot1Q || type == kDot1ad) {
    if (at + 4 > f.size()) return verdict(v, Fate::Dropped, "tag cut");
    if ((static_cast<unsigned>(f[at] << 8 | f[at + 1]) & 0x0fff) == 0x0fff)
      return verdict(v, Fate::Dropped, "VLAN id 4095");
    type = static_cast<uint16_t>(f[at + 2] << 8 | f[at + 3]);
    at += 4;
    v.tags++;
  }
  LinuxView r = type == kIPv4   ? ipv4(v, f, at, ports)
                : type == kIPv6 ? ipv6(v, f, at, ports)
                                : verdict(v, Fate::Other, "not IP");
  if (!to_host && r.guarded_syn()) return verdict(r, Fate::Dropped, "not sent to this host");
  return r;
}

}  // namespace sgref
