#include "cidr.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "error.hpp"
#include "text.hpp"

namespace smtpgate {

namespace {

// Clears the bits past prefix_len; returns true if any was set.
bool clear_host_bits(std::array<uint8_t, 16>& b, unsigned len, unsigned max_len) {
  bool had = false;
  for (unsigned i = 0; i < max_len / 8; i++) {
    unsigned start = i * 8;
    uint8_t mask;
    if (start >= len)
      mask = 0;
    else if (start + 8 <= len)
      mask = 0xff;
    else
      mask = static_cast<uint8_t>(0xff << (8 - (len - start)));
    if (b[i] & ~mask) had = true;
    b[i] &= mask;
  }
  return had;
}

void set_bit(std::array<uint8_t, 16>& b, unsigned i, bool v) {
  if (v)
    b[i / 8] |= static_cast<uint8_t>(1u << (7 - i % 8));
  else
    b[i / 8] &= static_cast<uint8_t>(~(1u << (7 - i % 8)));
}

}  // namespace

Cidr Cidr::from_bytes(Family family, const uint8_t* bytes, unsigned prefix_len) {
  Cidr c;
  c.family_ = family;
  unsigned n = family == Family::V4 ? 4 : 16;
  std::memcpy(c.bytes_.data(), bytes, n);
  if (prefix_len > c.max_len()) prefix_len = c.max_len();
  c.prefix_len_ = static_cast<uint8_t>(prefix_len);
  clear_host_bits(c.bytes_, prefix_len, c.max_len());
  return c;
}

Cidr Cidr::parse_address(std::string_view text) {
  if (text.find('/') != std::string_view::npos)
    throw InputError(quote_input(text) + " is a range, not an address: give one address, e.g. 40.92.0.10");
  return parse(text);
}

Cidr Cidr::parse(std::string_view text) {
  if (text.empty()) throw InputError("empty range: give a CIDR such as 40.92.0.0/15 or 2a01:111:f400::/48");
  // The text as error messages show it, made only for an error.
  auto shown = [text] { return quote_input(text); };
  if (text.find_first_of(" \t\r\n") != std::string_view::npos)
    throw InputError(shown() + " contains white space: give one CIDR such as 40.92.0.0/15");
  // Only what a CIDR is made of: inet_pton stops at a NUL and would take
  // "40.109.0.0\0junk/16" for 40.109.0.0/16.
  size_t slash = text.find('/');
  size_t odd = text.find_first_not_of("0123456789abcdefABCDEF:./");
  if (odd != std::string_view::npos && slash != std::string_view::npos && odd > slash)
    throw InputError(shown() + " has no valid prefix length after '/': use 0..32 (IPv4) or 0..128 (IPv6)");
  if (odd != std::string_view::npos || text.size() > kMaxCidrText) {
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02x",
                  static_cast<unsigned char>(text[odd == std::string_view::npos ? 0 : odd]));
    throw InputError(shown() + " is not an IPv4 or IPv6 " + (slash == std::string_view::npos ? "address" : "range") +
                     (odd != std::string_view::npos
                          ? " (byte " + std::string(byte) + " at " + std::to_string(odd + 1) + ")"
                          : " (too long)") +
                     ": write it like 40.92.0.0/15 or 2a01:111:f400::/48");
  }
  std::string t(text);
  std::string addr = t.substr(0, slash);
  Cidr c;
  if (inet_pton(AF_INET, addr.c_str(), c.bytes_.data()) == 1) {
    c.family_ = Family::V4;
  } else if (inet_pton(AF_INET6, addr.c_str(), c.bytes_.data()) == 1) {
    c.family_ = Family::V6;
  } else {
    throw InputError(shown() + " is not an IPv4 or IPv6 " + (slash == std::string::npos ? "address" : "range") +
                     ": write it like 40.92.0.0/15 or 2a01:111:f400::/48");
  }
  unsigned len = c.max_len();
  if (slash != std::string::npos) {
    std::string l = t.substr(slash + 1);
    if (l.empty() || l.size() > 3 || !std::all_of(l.begin(), l.end(), ::isdigit) || (l.size() > 1 && l[0] == '0'))
      throw InputError(shown() + " has no valid prefix length after '/': use 0.." + std::to_string(c.max_len()));
    len = static_cast<unsigned>(std::stoul(l));
    if (len > c.max_len())
      throw InputError(shown() + " has prefix length " + l + ", longer than the " + std::to_string(c.max_len()) +
                       " bits of an " + (c.family_ == Family::V4 ? "IPv4" : "IPv6") + " address");
  }
  // ::a.b.c.d (IPv4-compatible, deprecated by RFC 4291 2.5.5.1) is an IPv6
  // address no EOP host has: whoever writes it means the IPv4 one. :: and
  // ::1 are left to the special-purpose check.
  if (c.family_ == Family::V6 && len >= 96 &&
      std::all_of(c.bytes_.begin(), c.bytes_.begin() + 12, [](uint8_t b) { return b == 0; }) &&
      !(len == 128 && c.bytes_[12] == 0 && c.bytes_[13] == 0 && c.bytes_[14] == 0 && c.bytes_[15] <= 1)) {
    Cidr v4 = from_bytes(Family::V4, c.bytes_.data() + 12, len - 96);
    throw InputError(shown() + " is an IPv4-compatible IPv6 " + (len == 128 ? "address" : "range") +
                     " (::/96, deprecated by RFC 4291): for the IPv4 " + (len == 128 ? "address" : "range") +
                     " write " + v4.str());
  }
  c.prefix_len_ = static_cast<uint8_t>(len);
  std::array<uint8_t, 16> net = c.bytes_;
  if (clear_host_bits(net, len, c.max_len())) {
    Cidr fixed = c;
    fixed.bytes_ = net;
    throw InputError(t + " has host bits set; did you mean " + fixed.str() + "?");
  }
  return c;
}

void check_comment(std::string_view comment) {
  size_t bad = bad_text_offset(comment);
  if (bad != std::string_view::npos) {
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02x", static_cast<unsigned char>(comment[bad]));
    throw InputError("comment " + quote_input(comment) + " is not one line of UTF-8 text (byte " + byte + " at " +
                     std::to_string(bad + 1) + "): write plain text");
  }
  if (comment.size() > kMaxCommentBytes)
    throw InputError("comment " + quote_input(comment) + " is too long: keep it to " +
                     std::to_string(kMaxCommentBytes) + " bytes");
}

std::string Cidr::address_str() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family_ == Family::V4 ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
  return buf;
}

std::string Cidr::str() const { return address_str() + "/" + std::to_string(prefix_len_); }

bool Cidr::contains(const Cidr& o) const {
  if (o.family_ != family_ || o.prefix_len_ < prefix_len_) return false;
  std::array<uint8_t, 16> b = o.bytes_;
  clear_host_bits(b, prefix_len_, max_len());
  return b == bytes_;
}

bool Cidr::overlaps(const Cidr& o) const { return contains(o) || o.contains(*this); }

Cidr Cidr::parent() const {
  Cidr p = *this;
  if (p.prefix_len_ == 0) return p;
  p.prefix_len_--;
  clear_host_bits(p.bytes_, p.prefix_len_, max_len());
  return p;
}

Cidr Cidr::last() const {
  Cidr l = *this;
  for (unsigned i = prefix_len_; i < max_len(); i++) set_bit(l.bytes_, i, true);
  l.prefix_len_ = static_cast<uint8_t>(max_len());
  return l;
}

namespace {
constexpr const char* kV4Reg = "IANA IPv4 Special-Purpose Address Registry";
constexpr const char* kV6Reg = "IANA IPv6 Special-Purpose Address Registry";
constexpr const char* kMcReg4 = "IANA IPv4 Multicast Address Space Registry";
constexpr const char* kMcReg6 = "IANA IPv6 Multicast Address Space Registry";

const SpecialPurpose kSpecial[] = {
    {"0.0.0.0/8", "\"This network\"", "RFC 791", kV4Reg},
    {"0.0.0.0/32", "\"This host on this network\"", "RFC 1122", kV4Reg},
    {"10.0.0.0/8", "Private-Use", "RFC 1918", kV4Reg},
    {"100.64.0.0/10", "Shared Address Space (CGNAT)", "RFC 6598", kV4Reg},
    {"127.0.0.0/8", "Loopback", "RFC 1122", kV4Reg},
    {"169.254.0.0/16", "Link Local", "RFC 3927", kV4Reg},
    {"172.16.0.0/12", "Private-Use", "RFC 1918", kV4Reg},
    {"192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890", kV4Reg},
    {"192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335", kV4Reg},
    {"192.0.0.8/32", "IPv4 dummy address", "RFC 7600", kV4Reg},
    {"192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723", kV4Reg},
    {"192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155", kV4Reg},
    {"192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880", kV4Reg},
    {"192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880", kV4Reg},
    {"192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737", kV4Reg},
    {"192.31.196.0/24", "AS112-v4", "RFC 7535", kV4Reg},
    {"192.52.193.0/24", "AMT", "RFC 7450", kV4Reg},
    {"192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526", kV4Reg},
    {"192.168.0.0/16", "Private-Use", "RFC 1918", kV4Reg},
    {"192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534", kV4Reg},
    {"198.18.0.0/15", "Benchmarking", "RFC 2544", kV4Reg},
    {"198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737", kV4Reg},
    {"203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737", kV4Reg},
    {"224.0.0.0/4", "Multicast", "RFC 5771", kMcReg4},
    {"240.0.0.0/4", "Reserved", "RFC 1112", kV4Reg},
    {"255.255.255.255/32", "Limited Broadcast", "RFC 919", kV4Reg},
    {"::/128", "Unspecified Address", "RFC 4291", kV6Reg},
    {"::1/128", "Loopback Address", "RFC 4291", kV6Reg},
    {"::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291", kV6Reg},
    {"64:ff9b::/96", "IPv4-IPv6 Translation", "RFC 6052", kV6Reg},
    {"64:ff9b:1::/48", "IPv4-IPv6 Translation", "RFC 8215", kV6Reg},
    {"100::/64", "Discard-Only Address Block", "RFC 6666", kV6Reg},
    {"2001::/23", "IETF Protocol Assignments", "RFC 2928", kV6Reg},
    {"2001::/32", "TEREDO", "RFC 4380", kV6Reg},
    {"2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723", kV6Reg},
    {"2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155", kV6Reg},
    {"2001:2::/48", "Benchmarking", "RFC 5180", kV6Reg},
    {"2001:3::/32", "AMT", "RFC 7450", kV6Reg},
    {"2001:4:112::/48", "AS112-v6", "RFC 7535", kV6Reg},
    {"2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843", kV6Reg},
    {"2001:20::/28", "ORCHIDv2", "RFC 7343", kV6Reg},
    {"2001:db8::/32", "Documentation", "RFC 3849", kV6Reg},
    {"2002::/16", "6to4", "RFC 3056", kV6Reg},
    {"2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534", kV6Reg},
    {"fc00::/7", "Unique-Local", "RFC 4193", kV6Reg},
    {"fe80::/10", "Link-Local Unicast", "RFC 4291", kV6Reg},
    {"ff00::/8", "Multicast", "RFC 4291", kMcReg6},
};

// kSpecial's blocks, parsed once.
const std::vector<Cidr>& special_blocks() {
  static const std::vector<Cidr> blocks = [] {
    std::vector<Cidr> v;
    for (const auto& s : kSpecial) v.push_back(Cidr::parse(s.block));
    return v;
  }();
  return blocks;
}

}  // namespace

std::optional<SpecialPurpose> find_special_purpose(const Cidr& prefix) {
  if (prefix.prefix_len() == 0)
    return SpecialPurpose{prefix.family() == Family::V4 ? "0.0.0.0/0" : "::/0", "the default route (every address)",
                          "RFC 4632", prefix.family() == Family::V4 ? kV4Reg : kV6Reg};
  const std::vector<Cidr>& blocks = special_blocks();
  constexpr size_t n = sizeof(kSpecial) / sizeof(kSpecial[0]);
  // The most specific entry that contains the prefix...
  const SpecialPurpose* best = nullptr;
  unsigned best_len = 0;
  for (size_t i = 0; i < n; i++) {
    if (blocks[i].contains(prefix) && (!best || blocks[i].prefix_len() > best_len)) {
      best = &kSpecial[i];
      best_len = blocks[i].prefix_len();
    }
  }
  if (best) return *best;
  // ...else the first entry the prefix contains.
  for (size_t i = 0; i < n; i++)
    if (prefix.contains(blocks[i])) return kSpecial[i];
  return std::nullopt;
}

void check_not_special(const Cidr& prefix, bool allow_reserved) {
  if (allow_reserved) return;
  auto s = find_special_purpose(prefix);
  if (!s) return;
  if (prefix.prefix_len() == 0)
    throw InputError(prefix.str() +
                     " is the default route: it would admit every address; "
                     "give Microsoft's ranges instead");
  throw InputError(prefix.str() + " is special-purpose space (" + std::string(s->block) + " " + std::string(s->name) +
                   ", " + std::string(s->rfc) + ", " + std::string(s->registry) +
                   "); an EOP allowlist never needs it: remove it, or pass --allow-reserved if you really mean it");
}

std::vector<RangeLine> parse_range_file(std::string_view text, std::string_view origin) {
  std::vector<RangeLine> out;
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF && static_cast<unsigned char>(text[1]) == 0xBB &&
      static_cast<unsigned char>(text[2]) == 0xBF)
    text.remove_prefix(3);
  unsigned line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    line_no++;
    try {
      // A text file, line by line: a NUL, a control character or bytes that
      // are not UTF-8 end it (a CR before the newline apart).
      std::string_view body = !line.empty() && line.back() == '\r' ? line.substr(0, line.size() - 1) : line;
      size_t bad = bad_text_offset(body);
      if (bad != std::string_view::npos) {
        char byte[8];
        std::snprintf(byte, sizeof(byte), "0x%02x", static_cast<unsigned char>(body[bad]));
        throw InputError(std::string("byte ") + byte + " at column " + std::to_string(bad + 1) +
                         (body[bad] == 0 ? " is a NUL" : " is not UTF-8 text") +
                         ": a range file is text, one CIDR per line, '#' comments");
      }
      std::string comment;
      size_t hash = line.find('#');
      if (hash != std::string_view::npos) {
        comment = std::string(trim(line.substr(hash + 1)));
        line = line.substr(0, hash);
        check_comment(comment);
      }
      std::string cidr(trim(line));
      if (!cidr.empty()) out.push_back(RangeLine{Cidr::parse(cidr), comment, line_no});
    } catch (const InputError& e) {
      throw InputError(std::string(origin) + ":" + std::to_string(line_no) + ": " + e.what());
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return out;
}

}  // namespace smtpgate
