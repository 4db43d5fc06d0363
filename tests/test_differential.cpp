// Differential testing: a reference classifier written from the packet-path
// rules (tests/reference) against the real program under BPF_PROG_TEST_RUN.
// The suite's short run; the long run is build/tests/sg_differential.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "differential.hpp"
#include "packet_builder.hpp"
#include "smtpgate_abi.h"

using namespace sgref;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes what disagreed where a developer can check it in, and says so.
std::string save(const std::vector<Disagreement>& ds) {
  fs::path dir = fs::path(SG_BINARY_DIR) / "tests" / "regressions-new";
  fs::create_directories(dir);
  std::string msg;
  for (const auto& d : ds) {
    std::string name = d.c.note;
    for (char& ch : name)
      if (ch == ' ') ch = '-';
    fs::path f = dir / (name + ".case");
    std::ofstream(f) << to_text(d.c) << "# program: " << describe(d.got) << "\n";
    msg += d.kind + ": " + d.what + " differs: want " + describe(d.c.expected) + ", got " + describe(d.got) +
           "; saved " + f.string() + " (copy it to tests/regressions/)\n";
  }
  return msg;
}

Prefix prefix(int family, std::initializer_list<uint8_t> bytes, unsigned len, uint32_t rule, Kind kind) {
  Prefix p;
  p.family = family;
  std::copy(bytes.begin(), bytes.end(), p.addr.begin());
  p.len = len;
  p.rule_id = rule;
  p.kind = kind;
  return p;
}

}  // namespace

TEST(Differential, HundredThousandRandomPacketsAgree) {
  uint64_t seed = 20251124;
  if (const char* s = std::getenv("SG_DIFF_SEED")) seed = std::stoull(s);
  Differential d;
  RunStats st = d.run(seed, 100000, 2000, 20);
  EXPECT_EQ(st.packets, 100000u);
  // The generator must reach every outcome, or agreement proves little.
  for (uint32_t v = 0; v < SG_VERDICT_MAX; v++) EXPECT_GT(st.by_verdict[v], 100u) << "verdict " << v;
  for (uint32_t r = 0; r < SG_REASON_MAX; r++) EXPECT_GT(st.by_reason[r], 20u) << "reason " << r;
  EXPECT_TRUE(st.disagreements.empty()) << "seed " << seed << "\n" << save(st.disagreements);
  // Held against Linux: the reference judges every guarded SYN Linux delivers.
  EXPECT_GT(st.linux_guarded, 5000u);
  EXPECT_EQ(st.spec_bypasses, 0u) << (st.spec_bypass_cases.empty() ? "" : st.spec_bypass_cases[0].note);
}

// Large allowlists of the flood's shape (thousands of random /22 to /28
// prefixes in one /8, and some IPv6): SYNs from sources inside the prefixes,
// at their edges and in empty space agree on verdict, rule and counters,
// whether the table answers or, past a pool too small for the nodes (64
// chunks) or even the /24 entries (16), the trie. Every packet reads every
// rule's counters, which bounds the size here; tests/test_stride_table.cpp
// holds the table alone against larger ones.
TEST(Differential, LargeRandomAllowlistsAgreeInsideAndOutside) {
  using namespace sgtest;
  uint64_t seed = 20261207;
  if (const char* s = std::getenv("SG_DIFF_SEED")) seed = std::stoull(s);
  std::mt19937_64 rng(seed);
  auto dotted = [](uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." + std::to_string(a >> 8 & 255) + "." +
           std::to_string(a & 255);
  };
  for (uint32_t chunks : {4096u, 64u, 16u}) {
    SCOPED_TRACE("table_chunks " + std::to_string(chunks));
    GateSetup s;
    std::set<std::pair<uint32_t, unsigned>> seen;
    std::vector<std::pair<uint32_t, unsigned>> v4;
    while (v4.size() < 2000) {
      unsigned len = 22 + unsigned(rng() % 7);
      uint32_t a = (40u << 24 | uint32_t(rng() & 0x00ffffff)) & ~((1u << (32 - len)) - 1);  // in 40.0.0.0/8
      if (!seen.insert({a, len}).second) continue;
      v4.push_back({a, len});
      s.prefixes.push_back(prefix(4, {uint8_t(a >> 24), uint8_t(a >> 16), uint8_t(a >> 8), uint8_t(a)}, len,
                                  uint32_t(s.prefixes.size() + 1), static_cast<Kind>(rng() % 3)));
    }
    for (int i = 0; i < 50; i++)
      s.prefixes.push_back(prefix(6, {0x2a, 0x01, uint8_t(rng()), uint8_t(rng()), uint8_t(rng())}, 40,
                                  uint32_t(s.prefixes.size() + 1), static_cast<Kind>(rng() % 3)));
    Differential d(chunks);
    size_t judged = 0, in_range = 0;
    for (int i = 0; i < 1000; i++) {
      const auto& [a, len] = v4[rng() % v4.size()];
      uint32_t size = 1u << (32 - len), src;
      switch (i % 4) {
        case 0: src = a + uint32_t(rng() % size); break;                // inside
        case 1: src = rng() % 2 ? a - 1 : a + size; break;              // just outside
        case 2: src = 40u << 24 | uint32_t(rng() & 0x00ffffff); break;  // the prefixes' /8
        default: src = uint32_t(rng()); break;                          // anywhere
      }
      Case c{s, Packet().eth().ipv4(dotted(src), "192.0.2.1").tcp(40000, 25, SYN).bytes(), {}, ""};
      c.expected = classify(c.frame, s);
      c.note = "large allowlist " + std::to_string(chunks) + " " + dotted(src);
      Outcome got = d.observe(c);
      ASSERT_EQ(got, c.expected) << dotted(src) << ": want " << describe(c.expected) << ", got " << describe(got);
      judged += got.judged;
      in_range += got.rule_id != 0;
    }
    EXPECT_EQ(judged, 1000u);
    EXPECT_GT(in_range, 250u);
    EXPECT_GT(judged - in_range, 400u);
  }
}

TEST(Differential, EveryTruncationOfEveryShapeAgrees) {
  using namespace sgtest;
  GateSetup base;
  base.ports = {25, 587};
  base.prefixes = {prefix(4, {40, 92}, 15, 1, Kind::Admit), prefix(4, {40, 92, 66}, 24, 2, Kind::Deny),
                   prefix(6, {0x2a, 0x01, 0x01, 0x11, 0xf4}, 40, 3, Kind::Admit)};
  const char* A4 = "40.92.66.1";
  const char* A6 = "2a01:111:f400::1";
  std::vector<std::vector<uint8_t>> shapes = {
      Packet().eth().ipv4(A4, "192.0.2.1", 8).tcp(1, 25, SYN, 7, 5, 8).bytes(),
      Packet().eth().vlan(3, 0x88a8).vlan(4).ipv4(A4, "192.0.2.1").tcp(1, 587, SYN | FIN, 9, 3).bytes(),
      Packet().eth().ipv4(A4, "192.0.2.1", 0, 0, true).tcp(1, 25, ACK).bytes(),
      Packet().eth().ipv6(A6, "2001:db8::1").ext(HOP).ext(AH, 16).ext(ROUTING, 16).tcp(1, 25, SYN, 3, 2).bytes(),
      Packet().eth().vlan(9).ipv6(A6, "2001:db8::1").ext(DSTOPTS).frag6(0, true).tcp(1, 25, SYN).bytes(),
      Packet()
          .eth()
          .ipv6(A6, "2001:db8::1")
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
      // Priority tags up to and past the walk limit; a first fragment whose
      // chain is cut at every length.
      Packet().eth().vlan(0).vlan(0, 0x88a8).vlan(0).vlan(7).ipv4(A4, "192.0.2.1").tcp(1, 25, SYN).bytes(),
      [&] {
        Packet p = Packet().eth();
        for (int i = 0; i < 9; i++) p.vlan(0);
        return p.ipv4(A4, "192.0.2.1").tcp(1, 25, SYN).bytes();
      }(),
      Packet().eth().ipv6(A6, "2001:db8::1").frag6(0, true).ext(DSTOPTS, 16).ext(DSTOPTS).tcp(1, 25, SYN).bytes(),
  };
  Differential d;
  size_t compared = 0;
  for (Refusal r : {Refusal::Drop, Refusal::Reject, Refusal::Monitor}) {
    GateSetup s = base;
    s.refusal = r;
    for (const auto& full : shapes)
      for (size_t len = 14; len <= full.size(); len++) {
        Case c{s, std::vector<uint8_t>(full.begin(), full.begin() + static_cast<long>(len)), {}, ""};
        c.expected = classify(c.frame, s);
        Outcome got = d.observe(c);
        EXPECT_EQ(got, c.expected) << refusal_name(r) << ", " << len << " of " << full.size() << " bytes: want "
                                   << describe(c.expected) << ", got " << describe(got);
        compared++;
      }
  }
  EXPECT_GT(compared, 800u);
}

TEST(Differential, RegressionCasesReplay) {
  size_t cases = 0;
  Differential d;
  for (const auto& entry : fs::directory_iterator(SG_REGRESSIONS_DIR)) {
    if (entry.path().extension() != ".case") continue;
    SCOPED_TRACE(entry.path().filename().string());
    Case c = from_text(slurp(entry.path()), entry.path().string());
    Outcome got = d.observe(c);  // first: a compiled setup takes the compile's rule ids
    Outcome ref = classify(c.frame, c.setup);
    Outcome want = c.expected;
    want.frame = ref.frame;  // the file holds the decision; the bytes of a reset come from the reference
    EXPECT_EQ(ref, want) << "reference: " << describe(ref) << ", file: " << describe(c.expected);
    EXPECT_EQ(got, want) << "program: " << describe(got) << ", file: " << describe(c.expected);
    cases++;
  }
  EXPECT_GT(cases, 0u) << "no regression cases in " << SG_REGRESSIONS_DIR;
}
