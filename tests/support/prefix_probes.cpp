#include "prefix_probes.hpp"

namespace sgtest {

using smtpgate::Cidr;
using smtpgate::Family;

std::vector<Cidr> probes(std::mt19937_64& rng, const std::vector<smtpgate::TrieEntry>& entries) {
  std::vector<Cidr> out;
  auto host = [](const Cidr& c) { return Cidr::from_bytes(c.family(), c.bytes().data(), c.max_len()); };
  auto step = [](Cidr a, int delta) {
    auto b = a.bytes();
    int i = a.family() == Family::V4 ? 3 : 15;
    for (; i >= 0; i--) {
      int v = b[i] + delta;
      b[i] = uint8_t(v);
      if (v >= 0 && v <= 255) break;
    }
    return Cidr::from_bytes(a.family(), b.data(), a.max_len());
  };
  for (const auto& e : entries) {
    Cidr first = host(e.prefix), last = e.prefix.last();
    for (Cidr a : {first, last, step(first, -1), step(last, 1)}) out.push_back(a);
    auto b = e.prefix.bytes();
    for (size_t i = e.prefix.family() == Family::V4 ? 2 : 4; i < 16; i++) b[i] = uint8_t(rng());
    out.push_back(Cidr::from_bytes(e.prefix.family(), b.data(), e.prefix.max_len()));
  }
  return out;
}

Packet syn_from(const Cidr& a) {
  Packet p;
  p.eth();
  if (a.family() == Family::V4)
    p.ipv4(a.address_str(), "192.0.2.1");
  else
    p.ipv6(a.address_str(), "2001:db8::1");
  p.tcp(40000, 25, SYN);
  return p;
}

}  // namespace sgtest
