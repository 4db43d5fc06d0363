// The XDP program through BPF_PROG_TEST_RUN: a table of packets and the
// verdict each gets, then the reset's bytes, every truncation length, the
// counters, the recently-refused table, the event budget, and atomic replace.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

#include "packet_builder.hpp"
#include "xdp_runner.hpp"

using namespace smtpgate;
using namespace sgtest;

namespace {

// The recently-refused table is per CPU: pin a test to one CPU so every run
// lands in the same copy.
static void pin_to_cpu0() {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(0, &set);
  ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
}

// One test run of repeat=n: n runs of the frame on one CPU, in a loop in the
// kernel, well inside one second.
static void run_repeated(XdpGate& gate, const std::vector<uint8_t>& frame, uint32_t n) {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = uint32_t(frame.size()),
              .repeat = int(n));
  ASSERT_EQ(bpf_prog_test_run_opts(gate.prog_fd(), &opts), 0);
}

constexpr const char* GW4 = "192.0.2.1";
constexpr const char* GW6 = "2001:db8::1";
constexpr const char* EOP4 = "40.92.0.10";         // admit 40.92.0.0/15
constexpr const char* EOP6 = "2a01:111:f400::10";  // admit 2a01:111:f400::/48
constexpr const char* DENIED4 = "40.92.66.7";      // deny 40.92.66.0/24 inside the admit
constexpr const char* DENIED6 = "2a01:111:f400:66::7";
constexpr const char* WATCHED4 = "104.47.1.1";     // watch 104.47.0.0/17
constexpr const char* STRANGER4 = "203.0.113.10";  // no range
constexpr const char* STRANGER6 = "2001:db8:bad::10";

TrieEntry E(const char* c, uint32_t id, RuleKind k) { return TrieEntry{Cidr::parse(c), id, k}; }

const std::vector<TrieEntry> kRanges = {
    E("40.92.0.0/15", 1, RuleKind::Admit),  E("2a01:111:f400::/48", 2, RuleKind::Admit),
    E("40.92.66.0/24", 3, RuleKind::Deny),  E("2a01:111:f400:66::/64", 4, RuleKind::Deny),
    E("104.47.0.0/17", 5, RuleKind::Watch),
};

class Xdp : public ::testing::Test {
 protected:
  void SetUp() override {
    gate.maps().set_config(GateConfig{Action::Drop, {25, 587}, 0});
    gate.maps().publish(kRanges);
  }
  XdpGate gate;
};

struct Row {
  const char* name;
  std::vector<uint8_t> frame;
  uint32_t action;
  uint32_t verdict;
  uint32_t reason;
};

Packet v4(const char* src) { return Packet().eth().ipv4(src, GW4); }
Packet v6(const char* src) { return Packet().eth().ipv6(src, GW6); }

// Ethernet and n VLAN tags of VLAN id 0 (priority tags), which Linux strips
// one after another before delivery.
Packet tagged(unsigned n, uint16_t tpid = 0x8100) {
  Packet p = Packet().eth();
  for (unsigned i = 0; i < n; i++) p.vlan(0, tpid);
  return p;
}

// An IPv6 first fragment cut inside the extension headers behind its fragment
// header: a destination-options header of 16 bytes of which 8 are here, then
// another. Reassembly completes it from the next fragment (which passes).
std::vector<uint8_t> v6_first_fragment_cut_in_chain(const char* src) {
  auto b = v6(src).frag6(0, true).ext(DSTOPTS, 16).ext(DSTOPTS).tcp(1, 25, SYN).bytes();
  b.resize(14 + 40 + 8 + 8);
  b[14 + 4] = 0;
  b[14 + 5] = 16;  // payload length: what is left
  return b;
}

std::vector<Row> table() {
  const uint32_t P = XDP_PASS, D = XDP_DROP;
  return {
      // name                               packet                                                    action verdict
      // reason
      {"v4 SYN from EOP", v4(EOP4).tcp(40000, 25, SYN).bytes(), P, SG_VERDICT_ADMIT, SG_REASON_RULE_ADMIT},
      {"v6 SYN from EOP", v6(EOP6).tcp(40000, 25, SYN).bytes(), P, SG_VERDICT_ADMIT, SG_REASON_RULE_ADMIT},
      {"v4 SYN from stranger", v4(STRANGER4).tcp(40000, 25, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v6 SYN from stranger", v6(STRANGER6).tcp(40000, 25, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v4 SYN denied inside admit", v4(DENIED4).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_RULE_DENY},
      {"v6 SYN denied inside admit", v6(DENIED6).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_RULE_DENY},
      {"v4 SYN from watch range", v4(WATCHED4).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_RULE_WATCH},
      {"SYN to second guarded port", v4(STRANGER4).tcp(1, 587, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"SYN with ECE|CWR still a SYN", v4(STRANGER4).tcp(1, 25, SYN | ECE | CWR).bytes(), D, SG_VERDICT_DROP,
       SG_REASON_DEFAULT},
      {"SYN with payload (TFO)", v4(STRANGER4).tcp(1, 25, SYN, 7, 30).bytes(), D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"SYN with TCP options", v4(STRANGER4).tcp(1, 25, SYN, 7, 0, 20).bytes(), D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"SYN+ACK from stranger", v4(STRANGER4).tcp(1, 25, SYN | ACK).bytes(), P, SG_VERDICT_PASS, SG_REASON_NOT_SYN},
      {"ACK from stranger", v4(STRANGER4).tcp(1, 25, ACK).bytes(), P, SG_VERDICT_PASS, SG_REASON_NOT_SYN},
      {"RST from stranger", v4(STRANGER4).tcp(1, 25, RST).bytes(), P, SG_VERDICT_PASS, SG_REASON_NOT_SYN},
      {"SYN to port 80", v4(STRANGER4).tcp(1, 80, SYN).bytes(), P, SG_VERDICT_PASS, SG_REASON_OTHER_PORT},
      {"SYN from port 25 to 40000", v4(STRANGER4).tcp(25, 40000, SYN).bytes(), P, SG_VERDICT_PASS,
       SG_REASON_OTHER_PORT},
      {"UDP to 25", v4(STRANGER4).udp(1, 25).bytes(), P, SG_VERDICT_PASS, SG_REASON_NOT_TCP},
      {"ICMP", v4(STRANGER4).icmp().bytes(), P, SG_VERDICT_PASS, SG_REASON_NOT_TCP},
      {"ARP", Packet().eth().ethertype(0x0806).raw(std::vector<uint8_t>(28)).bytes(), P, SG_VERDICT_PASS,
       SG_REASON_NOT_IP},
      // VLAN
      {"802.1Q SYN from stranger", Packet().eth().vlan(100).ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), D,
       SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"QinQ SYN from stranger", Packet().eth().vlan(10, 0x88a8).vlan(100).ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(),
       D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"QinQ v6 SYN from EOP", Packet().eth().vlan(10, 0x88a8).vlan(100).ipv6(EOP6, GW6).tcp(1, 25, SYN).bytes(), P,
       SG_VERDICT_ADMIT, SG_REASON_RULE_ADMIT},
      {"three VLAN tags", Packet().eth().vlan(1).vlan(2).vlan(3).ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), D,
       SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"3 priority tags SYN from stranger", tagged(3).ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP,
       SG_REASON_DEFAULT},
      {"4 priority tags (802.1ad) v6 SYN from stranger", tagged(4, 0x88a8).ipv6(STRANGER6, GW6).tcp(1, 25, SYN).bytes(),
       D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"4 priority tags SYN from EOP", tagged(4).ipv4(EOP4, GW4).tcp(1, 25, SYN).bytes(), P, SG_VERDICT_ADMIT,
       SG_REASON_RULE_ADMIT},
      {"8 tags: the last walked", tagged(8).ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP,
       SG_REASON_DEFAULT},
      {"8 tags from EOP", tagged(8).ipv6(EOP6, GW6).tcp(1, 25, SYN).bytes(), P, SG_VERDICT_ADMIT, SG_REASON_RULE_ADMIT},
      {"8 tags ACK", tagged(8).ipv4(STRANGER4, GW4).tcp(1, 25, ACK).bytes(), P, SG_VERDICT_PASS, SG_REASON_NOT_SYN},
      {"9 tags SYN from stranger: refused unread", tagged(9).ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), D,
       SG_VERDICT_DROP, SG_REASON_TAG_LIMIT},
      {"9 tags SYN from EOP: refused unread", tagged(9).ipv4(EOP4, GW4).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP,
       SG_REASON_TAG_LIMIT},
      {"10 tags ARP: refused unread", tagged(10).ethertype(0x0806).raw(std::vector<uint8_t>(28)).bytes(), D,
       SG_VERDICT_DROP, SG_REASON_TAG_LIMIT},
      {"0x9100 in tag position: no tag to Linux",
       Packet().eth().vlan(0, 0x9100).ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), P, SG_VERDICT_PASS,
       SG_REASON_NOT_IP},
      {"third tag cut short",
       [] {
         auto b = tagged(3).ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes();
         b.resize(14 + 8 + 2);
         return b;
       }(),
       P, SG_VERDICT_PASS, SG_REASON_MALFORMED},
      // IPv4 options
      {"v4 options SYN from stranger", Packet().eth().ipv4(STRANGER4, GW4, 40).tcp(1, 25, SYN).bytes(), D,
       SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v4 options SYN from EOP", Packet().eth().ipv4(EOP4, GW4, 12).tcp(1, 25, SYN).bytes(), P, SG_VERDICT_ADMIT,
       SG_REASON_RULE_ADMIT},
      // IPv6 extension headers
      {"v6 hop-by-hop SYN", v6(STRANGER6).ext(HOP).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v6 routing SYN", v6(STRANGER6).ext(ROUTING, 24).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v6 dstopts SYN", v6(STRANGER6).ext(DSTOPTS, 16).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v6 AH SYN", v6(STRANGER6).ext(AH, 24).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v6 chain of 7 then TCP",
       v6(STRANGER6)
           .ext(HOP)
           .ext(DSTOPTS)
           .ext(ROUTING)
           .ext(DSTOPTS)
           .ext(AH, 12)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .tcp(1, 25, SYN)
           .bytes(),
       D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v6 chain of 7 from EOP",
       v6(EOP6)
           .ext(HOP)
           .ext(DSTOPTS)
           .ext(ROUTING)
           .ext(DSTOPTS)
           .ext(AH, 12)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .tcp(1, 25, SYN)
           .bytes(),
       P, SG_VERDICT_ADMIT, SG_REASON_RULE_ADMIT},
      {"v6 chain over the walk: judged",
       v6(STRANGER6)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .tcp(1, 25, SYN)
           .bytes(),
       D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v6 chain over the walk from EOP",
       v6(EOP6)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .ext(DSTOPTS)
           .tcp(1, 25, SYN)
           .bytes(),
       P, SG_VERDICT_ADMIT, SG_REASON_RULE_ADMIT},
      {"v6 UDP after ext", v6(STRANGER6).ext(HOP).udp(1, 25).bytes(), P, SG_VERDICT_PASS, SG_REASON_NOT_TCP},
      // Fragments
      {"v4 first fragment ACK to 25: judged", Packet().eth().ipv4(STRANGER4, GW4, 0, 0, true).tcp(1, 25, ACK).bytes(),
       D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v4 first fragment from EOP", Packet().eth().ipv4(EOP4, GW4, 0, 0, true).tcp(1, 25, SYN).bytes(), P,
       SG_VERDICT_ADMIT, SG_REASON_RULE_ADMIT},
      {"v4 first fragment to 80", Packet().eth().ipv4(STRANGER4, GW4, 0, 0, true).tcp(1, 80, SYN).bytes(), P,
       SG_VERDICT_PASS, SG_REASON_OTHER_PORT},
      {"v4 first fragment cut before flags",
       Packet().eth().ipv4(STRANGER4, GW4, 0, 0, true).raw({0, 1, 0, 25, 0, 0, 0, 0}, 6).bytes(), D, SG_VERDICT_DROP,
       SG_REASON_DEFAULT},
      {"v4 tiny first fragment (no port)", Packet().eth().ipv4(STRANGER4, GW4, 0, 0, true).raw({0, 1}, 6).bytes(), D,
       SG_VERDICT_DROP, SG_REASON_DEFAULT},
      {"v4 later fragment", Packet().eth().ipv4(STRANGER4, GW4, 0, 3, true).raw(std::vector<uint8_t>(24), 6).bytes(), P,
       SG_VERDICT_PASS, SG_REASON_LATER_FRAGMENT},
      {"v4 last fragment", Packet().eth().ipv4(STRANGER4, GW4, 0, 1, false).raw(std::vector<uint8_t>(24), 6).bytes(), P,
       SG_VERDICT_PASS, SG_REASON_LATER_FRAGMENT},
      {"v6 first fragment to 25: judged", v6(STRANGER6).frag6(0, true).tcp(1, 25, ACK).bytes(), D, SG_VERDICT_DROP,
       SG_REASON_DEFAULT},
      {"v6 tiny first fragment", v6(STRANGER6).frag6(0, true).raw({0, 1}, 6).bytes(), D, SG_VERDICT_DROP,
       SG_REASON_DEFAULT},
      {"v6 later fragment", v6(STRANGER6).frag6(2, true).raw(std::vector<uint8_t>(16)).bytes(), P, SG_VERDICT_PASS,
       SG_REASON_LATER_FRAGMENT},
      {"v6 atomic fragment SYN", v6(STRANGER6).frag6(0, false).tcp(1, 25, SYN).bytes(), D, SG_VERDICT_DROP,
       SG_REASON_DEFAULT},
      {"v6 first fragment cut inside its chain: judged", v6_first_fragment_cut_in_chain(STRANGER6), D, SG_VERDICT_DROP,
       SG_REASON_DEFAULT},
      {"v6 first fragment cut inside its chain from EOP", v6_first_fragment_cut_in_chain(EOP6), P, SG_VERDICT_ADMIT,
       SG_REASON_RULE_ADMIT},
      {"v6 unfragmented, cut inside its chain",
       [] {
         auto b = v6(STRANGER6).ext(DSTOPTS, 16).ext(DSTOPTS).tcp(1, 25, SYN).bytes();
         b.resize(14 + 40 + 8);
         return b;
       }(),
       P, SG_VERDICT_PASS, SG_REASON_MALFORMED},
      // Broken headers
      {"v4 IHL 4",
       [] {
         auto b = v4(STRANGER4).tcp(1, 25, SYN).bytes();
         b[14] = 0x44;
         return b;
       }(),
       P, SG_VERDICT_PASS, SG_REASON_MALFORMED},
      {"v4 version 6 in v4 frame",
       [] {
         auto b = v4(STRANGER4).tcp(1, 25, SYN).bytes();
         b[14] = 0x65;
         return b;
       }(),
       P, SG_VERDICT_PASS, SG_REASON_MALFORMED},
      {"TCP data offset 4",
       [] {
         auto b = v4(STRANGER4).tcp(1, 25, SYN).bytes();
         b[14 + 20 + 12] = 0x40;
         return b;
       }(),
       P, SG_VERDICT_PASS, SG_REASON_MALFORMED},
      {"v4 IHL 15 past the frame",
       [] {
         auto b = v4(STRANGER4).tcp(1, 25, SYN).bytes();
         b[14] = 0x4f;
         return b;
       }(),
       P, SG_VERDICT_PASS, SG_REASON_MALFORMED},
      {"v6 version 4 in v6 frame",
       [] {
         auto b = v6(STRANGER6).tcp(1, 25, SYN).bytes();
         b[14] = 0x40 | (b[14] & 0x0f);
         return b;
       }(),
       P, SG_VERDICT_PASS, SG_REASON_MALFORMED},
      {"v4 later fragment of UDP: not TCP first",
       Packet().eth().ipv4(STRANGER4, GW4, 0, 3, true).raw(std::vector<uint8_t>(24), 17).bytes(), P, SG_VERDICT_PASS,
       SG_REASON_NOT_TCP},
      {"TCP options cut by the frame: still judged",
       [] {
         auto b = v4(STRANGER4).tcp(1, 25, SYN, 7, 0, 20).bytes();
         b.resize(14 + 20 + 20 + 4);
         return b;
       }(),
       D, SG_VERDICT_DROP, SG_REASON_DEFAULT},
  };
}

TEST_F(Xdp, VerdictTable) {
  for (const Row& row : table()) {
    SCOPED_TRACE(row.name);
    auto v0 = gate.maps().verdict_counters();
    auto r0 = gate.maps().reason_counters();
    RunResult res = gate.run(row.frame);
    auto v1 = gate.maps().verdict_counters();
    auto r1 = gate.maps().reason_counters();
    EXPECT_EQ(res.action, row.action);
    for (uint32_t v = 0; v < SG_VERDICT_MAX; v++)
      EXPECT_EQ(v1[v].packets - v0[v].packets, v == row.verdict ? 1u : 0u) << "verdict " << verdict_name(v);
    for (uint32_t r = 0; r < SG_REASON_MAX; r++)
      EXPECT_EQ(r1[r].packets - r0[r].packets, r == row.reason ? 1u : 0u) << "reason " << reason_name(r);
    EXPECT_EQ(v1[row.verdict].bytes - v0[row.verdict].bytes, row.frame.size());
    if (row.action == XDP_PASS) {
      EXPECT_EQ(res.out, row.frame) << "a passed packet must be untouched";
    }
  }
}

TEST_F(Xdp, RuleCountersAttributeToTheDecidingRange) {
  struct {
    std::vector<uint8_t> frame;
    uint32_t rule;
    bool admitted;
  } sends[] = {
      {v4(EOP4).tcp(1, 25, SYN).bytes(), 1, true},      {v6(EOP6).tcp(1, 25, SYN).bytes(), 2, true},
      {v4(DENIED4).tcp(1, 25, SYN).bytes(), 3, false},  {v6(DENIED6).tcp(1, 25, SYN).bytes(), 4, false},
      {v4(WATCHED4).tcp(1, 25, SYN).bytes(), 5, false}, {v4(STRANGER4).tcp(1, 25, SYN).bytes(), 0, false},
  };
  for (auto& s : sends)
    for (int i = 0; i < 3; i++) gate.run(s.frame);
  for (auto& s : sends) {
    sg_rule_counters c = gate.maps().rule_counters(s.rule);
    EXPECT_EQ(c.admit_packets, s.admitted ? 3u : 0u) << "rule " << s.rule;
    EXPECT_EQ(c.refuse_packets, s.admitted ? 0u : 3u) << "rule " << s.rule;
    EXPECT_EQ(s.admitted ? c.admit_bytes : c.refuse_bytes, 3 * s.frame.size());
  }
  // Non-SYN traffic is counted against no rule.
  gate.run(v4(STRANGER4).tcp(1, 25, ACK).bytes());
  EXPECT_EQ(gate.maps().rule_counters(0).refuse_packets, 3u);
}

TEST_F(Xdp, NoAllowlistPublishedFailsClosed) {
  XdpGate fresh;
  fresh.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  auto v0 = fresh.maps().reason_counters();
  EXPECT_EQ(fresh.run(v4(EOP4).tcp(1, 25, SYN).bytes()).action, XDP_DROP);
  EXPECT_EQ(fresh.maps().reason_counters()[SG_REASON_NO_ALLOWLIST].packets - v0[SG_REASON_NO_ALLOWLIST].packets, 1u);
  EXPECT_EQ(fresh.run(v4(EOP4).tcp(1, 80, SYN).bytes()).action, XDP_PASS);
}

TEST_F(Xdp, MonitorPassesButCountsAsRefused) {
  gate.maps().set_config(GateConfig{Action::Monitor, {25}, 0});
  auto f = v4(STRANGER4).tcp(1, 25, SYN).bytes();
  RunResult r = gate.run(f);
  EXPECT_EQ(r.action, XDP_PASS);
  EXPECT_EQ(r.out, f);
  EXPECT_EQ(gate.maps().verdict_counters()[SG_VERDICT_MONITOR].packets, 1u);
  EXPECT_EQ(gate.maps().rule_counters(0).refuse_packets, 1u);
}

// The reset, checked field by field against the SYN it answers.
struct ResetCase {
  const char* name;
  Packet syn;
  size_t l2;
  bool v6;
  uint32_t seq;
  unsigned payload;
  bool fin;
};

TEST_F(Xdp, RejectBuildsAnExactReset) {
  gate.maps().set_config(GateConfig{Action::Reject, {25}, 0});
  ResetCase cases[] = {
      {"v4", v4(STRANGER4).tcp(40001, 25, SYN, 1000), 14, false, 1000, 0, false},
      {"v4 options and TCP options", Packet().eth().ipv4(STRANGER4, GW4, 16).tcp(40001, 25, SYN, 0xfffffffe, 0, 20), 14,
       false, 0xfffffffe, 0, false},
      {"v4 VLAN, payload, FIN", Packet().eth().vlan(100).ipv4(STRANGER4, GW4).tcp(40001, 25, SYN | FIN, 77, 10), 18,
       false, 77, 10, true},
      {"v6", v6(STRANGER6).tcp(40001, 25, SYN, 5), 14, true, 5, 0, false},
      {"v6 QinQ ext headers",
       Packet().eth().vlan(7, 0x88a8).vlan(100).ipv6(STRANGER6, GW6).ext(HOP).ext(DSTOPTS, 16).tcp(40001, 25, SYN, 9),
       22, true, 9, 0, false},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<uint8_t> in = c.syn.bytes();
    RunResult r = gate.run(in);
    ASSERT_EQ(r.action, XDP_TX);
    const auto& o = r.out;
    size_t ip_len = c.v6 ? 40 : 20;
    // The frame keeps the SYN's length (the IP length ends the reset), so the
    // program never changes packet data (bpf_xdp_adjust_tail): the kernel
    // would refuse it in a slot of libxdp's dispatcher otherwise.
    ASSERT_EQ(o.size(), in.size());
    ASSERT_GE(o.size(), c.l2 + ip_len + 20);
    // MACs swapped, VLAN tags and ethertypes kept.
    EXPECT_TRUE(std::equal(o.begin(), o.begin() + 6, in.begin() + 6));
    EXPECT_TRUE(std::equal(o.begin() + 6, o.begin() + 12, in.begin()));
    EXPECT_TRUE(std::equal(o.begin() + 12, o.begin() + c.l2, in.begin() + 12));
    const uint8_t* ip = o.data() + c.l2;
    const uint8_t* src_in = in.data() + c.l2 + (c.v6 ? 8 : 12);
    size_t alen = c.v6 ? 16 : 4;
    if (!c.v6) {
      EXPECT_EQ(ip[0], 0x45);
      EXPECT_EQ((ip[2] << 8) | ip[3], 40);
      EXPECT_EQ(ip[8], 64);
      EXPECT_EQ(ip[9], 6);
      EXPECT_EQ(inet_checksum(ip, 20), 0) << "IPv4 header checksum";
      EXPECT_TRUE(std::equal(ip + 16, ip + 20, src_in)) << "reply goes to the sender";
      EXPECT_TRUE(std::equal(ip + 12, ip + 16, src_in + 4));
    } else {
      EXPECT_EQ(ip[0] >> 4, 6);
      EXPECT_EQ((ip[4] << 8) | ip[5], 20);
      EXPECT_EQ(ip[6], 6) << "extension headers dropped";
      EXPECT_EQ(ip[7], 64);
      EXPECT_TRUE(std::equal(ip + 24, ip + 40, src_in));
      EXPECT_TRUE(std::equal(ip + 8, ip + 24, src_in + alen));
    }
    const uint8_t* th = ip + ip_len;
    EXPECT_EQ((th[0] << 8) | th[1], 25);
    EXPECT_EQ((th[2] << 8) | th[3], 40001);
    EXPECT_EQ(uint32_t(th[4] << 24 | th[5] << 16 | th[6] << 8 | th[7]), 0u) << "seq 0";
    uint32_t ack = uint32_t(th[8]) << 24 | th[9] << 16 | th[10] << 8 | th[11];
    EXPECT_EQ(ack, uint32_t(c.seq + c.payload + 1 + (c.fin ? 1 : 0)));
    EXPECT_EQ(th[12] >> 4, 5);
    EXPECT_EQ(th[13], RST | ACK);
    EXPECT_TRUE(tcp_checksum_ok(o, c.l2)) << "TCP checksum";
  }
}

// Past the tag walk nothing is known, not even a source: refused by the
// action in force against the default rule, never reset, never recorded.
TEST_F(Xdp, MoreTagsThanWalkedAreRefusedUnreadUnderEveryAction) {
  pin_to_cpu0();
  auto frame = tagged(SG_MAX_VLAN_TAGS + 1).ipv4(EOP4, GW4).tcp(1, 25, SYN).bytes();
  struct {
    Action action;
    uint32_t xdp, verdict;
  } cases[] = {{Action::Drop, XDP_DROP, SG_VERDICT_DROP},
               {Action::Reject, XDP_DROP, SG_VERDICT_DROP},
               {Action::Monitor, XDP_PASS, SG_VERDICT_MONITOR}};
  for (const auto& c : cases) {
    SCOPED_TRACE(to_string(c.action));
    gate.maps().set_config(GateConfig{c.action, {25}, 0});
    auto r0 = gate.maps().reason_counters();
    auto v0 = gate.maps().verdict_counters();
    uint64_t refused0 = gate.maps().rule_counters(SG_RULE_DEFAULT).refuse_packets;
    RunResult r = gate.run(frame);
    EXPECT_EQ(r.action, c.xdp);
    EXPECT_EQ(r.out, frame);
    EXPECT_EQ(gate.maps().reason_counters()[SG_REASON_TAG_LIMIT].packets - r0[SG_REASON_TAG_LIMIT].packets, 1u);
    EXPECT_EQ(gate.maps().verdict_counters()[c.verdict].packets - v0[c.verdict].packets, 1u);
    EXPECT_EQ(gate.maps().rule_counters(SG_RULE_DEFAULT).refuse_packets - refused0, 1u);
    EXPECT_EQ(gate.maps().rule_counters(1).admit_packets, 0u) << "no lookup: EOP's range is not asked";
  }
  EXPECT_TRUE(gate.maps().recent_refused().empty()) << "no source to record";
}

// A reset goes only from a unicast address to a unicast address, for a frame
// sent by one station to one station; other SYNs are dropped (reject_as_drop). Private
// addresses are ordinary gateway addresses behind NAT.
TEST_F(Xdp, RejectSendsNoResetFromOrToSpecialPurposeAddresses) {
  gate.maps().set_config(GateConfig{Action::Reject, {25}, 0});
  struct Row {
    const char* name;
    std::vector<uint8_t> frame;
    bool reset;
  } rows[] = {
      {"to 255.255.255.255", Packet().eth().ipv4(STRANGER4, "255.255.255.255").tcp(1, 25, SYN).bytes(), false},
      {"to 224.0.0.1 (multicast)", Packet().eth().ipv4(STRANGER4, "224.0.0.1").tcp(1, 25, SYN).bytes(), false},
      {"to 239.255.0.1", Packet().eth().ipv4(STRANGER4, "239.255.0.1").tcp(1, 25, SYN).bytes(), false},
      {"to 240.0.0.1 (reserved)", Packet().eth().ipv4(STRANGER4, "240.0.0.1").tcp(1, 25, SYN).bytes(), false},
      {"to 0.0.0.0", Packet().eth().ipv4(STRANGER4, "0.0.0.0").tcp(1, 25, SYN).bytes(), false},
      {"to 0.1.2.3 (this network)", Packet().eth().ipv4(STRANGER4, "0.1.2.3").tcp(1, 25, SYN).bytes(), false},
      {"to 127.0.0.1", Packet().eth().ipv4(STRANGER4, "127.0.0.1").tcp(1, 25, SYN).bytes(), false},
      {"from 0.0.0.0", Packet().eth().ipv4("0.0.0.0", GW4).tcp(1, 25, SYN).bytes(), false},
      {"from 127.0.0.1", Packet().eth().ipv4("127.0.0.1", GW4).tcp(1, 25, SYN).bytes(), false},
      {"from 255.255.255.255", Packet().eth().ipv4("255.255.255.255", GW4).tcp(1, 25, SYN).bytes(), false},
      {"from 224.1.1.1", Packet().eth().ipv4("224.1.1.1", GW4).tcp(1, 25, SYN).bytes(), false},
      {"v6 to ff02::1", Packet().eth().ipv6(STRANGER6, "ff02::1").tcp(1, 25, SYN).bytes(), false},
      {"v6 to ::", Packet().eth().ipv6(STRANGER6, "::").tcp(1, 25, SYN).bytes(), false},
      {"v6 to ::1", Packet().eth().ipv6(STRANGER6, "::1").tcp(1, 25, SYN).bytes(), false},
      {"v6 to ::ffff:192.0.2.1 (v4-mapped)", Packet().eth().ipv6(STRANGER6, "::ffff:192.0.2.1").tcp(1, 25, SYN).bytes(),
       false},
      {"v6 from ::", Packet().eth().ipv6("::", GW6).tcp(1, 25, SYN).bytes(), false},
      {"v6 from ff05::2", Packet().eth().ipv6("ff05::2", GW6).tcp(1, 25, SYN).bytes(), false},
      {"v6 from ::ffff:203.0.113.1", Packet().eth().ipv6("::ffff:203.0.113.1", GW6).tcp(1, 25, SYN).bytes(), false},
      {"to broadcast MAC", Packet().eth("ff:ff:ff:ff:ff:ff").ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), false},
      {"to IPv4 multicast MAC", Packet().eth("01:00:5e:00:00:01").ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), false},
      {"to IPv6 multicast MAC", Packet().eth("33:33:00:00:00:01").ipv6(STRANGER6, GW6).tcp(1, 25, SYN).bytes(), false},
      {"from broadcast MAC",
       Packet().eth("02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff").ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), false},
      {"from IPv4 multicast MAC",
       Packet().eth("02:00:00:00:00:01", "01:00:5e:00:00:01").ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), false},
      {"v6 from IPv6 multicast MAC",
       Packet().eth("02:00:00:00:00:01", "33:33:00:00:00:01").ipv6(STRANGER6, GW6).tcp(1, 25, SYN).bytes(), false},
      {"from a group MAC, bit 0 only",
       Packet().eth("02:00:00:00:00:01", "03:00:00:00:00:02").ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), false},
      {"from a locally administered unicast MAC",
       Packet().eth("02:00:00:00:00:01", "02:00:00:00:00:03").ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes(), true},
      {"to 10.1.2.3 (private, behind NAT)", Packet().eth().ipv4(STRANGER4, "10.1.2.3").tcp(1, 25, SYN).bytes(), true},
      {"to 192.168.1.25", Packet().eth().ipv4(STRANGER4, "192.168.1.25").tcp(1, 25, SYN).bytes(), true},
      {"from 172.16.0.9", Packet().eth().ipv4("172.16.0.9", GW4).tcp(1, 25, SYN).bytes(), true},
      {"v6 to fd00::25 (unique local)", Packet().eth().ipv6(STRANGER6, "fd00::25").tcp(1, 25, SYN).bytes(), true},
      {"v6 to ::2 (not loopback)", Packet().eth().ipv6(STRANGER6, "::2").tcp(1, 25, SYN).bytes(), true},
      {"223.255.255.255 (last unicast)", Packet().eth().ipv4(STRANGER4, "223.255.255.255").tcp(1, 25, SYN).bytes(),
       true},
      {"to 1.0.0.0", Packet().eth().ipv4(STRANGER4, "1.0.0.0").tcp(1, 25, SYN).bytes(), true},
      {"to 126.255.255.255", Packet().eth().ipv4(STRANGER4, "126.255.255.255").tcp(1, 25, SYN).bytes(), true},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    auto r0 = gate.maps().reason_counters();
    RunResult r = gate.run(row.frame);
    auto r1 = gate.maps().reason_counters();
    if (row.reset) {
      EXPECT_EQ(r.action, XDP_TX);
      EXPECT_EQ(r1[SG_REASON_DEFAULT].packets - r0[SG_REASON_DEFAULT].packets, 1u);
    } else {
      EXPECT_EQ(r.action, XDP_DROP);
      EXPECT_EQ(r.out, row.frame);
      EXPECT_EQ(r1[SG_REASON_REJECT_AS_DROP].packets - r0[SG_REASON_REJECT_AS_DROP].packets, 1u);
    }
  }
}

// On a tunnel device without an Ethernet header (IPIP, GRE, WireGuard) the
// packet starts at the IP header; the loader tells each program copy so.
TEST(XdpNoEthernet, PacketsStartAtTheIpHeader) {
  ProgramOptions o;
  o.no_ethernet = true;
  XdpGate gate(o);
  gate.maps().set_config(GateConfig{Action::Reject, {25}, 0});
  gate.maps().publish(kRanges);
  auto ip_only = [](Packet p) {
    auto b = p.bytes();
    return std::vector<uint8_t>(b.begin() + 14, b.end());
  };
  struct Row {
    const char* name;
    std::vector<uint8_t> frame;
    uint32_t action, reason;
  } rows[] = {
      {"v4 SYN from EOP", ip_only(v4(EOP4).tcp(1, 25, SYN)), XDP_PASS, SG_REASON_RULE_ADMIT},
      {"v6 SYN from EOP", ip_only(v6(EOP6).tcp(1, 25, SYN)), XDP_PASS, SG_REASON_RULE_ADMIT},
      // No Ethernet header to send a reset back on: dropped.
      {"v4 SYN from stranger", ip_only(v4(STRANGER4).tcp(1, 25, SYN)), XDP_DROP, SG_REASON_REJECT_AS_DROP},
      {"v6 SYN from stranger", ip_only(v6(STRANGER6).ext(HOP).tcp(1, 25, SYN)), XDP_DROP, SG_REASON_REJECT_AS_DROP},
      {"v4 ACK", ip_only(v4(STRANGER4).tcp(1, 25, ACK)), XDP_PASS, SG_REASON_NOT_SYN},
      {"version 5",
       [&] {
         auto b = ip_only(v4(STRANGER4).tcp(1, 25, SYN));
         b[0] = 0x55;
         return b;
       }(),
       XDP_PASS, SG_REASON_NOT_IP},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    auto r0 = gate.maps().reason_counters();
    RunResult r = gate.run(row.frame);
    EXPECT_EQ(r.action, row.action);
    EXPECT_EQ(gate.maps().reason_counters()[row.reason].packets - r0[row.reason].packets, 1u);
    EXPECT_EQ(r.out, row.frame);
  }
}

// Why the loader refuses a GRE device without a fixed remote: its packets
// reach XDP from the outer IP header (ip_gre leaves the MAC header there for
// ipgre_header_parse()), and a copy reading from the IP header sees GRE, not
// TCP: the inner SYN would pass. links.cpp keeps such a device unguarded
// and says so (test_links).
TEST(XdpNoEthernet, AnOuterGreHeaderHidesTheInnerSyn) {
  ProgramOptions o;
  o.no_ethernet = true;
  XdpGate gate(o);
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  gate.maps().publish(kRanges);
  auto inner_full = v4(STRANGER4).tcp(1, 25, SYN).bytes();
  std::vector<uint8_t> inner(inner_full.begin() + 14, inner_full.end());
  EXPECT_EQ(gate.run(inner).action, XDP_DROP) << "the inner SYN alone is refused";
  std::vector<uint8_t> outer = {
      0x45, 0,  0,   0, 0,   0, 0x40, 0, 64, 47, 0,    0,
      198,  51, 100, 1, 192, 0, 2,    1, 0,  0,  0x08, 0x00};  // IPv4 (GRE) from a peer, then GRE carrying IPv4
  uint16_t total = uint16_t(outer.size() + inner.size());
  outer[2] = uint8_t(total >> 8);
  outer[3] = uint8_t(total);
  outer.insert(outer.end(), inner.begin(), inner.end());
  auto r0 = gate.maps().reason_counters();
  EXPECT_EQ(gate.run(outer).action, XDP_PASS);
  EXPECT_EQ(gate.maps().reason_counters()[SG_REASON_NOT_TCP].packets - r0[SG_REASON_NOT_TCP].packets, 1u);
}

// Nothing the program reads as fixed can be changed once it is loaded, by
// anyone who can write its maps: verifier_one (the tag walk's offset is
// multiplied by it) is frozen, and the program has no writable global
// (every map of its own data is .rodata, read-only and frozen). For each
// copy: with and without an Ethernet header.
TEST(XdpLoaded, WhatTheProgramReadsAsFixedCannotBeWritten) {
  for (bool no_ethernet : {false, true}) {
    SCOPED_TRACE(no_ethernet ? "no_ethernet copy" : "Ethernet copy");
    ProgramOptions o;
    o.no_ethernet = no_ethernet;
    XdpGate gate(o);
    uint32_t zero = 0;

    // The maps of the loaded program, as the kernel has them: verifier_one
    // holds 1 and refuses writes; every other global section (its name
    // holds a dot) is read-only to the program and frozen.
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(gate.prog_fd(), &info, &len), 0);
    std::vector<uint32_t> ids(info.nr_map_ids);
    info = {};
    info.nr_map_ids = uint32_t(ids.size());
    info.map_ids = reinterpret_cast<uint64_t>(ids.data());
    len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(gate.prog_fd(), &info, &len), 0);
    size_t globals = 0, ones = 0;
    for (uint32_t id : ids) {
      int mfd = bpf_map_get_fd_by_id(id);
      ASSERT_GE(mfd, 0);
      bpf_map_info mi{};
      uint32_t mlen = sizeof(mi);
      ASSERT_EQ(bpf_obj_get_info_by_fd(mfd, &mi, &mlen), 0);
      if (std::strcmp(mi.name, "verifier_one") == 0) {
        ones++;
        uint32_t value = 0, other = 0;
        ASSERT_EQ(bpf_map_lookup_elem(mfd, &zero, &value), 0);
        EXPECT_EQ(value, 1u);
        EXPECT_NE(bpf_map_update_elem(mfd, &zero, &other, BPF_ANY), 0);
        EXPECT_EQ(errno, EPERM);
        ASSERT_EQ(bpf_map_lookup_elem(mfd, &zero, &value), 0);
        EXPECT_EQ(value, 1u);
        EXPECT_FALSE(mi.map_flags & BPF_F_RDONLY_PROG) << "the verifier would read it as a constant";
      } else if (std::strchr(mi.name, '.')) {
        SCOPED_TRACE(mi.name);
        globals++;
        EXPECT_TRUE(mi.map_flags & BPF_F_RDONLY_PROG);
        std::vector<uint8_t> v(mi.value_size);
        EXPECT_NE(bpf_map_update_elem(mfd, &zero, v.data(), BPF_ANY), 0);
      }
      ::close(mfd);
    }
    EXPECT_EQ(ones, 1u);
    EXPECT_EQ(globals, 1u) << "only .rodata";
    // The walk still reads through tags.
    gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
    gate.maps().publish(kRanges);
    if (!no_ethernet) {
      EXPECT_EQ(gate.run(Packet().eth().vlan(0).vlan(7).ipv4(STRANGER4, GW4).tcp(1, 25, SYN).bytes()).action, XDP_DROP);
      EXPECT_EQ(gate.run(Packet().eth().vlan(0).vlan(7).ipv4(EOP4, GW4).tcp(1, 25, SYN).bytes()).action, XDP_PASS);
    }
  }
}

TEST_F(Xdp, RejectOfAFragmentDrops) {
  gate.maps().set_config(GateConfig{Action::Reject, {25}, 0});
  EXPECT_EQ(gate.run(Packet().eth().ipv4(STRANGER4, GW4, 0, 0, true).tcp(1, 25, SYN).bytes()).action, XDP_DROP);
  EXPECT_EQ(gate.maps().reason_counters()[SG_REASON_REJECT_AS_DROP].packets, 1u);
}

TEST_F(Xdp, EveryTruncationOfASynIsSafe) {
  // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
  for (Action act : {Action::Drop, Action::Reject}) {
    gate.maps().set_config(GateConfig{act, {25}, 0});
    // Each SYN, and the length from which its fixed 20-byte TCP header is
    // whole (TCP options may be cut: the SYN is still judged).
    std::pair<std::vector<uint8_t>, size_t> syns[] = {
        {v4(STRANGER4).tcp(1, 25, SYN, 1, 0, 12).bytes(), 14 + 20 + 20},
        {Packet().eth().vlan(5).ipv6(STRANGER6, GW6).ext(HOP).tcp(1, 25, SYN).bytes(), 18 + 40 + 8 + 20},
    };
    for (const auto& [full, judged_from] : syns) {
      for (size_t len = 14; len <= full.size(); len++) {
        SCOPED_TRACE("length " + std::to_string(len));
        std::vector<uint8_t> cut(full.begin(), full.begin() + len);
        RunResult r = gate.run(cut);
        bool whole_header = len >= judged_from;
        if (whole_header)
          EXPECT_EQ(r.action, act == Action::Drop ? XDP_DROP : XDP_TX);
        else {
          EXPECT_EQ(r.action, XDP_PASS);
          EXPECT_EQ(r.out, cut);
        }
      }
    }
  }
}

// A group whose base would carry a /24 entry number past 32 bits (a corrupt
// table) asks the trie. Truncated, the number would name another block's
// entry: here the pool's first, which is not the deny range's.
TEST_F(Xdp, AnEntryNumberPast32BitsAsksTheTrie) {
  sg_config cfg{};
  uint32_t zero = 0;
  ASSERT_EQ(bpf_map_lookup_elem(gate.map_fd("gate_config"), &zero, &cfg), 0);
  const uint32_t slot = cfg.state.active_slot & 1;
  const int prefilter = gate.map_fd("prefilter_v4");
  const uint8_t a[4] = {40, 92, 66, 7};  // DENIED4
  const uint32_t b20 = uint32_t(a[0]) << 12 | uint32_t(a[1]) << 4 | a[2] >> 4, pos = b20 & 63;
  sg_chunk c{};
  uint32_t idx = SG_DIR_INDEX(slot) + (b20 >> 6) / SG_DIR_WORDS_PER_CHUNK;
  ASSERT_EQ(bpf_map_lookup_elem(prefilter, &idx, &c), 0);
  const auto* d = reinterpret_cast<const sg_dir_word*>(&c) + ((b20 >> 6) & (SG_DIR_WORDS_PER_CHUNK - 1));
  ASSERT_TRUE((d->bits >> pos) & 1);
  const uint32_t n20 = d->rank + uint32_t(__builtin_popcountll(d->bits & ((1ull << pos) - 1)));
  const uint32_t gn = n20 / SG_GROUP_MASKS, p = (n20 - gn * SG_GROUP_MASKS) * 16 + (a[2] & 15);
  idx = SG_GROUP_INDEX(slot) + gn / SG_GROUPS_PER_CHUNK;
  ASSERT_EQ(bpf_map_lookup_elem(prefilter, &idx, &c), 0);
  auto* g = reinterpret_cast<sg_group*>(&c) + gn % SG_GROUPS_PER_CHUNK;
  const uint32_t k =
      p < 64 ? __builtin_popcountll(g->masks & ((1ull << p) - 1))
             : __builtin_popcountll(g->masks) + __builtin_popcountll(g->masks_hi & ((1ull << (p - 64)) - 1));
  ASSERT_GE(k, 2u);  // every /24 of the /15 is set: at least 40.92.64 and .65 before it
  g->base = 0u - k;  // base + k = 2^32, the pool's first entry once truncated
  ASSERT_EQ(bpf_map_update_elem(prefilter, &idx, &c, BPF_ANY), 0);
  EXPECT_EQ(gate.run(v4(DENIED4).tcp(1, 25, SYN).bytes()).action, uint32_t(XDP_DROP));
  EXPECT_EQ(gate.maps().rule_counters(3).refuse_packets, 1u);
  EXPECT_EQ(gate.maps().reason_counters()[SG_REASON_RULE_DENY].packets, 1u);
}

// The packets passed unjudged, looped on every CPU: each is counted once,
// packets and bytes, under its reason and the pass verdict, and under
// nothing else, wherever the program keeps the pass path's counts.
TEST_F(Xdp, PassesAreCountedExactlyOnEveryCpu) {
  const uint64_t kRuns = 10000;
  const auto ack = v4(STRANGER4).tcp(1, 25, ACK).bytes(), ack6 = v6(STRANGER6).tcp(1, 25, ACK).bytes(),
             udp = v4(STRANGER4).udp(1, 25).bytes();
  cpu_set_t before;
  ASSERT_EQ(sched_getaffinity(0, sizeof(before), &before), 0);
  uint64_t cpus = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &before)) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
    for (const auto* f : {&ack, &ack6, &udp}) run_repeated(gate, *f, uint32_t(kRuns));
    cpus++;
  }
  sched_setaffinity(0, sizeof(before), &before);
  auto r = gate.maps().reason_counters();
  EXPECT_EQ(r[SG_REASON_NOT_SYN].packets, 2 * kRuns * cpus);
  EXPECT_EQ(r[SG_REASON_NOT_SYN].bytes, kRuns * cpus * (ack.size() + ack6.size()));
  EXPECT_EQ(r[SG_REASON_NOT_TCP].packets, kRuns * cpus);
  EXPECT_EQ(r[SG_REASON_NOT_TCP].bytes, kRuns * cpus * udp.size());
  auto v = gate.maps().verdict_counters();
  EXPECT_EQ(v[SG_VERDICT_PASS].packets, 3 * kRuns * cpus);
  EXPECT_EQ(v[SG_VERDICT_PASS].bytes, kRuns * cpus * (ack.size() + ack6.size() + udp.size()));
  for (uint32_t i = SG_VERDICT_PASS + 1; i < SG_VERDICT_MAX; i++) EXPECT_EQ(v[i].packets, 0u) << i;
}

TEST_F(Xdp, RecentRefusedRecordsCountsTimesAndRule) {
  pin_to_cpu0();
  for (int i = 0; i < 4; i++) gate.run(v4(DENIED4).tcp(1, 25, SYN).bytes());
  gate.run(v6(STRANGER6).tcp(1, 587, SYN).bytes());  // 587 is guarded in this fixture
  auto recent = gate.maps().recent_refused();
  ASSERT_EQ(recent.size(), 2u);
  for (const auto& s : recent) {
    if (s.address == Cidr::parse_address(DENIED4)) {
      EXPECT_EQ(s.count, 4u);
      EXPECT_EQ(s.rule_id, 3u);
      EXPECT_LE(s.first_seen_ns, s.last_seen_ns);
      EXPECT_EQ(s.last_port, 25);
    } else {
      EXPECT_EQ(s.address, Cidr::parse_address(STRANGER6));
      EXPECT_EQ(s.rule_id, 0u);
      EXPECT_EQ(s.last_port, 587);
    }
  }
}

TEST(XdpRecent, KeepsTheMostRecentSourcesAndAHotOneWhenFull) {
  pin_to_cpu0();
  ProgramOptions o;
  o.recent_sources = 64;
  XdpGate gate(o);
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  gate.maps().publish(kRanges);
  const char* kHot = "198.51.100.99";
  auto source = [](int i) { return "198.18." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1); };
  for (int i = 0; i < 1000; i++) {
    gate.run(v4(source(i).c_str()).tcp(1, 25, SYN).bytes());
    gate.run(v4(kHot).tcp(1, 25, SYN).bytes());
  }
  auto recent = gate.maps().recent_refused();
  // Full, and never more than its size.
  EXPECT_EQ(recent.size(), 64u);
  std::map<Cidr, uint64_t> count;
  for (const auto& s : recent) count[s.address] = s.count;
  // Least recently seen goes first: a source seen all along stays, with every
  // refusal counted; so do the newest ones (a set keeps its last four).
  EXPECT_EQ(count[Cidr::parse_address(kHot)], 1000u);
  for (int i = 997; i < 1000; i++) EXPECT_EQ(count[Cidr::parse_address(source(i))], 1u) << source(i);
  // The oldest are gone: 1000 sources through 64 ways.
  for (int i = 0; i < 4; i++) EXPECT_EQ(count.count(Cidr::parse_address(source(i))), 0u) << source(i);
}

TEST(XdpRecent, TheTimesOfOneCpuAreStrictlyOrderedWithinATick) {
  // Refusals a few microseconds apart fall in one tick of the coarse clock;
  // their times must still order them, or the table's least-recently-seen
  // eviction cannot tell the tick's oldest source from its newest.
  pin_to_cpu0();
  XdpGate gate;
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  gate.maps().publish(kRanges);
  const int kSources = 16;
  auto source = [](int i) { return "198.18.7." + std::to_string(i + 1); };
  for (int i = 0; i < kSources; i++) gate.run(v4(source(i).c_str()).tcp(1, 25, SYN).bytes());
  std::map<Cidr, uint64_t> seen;
  for (const auto& s : gate.maps().recent_refused()) seen[s.address] = s.last_seen_ns;
  ASSERT_EQ(seen.size(), size_t(kSources));
  for (int i = 1; i < kSources; i++)
    EXPECT_LT(seen[Cidr::parse_address(source(i - 1))], seen[Cidr::parse_address(source(i))]) << source(i);
}

TEST(XdpRecent, DefaultRuleRefusalsAreSampledAndKnownRangesRecordedBeside) {
  pin_to_cpu0();
  XdpGate gate;
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  gate.maps().publish(kRanges);
  // The budget of the default rule's sources is spent after
  // SG_RECENT_DEFAULT_PER_SEC.
  const uint32_t kBurst = 3 * SG_RECENT_DEFAULT_PER_SEC;
  run_repeated(gate, v4(STRANGER4).tcp(1, 25, SYN).bytes(), kBurst);
  gate.run(v4(WATCHED4).tcp(1, 25, SYN).bytes());
  std::map<Cidr, uint64_t> count;
  for (const auto& r : gate.maps().recent_refused()) count[r.address] = r.count;
  EXPECT_EQ(count[Cidr::parse_address(STRANGER4)], uint64_t(SG_RECENT_DEFAULT_PER_SEC));
  EXPECT_EQ(gate.maps().recent_skipped(), uint64_t(kBurst - SG_RECENT_DEFAULT_PER_SEC));
  // A source of a range is recorded: its budget is another.
  EXPECT_EQ(count[Cidr::parse_address(WATCHED4)], 1u);
  // With no events configured, none is counted as held back.
  EXPECT_EQ(gate.maps().events_suppressed(), 0u);
  // Every refusal is still counted against the default rule.
  EXPECT_EQ(gate.maps().rule_counters(SG_RULE_DEFAULT).refuse_packets, uint64_t(kBurst));
}

// Counts the events the program sends, as smtpgated's consumer reads them.
class EventCounter {
 public:
  explicit EventCounter(XdpGate& gate) : rb_(ring_buffer__new(gate.maps().events_fd(), on_event, &seen_, nullptr)) {}
  ~EventCounter() {
    if (rb_) ring_buffer__free(rb_);
  }
  EventCounter(const EventCounter&) = delete;
  EventCounter& operator=(const EventCounter&) = delete;
  bool ok() const { return rb_ != nullptr; }
  uint64_t consume() {
    ring_buffer__consume(rb_);
    return seen_;
  }

 private:
  static int on_event(void* ctx, void*, size_t) {
    ++*static_cast<uint64_t*>(ctx);
    return 0;
  }
  uint64_t seen_ = 0;
  ring_buffer* rb_;
};

std::map<Cidr, uint64_t> recent_counts(XdpGate& gate) {
  std::map<Cidr, uint64_t> count;
  for (const auto& r : gate.maps().recent_refused()) count[r.address] = r.count;
  return count;
}

// Once a default-rule refusal finds both budgets (recorded sources, events)
// spent, the rest of its tick takes a shorter path: each refusal is counted
// as skipped and suppressed and nothing else. The counts are still those of
// the whole path, whichever budget is spent first; a range's source is still
// recorded; both budgets come back with the next second.
void burst_past_both_budgets(uint32_t events_per_sec) {
  pin_to_cpu0();
  XdpGate gate;
  gate.maps().set_config(GateConfig{Action::Drop, {25}, events_per_sec});
  gate.maps().publish(kRanges);
  EventCounter events(gate);
  ASSERT_TRUE(events.ok());
  const uint64_t kBurst = 3 * SG_RECENT_DEFAULT_PER_SEC;
  const auto t0 = std::chrono::steady_clock::now();
  run_repeated(gate, v4(STRANGER4).tcp(1, 25, SYN).bytes(), uint32_t(kBurst));
  gate.run(v4(WATCHED4).tcp(1, 25, SYN).bytes());
  const bool one_window = std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(900);
  uint64_t seen = events.consume();
  auto count = recent_counts(gate);
  EXPECT_EQ(count[Cidr::parse_address(WATCHED4)], 1u);  // a range's source: its budget is another
  EXPECT_EQ(gate.maps().rule_counters(SG_RULE_DEFAULT).refuse_packets, kBurst);
  // The quiet path's drops, counted on the CPU's state line, are in the
  // packet counters too.
  EXPECT_EQ(gate.maps().reason_counters()[SG_REASON_DEFAULT].packets, kBurst);
  EXPECT_EQ(gate.maps().verdict_counters()[SG_VERDICT_DROP].packets, kBurst + 1);
  // Whatever the windows: each refusal sent or suppressed, each default-rule
  // one recorded or skipped.
  EXPECT_EQ(seen + gate.maps().events_suppressed(), kBurst + 1);
  EXPECT_EQ(count[Cidr::parse_address(STRANGER4)] + gate.maps().recent_skipped(), kBurst);
  // The ranges' budget is another.
  EXPECT_EQ(gate.maps().range_skipped(), 0u);
  if (one_window) {  // the usual case, by far: the burst takes milliseconds
    EXPECT_EQ(count[Cidr::parse_address(STRANGER4)], uint64_t(SG_RECENT_DEFAULT_PER_SEC));
    EXPECT_EQ(seen, uint64_t(events_per_sec));
  } else {
    std::cerr << "the burst took over 0.9 s: its exact counts are not checked\n";
  }

  // The next second: a new source of the default rule is recorded and sent.
  const uint64_t skipped = gate.maps().recent_skipped();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const char* kLater = "203.0.113.99";
  gate.run(v4(kLater).tcp(1, 25, SYN).bytes());
  EXPECT_EQ(recent_counts(gate)[Cidr::parse_address(kLater)], 1u);
  EXPECT_EQ(events.consume(), seen + 1);
  EXPECT_EQ(gate.maps().recent_skipped(), skipped);
}

TEST(XdpRecent, SpentBudgetsCountEveryRefusalWhenEventsRunOutFirst) { burst_past_both_budgets(20); }

// 4500 events (of 40 bytes, 48 with the ring's header) fit the 256 KiB ring
// before it is read.
TEST(XdpRecent, SpentBudgetsCountEveryRefusalWhenRecordingRunsOutFirst) { burst_past_both_budgets(4500); }

// A spoofed flood from a range: its sources are recorded within the ranges'
// own budget, then the rest of the tick takes the quiet path; every refusal
// is still counted against the range, and the default rule's budget is left
// whole.
void range_burst(Action action) {
  pin_to_cpu0();
  XdpGate gate;
  gate.maps().set_config(GateConfig{action, {25}, 20});
  gate.maps().publish(kRanges);
  EventCounter events(gate);
  ASSERT_TRUE(events.ok());
  const uint64_t kBurst = 2 * SG_RECENT_RANGE_PER_SEC;
  const auto t0 = std::chrono::steady_clock::now();
  run_repeated(gate, v4(WATCHED4).tcp(1, 25, SYN).bytes(), uint32_t(kBurst));
  gate.run(v4(STRANGER4).tcp(1, 25, SYN).bytes());
  const bool one_window = std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(900);
  auto count = recent_counts(gate);
  EXPECT_EQ(count[Cidr::parse_address(STRANGER4)], 1u);
  EXPECT_EQ(gate.maps().recent_skipped(), 0u);
  EXPECT_EQ(gate.maps().rule_counters(5).refuse_packets, kBurst);
  EXPECT_EQ(gate.maps().reason_counters()[SG_REASON_RULE_WATCH].packets, kBurst);
  EXPECT_EQ(events.consume() + gate.maps().events_suppressed(), kBurst + 1);
  // Whatever the windows: each of the range's refusals recorded or skipped.
  EXPECT_EQ(count[Cidr::parse_address(WATCHED4)] + gate.maps().range_skipped(), kBurst);
  if (one_window) {
    EXPECT_EQ(count[Cidr::parse_address(WATCHED4)], uint64_t(SG_RECENT_RANGE_PER_SEC));
    EXPECT_EQ(gate.maps().range_skipped(), kBurst - SG_RECENT_RANGE_PER_SEC);
  } else {
    std::cerr << "the burst took over 0.9 s: its exact counts are not checked\n";
  }
}

TEST(XdpRecent, ARangesSourcesAreRecordedWithinTheirOwnBudget) { range_burst(Action::Drop); }

TEST(XdpRecent, ARangesSourcesAreRecordedWithinTheirOwnBudgetUnderMonitor) { range_burst(Action::Monitor); }

TEST(XdpRecent, ASourceSeenOnSeveralCpusIsOneRow) {
  XdpGate gate;
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  gate.maps().publish(kRanges);
  int cpus = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && cpus < 2; cpu++) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) continue;
    gate.run(v4(STRANGER4).tcp(1, 25, SYN).bytes());
    cpus++;
  }
  if (cpus < 2) GTEST_SKIP() << "needs two CPUs";
  auto recent = gate.maps().recent_refused();
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0].count, 2u);
  EXPECT_LE(recent[0].first_seen_ns, recent[0].last_seen_ns);
}

TEST(XdpEvents, RateLimitHoldsUnderABurst) {
  XdpGate gate;
  const uint32_t kBudget = 50;
  gate.maps().set_config(GateConfig{Action::Drop, {25}, kBudget});
  gate.maps().publish(kRanges);
  EventCounter events(gate);
  ASSERT_TRUE(events.ok());
  run_repeated(gate, v4(STRANGER4).tcp(1, 25, SYN).bytes(), 1000);  // within one window
  EXPECT_EQ(events.consume(), kBudget);
  EXPECT_EQ(gate.maps().events_suppressed(), 1000 - kBudget);
}

TEST(XdpAtomicReplace, ConcurrentRunsSeeOldOrNewNeverNone) {
  XdpGate gate;
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  // Set A admits 40.92.0.0/15 and 52.100.0.0/14; set B admits 40.92.0.0/15
  // and 104.47.0.0/17. 40.92/15 is in both: always admitted, same rule id.
  std::vector<TrieEntry> a = {E("40.92.0.0/15", 1, RuleKind::Admit), E("52.100.0.0/14", 2, RuleKind::Admit)};
  std::vector<TrieEntry> b = {E("40.92.0.0/15", 1, RuleKind::Admit), E("104.47.0.0/17", 3, RuleKind::Admit)};
  gate.maps().publish(a);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> runs{0}, bad{0};
  auto worker = [&] {
    auto both = v4("40.92.0.10").tcp(1, 25, SYN).bytes();
    while (!stop) {
      if (gate.run(both).action != XDP_PASS) bad++;
      runs++;
    }
  };
  std::thread t1(worker), t2(worker);
  for (int i = 0; i < 200; i++) gate.maps().publish(i % 2 ? a : b);
  stop = true;
  t1.join();
  t2.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(runs.load(), 100u);
  auto v = gate.maps().reason_counters();
  EXPECT_EQ(v[SG_REASON_NO_ALLOWLIST].packets, 0u);
  EXPECT_EQ(gate.maps().rule_counters(1).admit_packets, runs.load());
}

}  // namespace
