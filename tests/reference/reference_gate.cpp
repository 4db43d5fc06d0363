#include "reference_gate.hpp"

#include "linux_receive.hpp"

#include <arpa/inet.h>
#include <linux/bpf.h>

#include <algorithm>
#include <optional>

#include "gate_maps.hpp"
#include "smtpgate_abi.h"

namespace sgref {

namespace {

// Ethertypes, IP protocol numbers and IPv6 extension headers, by their
// numbers in the IEEE and IANA registries.
constexpr uint16_t kIPv4 = 0x0800, kIPv6 = 0x86DD, kDot1Q = 0x8100, kDot1ad = 0x88A8;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kHopByHop = 0, kRouting = 43, kFragment = 44, kAuth = 51, kDestOpts = 60;
constexpr uint8_t kFlagFin = 0x01, kFlagSyn = 0x02, kFlagRst = 0x04, kFlagAck = 0x10;

// What the packet path learned about a packet it judges.
struct Judged {
  int family = 0;
  size_t l2_len = 0;
  std::array<uint8_t, 16> src{}, dst{};
  uint16_t sport = 0, dport = 0;
  uint32_t seq = 0;
  uint32_t segment_len = 0;  // TCP payload per the IP length fields
  bool fin = false;
  bool resettable = false;  // a complete TCP SYN, not a fragment
};

// The frame as bytes with bounds: every read says where and how much.
class Bytes {
 public:
  explicit Bytes(const std::vector<uint8_t>& f) : f_(f) {}
  bool has(size_t at, size_t n) const { return at <= f_.size() && n <= f_.size() - at; }
  uint8_t u8(size_t at) const { return f_.at(at); }
  uint16_t u16(size_t at) const { return static_cast<uint16_t>(f_.at(at) << 8 | f_.at(at + 1)); }
  uint32_t u32(size_t at) const { return uint32_t{u16(at)} << 16 | u16(at + 2); }
  void copy(size_t at, size_t n, uint8_t* to) const {
    for (size_t i = 0; i < n; i++) to[i] = f_.at(at + i);
  }

 private:
  const std::vector<uint8_t>& f_;
};

// Either a pass reason, or "judge it".
struct Step {
  bool judge = false;
  uint32_t pass_reason = 0;
};
Step pass(uint32_t reason) { return Step{false, reason}; }
Step judge() { return Step{true, 0}; }

bool guarded(const GateSetup& s, uint16_t port) {
  return std::find(s.ports.begin(), s.ports.end(), port) != s.ports.end();
}

// TCP at `at`. A first fragment is judged on its port alone (or, too short to
// hold one, judged outright); anything else must be a whole header, a SYN
// without ACK (checked first: not_syn for any port), to a guarded port.
Step tcp(const Bytes& b, size_t at, bool first_fragment, int64_t ip_payload, const GateSetup& s, Judged& j) {
  if (first_fragment) {
    if (!b.has(at, 4)) return judge();  // tiny fragment: names no port
    j.sport = b.u16(at);
    j.dport = b.u16(at + 2);
    return guarded(s, j.dport) ? judge() : pass(SG_REASON_OTHER_PORT);
  }
  if (!b.has(at, 20)) return pass(SG_REASON_MALFORMED);
  unsigned header_len = (b.u8(at + 12) >> 4) * 4;
  if (header_len < 20) return pass(SG_REASON_MALFORMED);
  uint8_t flags = b.u8(at + 13);
  if (!(flags & kFlagSyn) || (flags & kFlagAck)) return pass(SG_REASON_NOT_SYN);
  j.sport = b.u16(at);
  j.dport = b.u16(at + 2);
  if (!guarded(s, j.dport)) return pass(SG_REASON_OTHER_PORT);
  j.seq = b.u32(at + 4);
  j.fin = flags & kFlagFin;
  j.segment_len = ip_payload > header_len ? static_cast<uint32_t>(ip_payload - header_len) : 0;
  j.resettable = true;
  return judge();
}

Step ipv4(const Bytes& b, size_t at, const GateSetup& s, Judged& j) {
  if (!b.has(at, 20)) return pass(SG_REASON_MALFORMED);
  uint8_t vihl = b.u8(at);
  size_t header_len = (vihl & 0x0f) * 4u;
  if (vihl >> 4 != 4 || header_len < 20 || !b.has(at, header_len)) return pass(SG_REASON_MALFORMED);
  j.family = 4;
  b.copy(at + 12, 4, j.src.data());
  b.copy(at + 16, 4, j.dst.data());
  if (b.u8(at + 9) != kTcp) return pass(SG_REASON_NOT_TCP);
  uint16_t frag = b.u16(at + 6);
  unsigned offset = frag & 0x1fff;
  bool more = frag & 0x2000;
  if (offset != 0) return pass(SG_REASON_LATER_FRAGMENT);
  int64_t payload = int64_t{b.u16(at + 2)} - static_cast<int64_t>(header_len);
  return tcp(b, at + header_len, more, payload, s, j);
}

Step ipv6(const Bytes& b, size_t at, const GateSetup& s, Judged& j) {
  if (!b.has(at, 40)) return pass(SG_REASON_MALFORMED);
  if (b.u8(at) >> 4 != 6) return pass(SG_REASON_MALFORMED);
  j.family = 6;
  b.copy(at + 8, 16, j.src.data());
  b.copy(at + 24, 16, j.dst.data());
  int64_t payload = b.u16(at + 4);
  uint8_t next = b.u8(at + 6);
  size_t pos = at + 40;
  bool first_fragment = false;
  for (unsigned walked = 0;; walked++) {
    bool ext = next == kHopByHop || next == kRouting || next == kDestOpts || next == kAuth || next == kFragment;
    if (!ext) break;
    // Past the walk limit nothing more is read: judged on the source.
    if (walked == SG_MAX_EXT_HEADERS) return judge();
    // Cut short: Linux drops it, unless it is a first fragment, whose
    // headers reassembly completes: judged on the source.
    auto cut = [&] { return first_fragment ? judge() : pass(SG_REASON_MALFORMED); };
    size_t len;
    if (next == kFragment) {
      if (!b.has(pos, 8)) return cut();
      uint16_t fo = b.u16(pos + 2);
      if (fo >> 3) return pass(SG_REASON_LATER_FRAGMENT);
      first_fragment = fo & 1;
      len = 8;
    } else {
      if (!b.has(pos, 2)) return cut();
      // RFC 8200: length in 8-octet units not counting the first; RFC 4302
      // (AH): in 4-octet units minus 2.
      len = next == kAuth ? (b.u8(pos + 1) + 2u) * 4 : (b.u8(pos + 1) + 1u) * 8;
    }
    next = b.u8(pos);
    pos += len;
    payload -= static_cast<int64_t>(len);
  }
  if (next != kTcp) return pass(SG_REASON_NOT_TCP);
  return tcp(b, pos, first_fragment, payload, s, j);
}

// True when addr (of the prefix's family) lies under the first len bits of p.
bool under(const Prefix& p, unsigned len, const std::array<uint8_t, 16>& addr) {
  for (unsigned bit = 0; bit < len; bit++) {
    uint8_t mask = 0x80 >> (bit % 8);
    if ((p.addr[bit / 8] & mask) != (addr[bit / 8] & mask)) return false;
  }
  return true;
}

// Compiled ranges: a watch range inside (or equal to) an admit or deny range
// never reaches the allowlist.
bool dropped_by_compile(const GateSetup& s, const Prefix& w) {
  if (!s.compiled || w.kind != Kind::Watch) return false;
  for (const Prefix& p : s.prefixes)
    if (p.family == w.family && p.kind != Kind::Watch && p.len <= w.len && under(p, p.len, w.addr)) return true;
  return false;
}

const Prefix* longest_match(const GateSetup& s, const Judged& j) {
  auto rank = [](Kind k) { return k == Kind::Deny ? 2 : k == Kind::Admit ? 1 : 0; };
  const Prefix* best = nullptr;
  for (const Prefix& p : s.prefixes) {
    if (p.family != j.family || !under(p, p.len, j.src) || dropped_by_compile(s, p)) continue;
    if (!best || p.len > best->len || (p.len == best->len && rank(p.kind) > rank(best->kind))) best = &p;
  }
  return best;
}

uint16_t checksum(const std::vector<uint8_t>& bytes, uint32_t sum = 0) {
  for (size_t i = 0; i < bytes.size(); i += 2)
    sum += uint32_t{bytes[i]} << 8 | (i + 1 < bytes.size() ? bytes[i + 1] : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void put16(std::vector<uint8_t>& v, size_t at, uint16_t x) {
  v[at] = x >> 8;
  v[at + 1] = x & 0xff;
}

// RFC 9293 3.10.7.1: the answer to a SYN on a closed port is <SEQ=0><ACK=
// SEG.SEQ+SEG.LEN><CTL=RST,ACK>, where SYN and FIN each count one. Same L2
// header (MACs swapped), a plain IP header (no options, no extension
// headers), addresses and ports swapped. The frame keeps the SYN's length:
// the SYN's bytes past the reset stay as link padding.
std::vector<uint8_t> reset_for(const std::vector<uint8_t>& in, const Judged& j) {
  std::vector<uint8_t> out(in.begin(), in.begin() + static_cast<long>(j.l2_len));
  std::swap_ranges(out.begin(), out.begin() + 6, out.begin() + 6);
  size_t ip = out.size();
  size_t alen = j.family == 4 ? 4 : 16;
  std::vector<uint8_t> pseudo;
  if (j.family == 4) {
    out.resize(ip + 20);
    out[ip] = 0x45;
    put16(out, ip + 2, 40);
    put16(out, ip + 6, 0x4000);  // DF
    out[ip + 8] = 64;
    out[ip + 9] = kTcp;
    std::copy_n(j.dst.begin(), 4, out.begin() + static_cast<long>(ip + 12));
    std::copy_n(j.src.begin(), 4, out.begin() + static_cast<long>(ip + 16));
    put16(out, ip + 10, checksum(std::vector<uint8_t>(out.begin() + static_cast<long>(ip), out.end())));
  } else {
    out.resize(ip + 40);
    out[ip] = 0x60;
    put16(out, ip + 4, 20);
    out[ip + 6] = kTcp;
    out[ip + 7] = 64;
    std::copy_n(j.dst.begin(), 16, out.begin() + static_cast<long>(ip + 8));
    std::copy_n(j.src.begin(), 16, out.begin() + static_cast<long>(ip + 24));
  }
  pseudo.insert(pseudo.end(), j.dst.begin(), j.dst.begin() + static_cast<long>(alen));
  pseudo.insert(pseudo.end(), j.src.begin(), j.src.begin() + static_cast<long>(alen));
  size_t th = out.size();
  out.resize(th + 20);
  put16(out, th, j.dport);
  put16(out, th + 2, j.sport);
  uint32_t ack = j.seq + j.segment_len + 1 + (j.fin ? 1 : 0);
  for (int i = 0; i < 4; i++) out[th + 8 + i] = static_cast<uint8_t>(ack >> (24 - 8 * i));
  out[th + 12] = 5 << 4;
  out[th + 13] = kFlagRst | kFlagAck;
  pseudo.insert(pseudo.end(), {0, kTcp, 0, 20});
  pseudo.insert(pseudo.end(), out.begin() + static_cast<long>(th), out.end());
  put16(out, th + 16, checksum(pseudo));
  out.insert(out.end(), in.begin() + static_cast<long>(std::min(out.size(), in.size())), in.end());
  return out;
}

// A reset only between two hosts: never from or to 0/8, 127/8, 224/4, 240/4
// (IPv4), ::, ::1, ::ffff:0:0/96, ff00::/8 (IPv6), nor for a frame sent to or
// from a group MAC address (the reset goes to the source MAC).
bool special(int family, const std::array<uint8_t, 16>& a) {
  if (family == 4) return a[0] == 0 || a[0] == 127 || a[0] >= 224;
  bool zero80 = std::all_of(a.begin(), a.begin() + 10, [](uint8_t x) { return x == 0; });
  bool zero96 = zero80 && a[10] == 0 && a[11] == 0;
  bool low = zero96 && a[12] == 0 && a[13] == 0 && a[14] == 0 && a[15] <= 1;
  return a[0] == 0xff || low || (zero80 && a[10] == 0xff && a[11] == 0xff);
}

bool reset_allowed(const std::vector<uint8_t>& frame, const Judged& j) {
  return !((frame[0] | frame[6]) & 1) && !special(j.family, j.src) && !special(j.family, j.dst);
}

// More tags than walked: nothing past them is read. Refused as a SYN of the
// default rule by the action in force, without a reset.
Outcome beyond_tag_limit(const std::vector<uint8_t>& frame, const GateSetup& s) {
  bool monitor = s.refusal == Refusal::Monitor;
  return Outcome{monitor ? uint32_t{XDP_PASS} : uint32_t{XDP_DROP},
                 monitor ? uint32_t{SG_VERDICT_MONITOR} : uint32_t{SG_VERDICT_DROP},
                 SG_REASON_TAG_LIMIT,
                 true,
                 SG_RULE_DEFAULT,
                 frame};
}

}  // namespace

Outcome classify(const std::vector<uint8_t>& frame, const GateSetup& s) {
  Outcome o{XDP_PASS, SG_VERDICT_PASS, 0, false, 0, frame};
  Bytes b(frame);
  Judged j;
  Step step;
  if (!b.has(0, 14)) {
    step = pass(SG_REASON_MALFORMED);
  } else {
    size_t at = 14;
    uint16_t type = b.u16(12);
    bool cut = false;
    // The tags Linux strips (802.1Q, 802.1ad), up to the walk limit.
    for (int tags = 0; tags < SG_MAX_VLAN_TAGS && (type == kDot1Q || type == kDot1ad); tags++) {
      if (!b.has(at, 4)) {
        cut = true;
        break;
      }
      type = b.u16(at + 2);
      at += 4;
    }
    j.l2_len = at;
    if (cut)
      step = pass(SG_REASON_MALFORMED);
    else if (type == kDot1Q || type == kDot1ad)
      return beyond_tag_limit(frame, s);
    else if (type == kIPv4)
      step = ipv4(b, at, s, j);
    else if (type == kIPv6)
      step = ipv6(b, at, s, j);
    else
      step = pass(SG_REASON_NOT_IP);
  }
  if (!step.judge) {
    o.reason = step.pass_reason;
    return o;
  }

  o.judged = true;
  if (!s.has_allowlist) {
    o.reason = SG_REASON_NO_ALLOWLIST;
  } else if (const Prefix* p = longest_match(s, j)) {
    o.rule_id = p->rule_id;
    if (p->kind == Kind::Admit) {
      o.verdict = SG_VERDICT_ADMIT;
      o.reason = SG_REASON_RULE_ADMIT;
      return o;
    }
    o.reason = p->kind == Kind::Deny ? SG_REASON_RULE_DENY : SG_REASON_RULE_WATCH;
  } else {
    o.reason = SG_REASON_DEFAULT;
  }

  switch (s.refusal) {
    case Refusal::Monitor: o.verdict = SG_VERDICT_MONITOR; break;
    case Refusal::Reject:
      if (j.resettable && reset_allowed(frame, j)) {
        o.verdict = SG_VERDICT_REJECT;
        o.xdp_action = XDP_TX;
        o.frame = reset_for(frame, j);
      } else {
        o.verdict = SG_VERDICT_DROP;
        o.reason = SG_REASON_REJECT_AS_DROP;
        o.xdp_action = XDP_DROP;
      }
      break;
    case Refusal::Drop:
      o.verdict = SG_VERDICT_DROP;
      o.xdp_action = XDP_DROP;
      break;
  }
  return o;
}

bool bypasses(const LinuxView& linux, const GateSetup& s, const Outcome& o) {
  if (!linux.guarded_syn()) return false;
  if (o.verdict == SG_VERDICT_DROP || o.verdict == SG_VERDICT_REJECT || o.verdict == SG_VERDICT_MONITOR) return false;
  if (o.verdict != SG_VERDICT_ADMIT || !s.has_allowlist) return true;
  Judged j;
  j.family = linux.family;
  j.src = linux.src;
  const Prefix* p = longest_match(s, j);
  return !(p && p->kind == Kind::Admit && p->rule_id == o.rule_id);
}

std::string disagreement_kind(const std::vector<uint8_t>& frame, const GateSetup& s, const Outcome& got) {
  const Outcome want = classify(frame, s);
  auto refuses = [](const Outcome& o) {
    return o.verdict == SG_VERDICT_DROP || o.verdict == SG_VERDICT_REJECT || o.verdict == SG_VERDICT_MONITOR;
  };
  if (bypasses(linux_receive(frame, s.ports), s, got)) return "bypass";
  if (refuses(got) && !refuses(want)) return "over-refusal";
  return "accounting";
}

std::string refusal_name(Refusal r) {
  return r == Refusal::Drop ? "drop" : r == Refusal::Reject ? "reject" : "monitor";
}

std::string kind_name(Kind k) { return k == Kind::Admit ? "admit" : k == Kind::Deny ? "deny" : "watch"; }

std::string describe(const Outcome& o) {
  static const char* actions[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"};
  std::string a = o.xdp_action < 5 ? actions[o.xdp_action] : "XDP_" + std::to_string(o.xdp_action);
  std::string s = a + " " + smtpgate::verdict_name(o.verdict) + "/" + smtpgate::reason_name(o.reason);
  if (o.judged) s += " rule " + std::to_string(o.rule_id);
  return s;
}

std::string prefix_text(const Prefix& p) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(p.family == 4 ? AF_INET : AF_INET6, p.addr.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(p.len);
}

}  // namespace sgref
