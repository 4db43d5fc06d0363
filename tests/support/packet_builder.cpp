#include "packet_builder.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace sgtest {

namespace {
void put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = v >> 8;
  b[at + 1] = v & 0xff;
}
void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; i++) b[at + i] = (v >> (24 - 8 * i)) & 0xff;
}
std::vector<uint8_t> mac(const std::string& s) {
  std::vector<uint8_t> m(6);
  if (std::sscanf(s.c_str(), "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
    throw std::invalid_argument("bad MAC " + s);
  return m;
}
}  // namespace

uint16_t inet_checksum(const uint8_t* p, size_t n, uint32_t seed) {
  uint32_t sum = seed;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (n & 1) sum += p[n - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

Packet& Packet::eth(const std::string& dst, const std::string& src) {
  Layer l{Layer::Eth, {}, 0};
  auto d = mac(dst), s = mac(src);
  l.b.insert(l.b.end(), d.begin(), d.end());
  l.b.insert(l.b.end(), s.begin(), s.end());
  l.b.resize(14);
  layers_.push_back(l);
  return *this;
}

Packet& Packet::vlan(uint16_t vid, uint16_t tpid) {
  Layer l{Layer::Vlan, std::vector<uint8_t>(4), tpid};
  put16(l.b, 0, vid & 0x0fff);
  layers_.push_back(l);
  return *this;
}

Packet& Packet::ethertype(uint16_t type) {
  layers_.push_back(Layer{Layer::Ethertype, {}, type});
  return *this;
}

Packet& Packet::ipv4(const std::string& src, const std::string& dst, unsigned opt_len, uint16_t frag_offset, bool mf) {
  Layer l{Layer::Ip4, std::vector<uint8_t>(20 + opt_len), 0};
  l.b[0] = 0x40 | ((20 + opt_len) / 4);
  put16(l.b, 6, (mf ? 0x2000 : 0) | (frag_offset & 0x1fff));
  l.b[8] = 64;
  inet_pton(AF_INET, src.c_str(), &l.b[12]);
  inet_pton(AF_INET, dst.c_str(), &l.b[16]);
  for (unsigned i = 0; i < opt_len; i++) l.b[20 + i] = i + 1 == opt_len ? 0 : 1;  // NOPs, then EOL
  layers_.push_back(l);
  return *this;
}

Packet& Packet::ipv6(const std::string& src, const std::string& dst) {
  Layer l{Layer::Ip6, std::vector<uint8_t>(40), 0};
  l.b[0] = 0x60;
  l.b[7] = 64;
  inet_pton(AF_INET6, src.c_str(), &l.b[8]);
  inet_pton(AF_INET6, dst.c_str(), &l.b[24]);
  layers_.push_back(l);
  return *this;
}

Packet& Packet::ext(Ext type, unsigned len) {
  Layer l{Layer::Ext6, std::vector<uint8_t>(len), type};
  l.b[1] = type == AH ? len / 4 - 2 : len / 8 - 1;
  layers_.push_back(l);
  return *this;
}

Packet& Packet::frag6(uint16_t offset, bool mf) {
  Layer l{Layer::Frag6, std::vector<uint8_t>(8), FRAGMENT};
  put16(l.b, 2, (offset << 3) | (mf ? 1 : 0));
  put32(l.b, 4, 0x1234);
  layers_.push_back(l);
  return *this;
}

Packet& Packet::tcp(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq, unsigned payload, unsigned opt_len,
                    uint32_t ack) {
  Layer l{Layer::Tcp, std::vector<uint8_t>(20 + opt_len + payload), 0};
  put16(l.b, 0, sport);
  put16(l.b, 2, dport);
  put32(l.b, 4, seq);
  put32(l.b, 8, ack);
  l.b[12] = ((20 + opt_len) / 4) << 4;
  l.b[13] = flags;
  put16(l.b, 14, 64240);
  for (unsigned i = 0; i < opt_len; i++) l.b[20 + i] = 1;  // NOPs
  for (unsigned i = 0; i < payload; i++) l.b[20 + opt_len + i] = 'a' + i % 26;
  layers_.push_back(l);
  return *this;
}

Packet& Packet::udp(uint16_t sport, uint16_t dport) {
  Layer l{Layer::Udp, std::vector<uint8_t>(8), 0};
  put16(l.b, 0, sport);
  put16(l.b, 2, dport);
  put16(l.b, 4, 8);
  layers_.push_back(l);
  return *this;
}

Packet& Packet::icmp() {
  Layer l{Layer::Icmp, std::vector<uint8_t>(8), 0};
  l.b[0] = 8;
  layers_.push_back(l);
  return *this;
}

Packet& Packet::raw(std::vector<uint8_t> b, uint8_t proto) {
  layers_.push_back(Layer{Layer::Raw, std::move(b), proto});
  return *this;
}

std::vector<uint8_t> Packet::bytes() const {
  std::vector<Layer> ls = layers_;
  auto ethertype_of = [&](size_t i) -> uint16_t {
    if (i >= ls.size()) return 0;
    switch (ls[i].kind) {
      case Layer::Vlan: return ls[i].type;
      case Layer::Ethertype: return ls[i].type;
      case Layer::Ip4: return 0x0800;
      case Layer::Ip6: return 0x86dd;
      default: return 0;
    }
  };
  auto proto_of = [&](size_t i) -> uint8_t {
    if (i >= ls.size()) return 59;  // no next header
    switch (ls[i].kind) {
      case Layer::Ext6:
      case Layer::Frag6: return static_cast<uint8_t>(ls[i].type);
      case Layer::Tcp: return 6;
      case Layer::Udp: return 17;
      case Layer::Icmp: return 1;
      case Layer::Raw: return static_cast<uint8_t>(ls[i].type);
      default: return 253;
    }
  };
  auto rest = [&](size_t i) {
    size_t n = 0;
    for (size_t j = i; j < ls.size(); j++) n += ls[j].b.size();
    return n;
  };
  size_t ip_index = ls.size();
  for (size_t i = 0; i < ls.size(); i++) {
    Layer& l = ls[i];
    if (l.kind == Layer::Eth) put16(l.b, 12, ethertype_of(i + 1));
    if (l.kind == Layer::Vlan) put16(l.b, 2, ethertype_of(i + 1));
    if (l.kind == Layer::Ip4) {
      ip_index = i;
      l.b[9] = proto_of(i + 1);
      put16(l.b, 2, rest(i));
      put16(l.b, 10, 0);
      put16(l.b, 10, inet_checksum(l.b.data(), l.b.size()));
    }
    if (l.kind == Layer::Ip6) {
      ip_index = i;
      l.b[6] = proto_of(i + 1);
      put16(l.b, 4, rest(i + 1));
    }
    if (l.kind == Layer::Ext6 || l.kind == Layer::Frag6) l.b[0] = proto_of(i + 1);
  }
  // TCP checksum over the pseudo header, when the segment is whole.
  for (size_t i = 0; i < ls.size(); i++) {
    if (ls[i].kind != Layer::Tcp || ip_index >= ls.size()) continue;
    const Layer& ip = ls[ip_index];
    std::vector<uint8_t> pseudo;
    size_t len = ls[i].b.size();
    if (ip.kind == Layer::Ip4) {
      pseudo.insert(pseudo.end(), ip.b.begin() + 12, ip.b.begin() + 20);
      pseudo.insert(pseudo.end(), {0, 6, uint8_t(len >> 8), uint8_t(len)});
    } else {
      pseudo.insert(pseudo.end(), ip.b.begin() + 8, ip.b.begin() + 40);
      pseudo.insert(pseudo.end(), {0, 0, uint8_t(len >> 8), uint8_t(len), 0, 0, 0, 6});
    }
    put16(ls[i].b, 16, 0);
    std::vector<uint8_t> all = pseudo;
    all.insert(all.end(), ls[i].b.begin(), ls[i].b.end());
    put16(ls[i].b, 16, inet_checksum(all.data(), all.size()));
  }
  std::vector<uint8_t> out;
  for (const auto& l : ls) out.insert(out.end(), l.b.begin(), l.b.end());
  return out;
}

bool tcp_checksum_ok(const std::vector<uint8_t>& f, size_t l2) {
  bool v4 = (f[l2] >> 4) == 4;
  size_t ip_len = v4 ? 20 : 40;
  size_t tcp_at = l2 + ip_len;
  if (f.size() < tcp_at + 20) return false;
  // The segment is as long as the IP header says, as a receiver reads it:
  // bytes past it are link padding.
  size_t len = v4 ? ((size_t{f[l2 + 2]} << 8 | f[l2 + 3]) - ip_len) : (size_t{f[l2 + 4]} << 8 | f[l2 + 5]);
  if (len < 20 || f.size() < tcp_at + len) return false;
  std::vector<uint8_t> all;
  if (v4) {
    all.insert(all.end(), f.begin() + l2 + 12, f.begin() + l2 + 20);
    all.insert(all.end(), {0, 6, uint8_t(len >> 8), uint8_t(len)});
  } else {
    all.insert(all.end(), f.begin() + l2 + 8, f.begin() + l2 + 40);
    all.insert(all.end(), {0, 0, uint8_t(len >> 8), uint8_t(len), 0, 0, 0, 6});
  }
  all.insert(all.end(), f.begin() + static_cast<long>(tcp_at), f.begin() + static_cast<long>(tcp_at + len));
  return inet_checksum(all.data(), all.size()) == 0;
}

}  // namespace sgtest
