#include "packet_gen.hpp"

#include <algorithm>
#include <set>
#include <tuple>

namespace sgref {

namespace {

void put16(std::vector<uint8_t>& v, size_t at, uint16_t x) {
  v[at] = x >> 8;
  v[at + 1] = x & 0xff;
}

void clear_host_bits(std::array<uint8_t, 16>& a, unsigned len, unsigned bits) {
  for (unsigned bit = len; bit < bits; bit++) a[bit / 8] &= static_cast<uint8_t>(~(0x80 >> (bit % 8)));
}

// Adds (+1) or subtracts (-1) one from a big-endian address of `bytes` bytes.
void step(std::array<uint8_t, 16>& a, size_t bytes, int delta) {
  for (size_t i = bytes; i-- > 0;) {
    if (delta > 0) {
      if (++a[i] != 0) return;
    } else {
      if (a[i]-- != 0) return;
    }
  }
}

const uint8_t kExtTypes[] = {0, 43, 60, 51, 44};

}  // namespace

GateSetup Generator::setup() {
  GateSetup s;
  s.refusal = static_cast<Refusal>(below(3));
  std::set<uint16_t> ports;
  if (chance(90)) ports.insert(25);
  static const uint16_t common[] = {587, 465, 2525, 80, 443, 26};
  unsigned want = 1 + below(chance(70) ? 2 : 8);
  while (ports.size() < want) ports.insert(chance(50) ? common[below(6)] : static_cast<uint16_t>(1 + below(65535)));
  s.ports.assign(ports.begin(), ports.end());
  std::shuffle(s.ports.begin(), s.ports.end(), rng_);

  std::set<std::tuple<int, std::array<uint8_t, 16>, unsigned>> seen;
  uint32_t next_rule = 1 + static_cast<uint32_t>(below(60000));
  for (int family : {4, 6}) {
    unsigned bits = family == 4 ? 32 : 128;
    unsigned clusters = below(6);
    for (unsigned c = 0; c < clusters; c++) {
      std::array<uint8_t, 16> base{};
      for (unsigned i = 0; i < bits / 8; i++) base[i] = static_cast<uint8_t>(rng_());
      // A chain of nested prefixes of the same base: each deeper one can
      // override the one around it.
      std::vector<unsigned> lens;
      unsigned depth = 1 + below(5);
      for (unsigned d = 0; d < depth; d++) {
        unsigned len = chance(10) ? (chance(50) ? 0 : bits) : static_cast<unsigned>(below(bits + 1));
        lens.push_back(len);
      }
      for (unsigned len : lens) {
        Prefix p;
        p.family = family;
        p.addr = base;
        // Siblings as well as nesting: sometimes flip the bit after the
        // previous length.
        if (len > 0 && chance(20)) p.addr[(len - 1) / 8] ^= static_cast<uint8_t>(0x80 >> ((len - 1) % 8));
        clear_host_bits(p.addr, len, 128);
        p.len = len;
        if (!seen.insert({family, p.addr, len}).second) continue;
        unsigned k = below(4);
        p.kind = k < 2 ? Kind::Admit : k == 2 ? Kind::Deny : Kind::Watch;
        p.rule_id = next_rule;
        next_rule = 1 + (next_rule + 1 + static_cast<uint32_t>(below(50))) % 65000;
        s.prefixes.push_back(p);
      }
    }
  }
  // Every third setup goes through the loader's compile, with some prefixes
  // listed twice, of another kind (ties: deny beats admit beats watch).
  if (chance(33)) {
    s.compiled = true;
    size_t n = s.prefixes.size();
    for (size_t i = 0; i < n; i++)
      if (chance(30)) {
        Prefix twin = s.prefixes[i];
        twin.kind = static_cast<Kind>((static_cast<unsigned>(twin.kind) + 1 + below(2)) % 3);
        s.prefixes.push_back(twin);
      }
  }
  std::shuffle(s.prefixes.begin(), s.prefixes.end(), rng_);
  // Rule ids are distinct per publish (a compile assigns its own).
  std::set<uint32_t> ids;
  for (auto& p : s.prefixes)
    while (!ids.insert(p.rule_id).second) p.rule_id = 1 + (p.rule_id % 65000);
  return s;
}

std::array<uint8_t, 16> Generator::source(const GateSetup& s, int family) {
  size_t bytes = family == 4 ? 4 : 16;
  std::array<uint8_t, 16> a{};
  std::vector<const Prefix*> mine;
  for (const auto& p : s.prefixes)
    if (p.family == family) mine.push_back(&p);
  for (size_t i = 0; i < bytes; i++) a[i] = static_cast<uint8_t>(rng_());
  if (mine.empty() || chance(20)) return a;
  const Prefix& p = *mine[below(mine.size())];
  unsigned bits = family == 4 ? 32 : 128;
  // Random host bits under the prefix.
  for (unsigned bit = 0; bit < p.len; bit++) {
    uint8_t m = 0x80 >> (bit % 8);
    a[bit / 8] = static_cast<uint8_t>((a[bit / 8] & ~m) | (p.addr[bit / 8] & m));
  }
  switch (below(6)) {
    case 0:  // first address
      clear_host_bits(a, p.len, bits);
      break;
    case 1:  // last address
      for (unsigned bit = p.len; bit < bits; bit++) a[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
      break;
    case 2:  // just before the first
      clear_host_bits(a, p.len, bits);
      step(a, bytes, -1);
      break;
    case 3:  // just after the last
      for (unsigned bit = p.len; bit < bits; bit++) a[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
      step(a, bytes, +1);
      break;
    default:  // anywhere inside
      break;
  }
  return a;
}

std::vector<uint8_t> Generator::tcp_segment(const GateSetup& s, unsigned cut) {
  unsigned opt = chance(70) ? 0 : 4 * static_cast<unsigned>(below(11));
  unsigned payload = chance(80) ? 0 : static_cast<unsigned>(below(80));
  std::vector<uint8_t> t(20 + opt + payload);
  put16(t, 0, static_cast<uint16_t>(rng_()));
  uint16_t dport = chance(65) ? s.ports[below(s.ports.size())] : chance(20) ? 25 : static_cast<uint16_t>(rng_());
  put16(t, 2, dport);
  for (int i = 4; i < 12; i++) t[i] = static_cast<uint8_t>(rng_());
  unsigned doff = (20 + opt) / 4;
  if (chance(5)) doff = static_cast<unsigned>(below(16));
  t[12] = static_cast<uint8_t>(doff << 4 | (chance(5) ? below(16) : 0));
  switch (below(10)) {
    case 0:
    case 1:
    case 2:
    case 3: t[13] = 0x02; break;                                           // SYN
    case 4: t[13] = static_cast<uint8_t>((rng_() | 0x02) & ~0x10); break;  // SYN and odd flags, no ACK
    case 5: t[13] = 0x12; break;                                           // SYN+ACK
    default: t[13] = static_cast<uint8_t>(rng_()); break;
  }
  for (size_t i = 14; i < t.size(); i++) t[i] = static_cast<uint8_t>(rng_());
  if (cut < t.size()) t.resize(cut);
  return t;
}

std::vector<uint8_t> Generator::l4(const GateSetup& s, uint8_t proto) {
  if (proto == 6) return tcp_segment(s, chance(5) ? static_cast<unsigned>(below(24)) : 100000);
  std::vector<uint8_t> b(below(48));
  for (auto& x : b) x = static_cast<uint8_t>(rng_());
  if (b.size() >= 4 && chance(50)) put16(b, 2, 25);  // UDP/SCTP to port 25 is not a SYN either
  return b;
}

std::vector<uint8_t> Generator::packet(const GateSetup& s) {
  std::vector<uint8_t> f(12);
  for (auto& x : f) x = static_cast<uint8_t>(rng_());
  f[0] &= 0xfe;  // unicast destination and source, mostly
  if (chance(3)) f[0] |= 1;
  f[6] &= 0xfe;
  if (chance(3)) f[6] |= 1;
  // Tag stacks of 0 to 10: the walk limit and past it, priority tags (VLAN
  // id 0) often, and ethertypes in tag position that Linux does not strip.
  unsigned tags = chance(45) ? 0 : chance(30) ? 1 : chance(30) ? 2 : static_cast<unsigned>(below(11));
  for (unsigned i = 0; i < tags; i++) {
    static const uint16_t not_tags[] = {0x9100, 0x9200, 0x9300, 0x88e7, 0x8847};
    uint16_t tpid = chance(45)   ? 0x8100
                    : chance(85) ? 0x88a8
                    : chance(70) ? not_tags[below(5)]
                                 : static_cast<uint16_t>(rng_());
    uint16_t tci = chance(50) ? static_cast<uint16_t>(rng_() & 0xe000) : static_cast<uint16_t>(rng_());
    f.push_back(tpid >> 8);
    f.push_back(tpid & 0xff);
    f.push_back(static_cast<uint8_t>(tci >> 8));
    f.push_back(static_cast<uint8_t>(tci));
  }
  unsigned which = below(100);
  uint16_t type = which < 46 ? 0x0800 : which < 92 ? 0x86dd : which < 95 ? 0x0806 : static_cast<uint16_t>(rng_());
  f.push_back(type >> 8);
  f.push_back(type & 0xff);

  uint8_t proto = chance(88) ? 6 : chance(40) ? 17 : chance(50) ? 1 : static_cast<uint8_t>(rng_());
  if (type == 0x0800) {
    unsigned ihl = chance(70) ? 5 : 5 + static_cast<unsigned>(below(11));
    std::vector<uint8_t> ip(ihl * 4);
    ip[0] = static_cast<uint8_t>(0x40 | ihl);
    if (chance(2)) ip[0] = static_cast<uint8_t>(rng_());
    ip[1] = static_cast<uint8_t>(rng_());
    put16(ip, 4, static_cast<uint16_t>(rng_()));
    uint16_t frag = 0;
    switch (below(10)) {
      case 0: frag = 0x2000; break;                                                                // first fragment
      case 1: frag = static_cast<uint16_t>(1 + below(0x1fff)) | (chance(50) ? 0x2000 : 0); break;  // later
      case 2: frag = static_cast<uint16_t>(rng_()); break;
      default: frag = chance(50) ? 0x4000 : 0; break;  // DF or nothing
    }
    put16(ip, 6, frag);
    ip[8] = static_cast<uint8_t>(1 + below(255));
    ip[9] = proto;
    auto src = source(s, 4);
    std::copy_n(src.begin(), 4, ip.begin() + 12);
    for (int i = 16; i < 20; i++) ip[i] = static_cast<uint8_t>(rng_());
    // Now and then a special-purpose address on either side (no reset).
    static const uint8_t special4[][4] = {{0, 0, 0, 0},   {255, 255, 255, 255}, {127, 0, 0, 1}, {224, 0, 0, 1},
                                          {240, 1, 2, 3}, {0, 9, 9, 9},         {10, 0, 0, 1},  {223, 255, 255, 255}};
    if (chance(4)) std::copy_n(special4[below(8)], 4, ip.begin() + 16);
    if (chance(2)) std::copy_n(special4[below(8)], 4, ip.begin() + 12);
    for (size_t i = 20; i < ip.size(); i++) ip[i] = static_cast<uint8_t>(rng_());
    std::vector<uint8_t> up = l4(s, proto);
    // First fragments are often cut inside the TCP header (tiny fragments).
    if ((frag & 0x3fff) == 0x2000 && chance(40)) up.resize(below(21));
    uint16_t tot = static_cast<uint16_t>(ip.size() + up.size());
    put16(ip, 2, chance(5) ? static_cast<uint16_t>(rng_()) : tot);
    f.insert(f.end(), ip.begin(), ip.end());
    f.insert(f.end(), up.begin(), up.end());
  } else if (type == 0x86dd) {
    std::vector<uint8_t> ip(40);
    ip[0] = chance(2) ? static_cast<uint8_t>(rng_()) : 0x60;
    ip[1] = static_cast<uint8_t>(rng_() & 0x0f);
    ip[7] = 64;
    auto src = source(s, 6);
    std::copy_n(src.begin(), 16, ip.begin() + 8);
    for (int i = 24; i < 40; i++) ip[i] = static_cast<uint8_t>(rng_());
    auto special6 = [&](size_t at) {
      std::fill(ip.begin() + static_cast<long>(at), ip.begin() + static_cast<long>(at + 16), 0);
      switch (below(5)) {
        case 0: break;                   // ::
        case 1: ip[at + 15] = 1; break;  // ::1
        case 2:
          ip[at] = 0xff;
          ip[at + 1] = 2;
          ip[at + 15] = 1;
          break;  // ff02::1
        case 3:
          ip[at + 10] = ip[at + 11] = 0xff;
          ip[at + 12] = 192;
          ip[at + 15] = 1;
          break;                          // ::ffff:192.0.0.1
        default: ip[at + 15] = 2; break;  // ::2, an ordinary address
      }
    };
    if (chance(4)) special6(24);
    if (chance(2)) special6(8);
    unsigned chain = chance(55)   ? 0
                     : chance(70) ? 1 + static_cast<unsigned>(below(4))
                                  : 4 + static_cast<unsigned>(below(8));
    std::vector<uint8_t> exts;
    std::vector<size_t> next_at = {6};  // where each header's "next header" byte is, in ip+exts
    std::vector<uint8_t> types;
    bool first_fragment = false;
    for (unsigned i = 0; i < chain; i++) {
      uint8_t t = kExtTypes[below(5)];
      std::vector<uint8_t> h;
      if (t == 44) {
        h.resize(8);
        // First, atomic, a later one at the smallest offsets, or anything.
        uint16_t fo = chance(50)   ? (chance(60) ? 1 : 0)
                      : chance(50) ? static_cast<uint16_t>((1 + below(3)) << 3 | below(2))
                                   : static_cast<uint16_t>(rng_());
        put16(h, 2, fo);
        first_fragment = (fo >> 3) == 0 && (fo & 1);
      } else if (t == 51) {
        unsigned units = 1 + static_cast<unsigned>(below(6));  // (units + 2) * 4 bytes
        h.resize((units + 2) * 4);
        h[1] = static_cast<uint8_t>(units);
      } else {
        unsigned units = static_cast<unsigned>(below(4));
        h.resize((units + 1) * 8);
        h[1] = static_cast<uint8_t>(units);
      }
      for (size_t k = 2; k < h.size(); k++)
        if (t != 44 || k >= 4) h[k] = static_cast<uint8_t>(rng_());
      if (chance(3)) h[1] = static_cast<uint8_t>(rng_());  // a length that lies
      types.push_back(t);
      next_at.push_back(40 + exts.size());
      exts.insert(exts.end(), h.begin(), h.end());
    }
    types.push_back(chance(90) ? proto : chance(50) ? 59 : 58);
    std::vector<uint8_t> up = l4(s, types.back());
    if (first_fragment && chance(40)) up.resize(std::min(up.size(), static_cast<size_t>(below(21))));
    ip.insert(ip.end(), exts.begin(), exts.end());
    for (size_t i = 0; i < types.size(); i++) ip[next_at[i]] = types[i];
    uint16_t plen = static_cast<uint16_t>(ip.size() - 40 + up.size());
    put16(ip, 4, chance(5) ? static_cast<uint16_t>(rng_()) : plen);
    f.insert(f.end(), ip.begin(), ip.end());
    f.insert(f.end(), up.begin(), up.end());
  } else {
    std::vector<uint8_t> body(below(64));
    for (auto& x : body) x = static_cast<uint8_t>(rng_());
    f.insert(f.end(), body.begin(), body.end());
  }

  // Mutations.
  if (chance(8)) {
    unsigned flips = 1 + static_cast<unsigned>(below(3));
    for (unsigned i = 0; i < flips; i++)
      f[below(std::min<size_t>(f.size(), 128))] ^= static_cast<uint8_t>(1 << below(8));
  }
  if (chance(15)) f.resize(14 + below(f.size() - 13));  // cut anywhere from 14 bytes up
  if (chance(3)) f.resize(f.size() + below(32), 0);     // trailing padding
  if (f.size() < 14) f.resize(14, 0);
  return f;
}

}  // namespace sgref
