// The stride table against the longest-prefix-match it replaces: random
// allowlists of every prefix length, nested, of every kind; addresses inside,
// at and just past the edges. First the compiler alone, then the table the
// kernel holds, then verdicts through the program with a chunk pool too small
// for the allowlist, so that the trie answers for what the table cannot.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <bit>
#include <cstring>
#include <random>
#include <set>

#include "error.hpp"
#include "packet_builder.hpp"
#include "prefix_probes.hpp"
#include "stride_table.hpp"
#include "xdp_runner.hpp"

using namespace smtpgate;
using namespace sgtest;

namespace {

// The specification: the longest prefix that contains the address.
std::optional<TrieEntry> longest_match(const std::vector<TrieEntry>& entries, const Cidr& a) {
  std::optional<TrieEntry> best;
  for (const auto& e : entries)
    if (e.prefix.family() == a.family() && e.prefix.contains(a) &&
        (!best || e.prefix.prefix_len() > best->prefix.prefix_len()))
      best = e;
  return best;
}

uint32_t expected_entry(const std::vector<TrieEntry>& entries, const Cidr& a) {
  auto m = longest_match(entries, a);
  return m ? leaf_entry(m->kind, m->rule_id) : 0;
}

Cidr random_prefix(std::mt19937_64& rng, Family fam, unsigned max_len) {
  uint8_t b[16];
  for (auto& x : b) x = uint8_t(rng());
  if (fam == Family::V6) b[0] = 0x20 | (b[0] & 0x0f);  // stay in a few /16s
  if (fam == Family::V4) b[0] = 40 + (b[0] & 3);
  return Cidr::from_bytes(fam, b, unsigned(rng() % (max_len + 1)));
}

// Random allowlist: distinct prefixes, many nested in others.
std::vector<TrieEntry> random_entries(std::mt19937_64& rng, size_t n) {
  std::set<Cidr> seen;
  std::vector<TrieEntry> out;
  uint32_t id = 1;
  while (out.size() < n) {
    Family fam = rng() % 2 ? Family::V4 : Family::V6;
    Cidr c = rng() % 4 == 0 && !out.empty()
                 ? [&] {  // a prefix inside an earlier one
                     const Cidr& outer = out[rng() % out.size()].prefix;
                     uint8_t b[16];
                     for (size_t i = 0; i < 16; i++) b[i] = outer.bytes()[i] | uint8_t(rng());
                     unsigned len = outer.prefix_len() + unsigned(rng() % (outer.max_len() - outer.prefix_len() + 1));
                     Cidr inner = Cidr::from_bytes(outer.family(), b, len);
                     // keep the outer's bits
                     return outer.contains(inner) ? inner : outer;
                   }()
                 : random_prefix(rng, fam, fam == Family::V4 ? 32 : 128);
    if (!seen.insert(c).second) continue;
    out.push_back(TrieEntry{c, id++, static_cast<RuleKind>(1 + rng() % 3)});
  }
  return out;
}

TEST(StrideTable, AgreesWithLongestPrefixMatchOnRandomAllowlists) {
  std::mt19937_64 rng(20261124);
  for (int round = 0; round < 40; round++) {
    auto entries = random_entries(rng, 1 + rng() % 60);
    // Room for every /24 block of IPv4 and the nodes: no IPv4 block goes to
    // the trie, whatever short prefixes the round draws.
    StrideImage v4 = compile_stride_table(Family::V4, entries, 0, 1 << 17);
    StrideImage v6 = compile_stride_table(Family::V6, entries, 7, 1 << 16);
    for (const Cidr& a : probes(rng, entries)) {
      const StrideImage& img = a.family() == Family::V4 ? v4 : v6;
      uint32_t got = stride_walk(img, a);
      if (got == SG_ENTRY_TRIE) {
        // Only an IPv6 prefix longer than /64 in the address's /64 may send
        // the table to the trie.
        ASSERT_EQ(a.family(), Family::V6) << a.str();
        bool deep = false;
        for (const auto& e : entries)
          if (e.prefix.prefix_len() > 64 && Cidr::from_bytes(a.family(), a.bytes().data(), 64).contains(e.prefix))
            deep = true;
        EXPECT_TRUE(deep) << a.str();
        continue;
      }
      EXPECT_EQ(got, expected_entry(entries, a)) << a.str() << " round " << round;
    }
  }
}

TEST(StrideTable, AnExhaustedPoolHandsBlocksToTheTrieAndNothingElseChanges) {
  std::mt19937_64 rng(7);
  auto entries = random_entries(rng, 200);
  StrideImage full = compile_stride_table(Family::V4, entries, 0, 1 << 17);
  StrideImage small = compile_stride_table(Family::V4, entries, 0, 3);
  EXPECT_LE(small.chunks.size(), 3u);
  ASSERT_GT(small.trie_blocks_pool, 0u);
  size_t to_trie = 0;
  for (const Cidr& a : probes(rng, entries)) {
    if (a.family() != Family::V4) continue;
    uint32_t s = stride_walk(small, a);
    if (s == SG_ENTRY_TRIE) {
      to_trie++;
      continue;
    }
    EXPECT_EQ(s, stride_walk(full, a)) << a.str();
  }
  EXPECT_GT(to_trie, 0u);
}

TEST(StrideTable, EmptyAllowlistIsTheDefaultRuleEverywhere) {
  StrideImage img = compile_stride_table(Family::V4, {}, 0, 16);
  EXPECT_EQ(stride_walk(img, Cidr::parse_address("40.92.0.1")), 0u);
  EXPECT_TRUE(img.chunks.empty());
}

// The kernel's copy, read back through the map, and the trie beside it.
TEST(StrideTableInKernel, PublishedTableMatchesTheTrie) {
  std::mt19937_64 rng(99);
  XdpGate gate;
  for (int round = 0; round < 5; round++) {
    auto entries = random_entries(rng, 100);
    gate.maps().publish(entries);
    for (const Cidr& a : probes(rng, entries)) {
      uint32_t t = gate.maps().table_entry(a);
      auto m = gate.maps().match(a);
      auto want = longest_match(entries, a);
      ASSERT_EQ(m.has_value(), want.has_value()) << a.str();
      if (m) {
        EXPECT_EQ(m->prefix, want->prefix) << a.str();
        EXPECT_EQ(m->rule_id, want->rule_id) << a.str();
      }
      if (t != SG_ENTRY_TRIE) {
        EXPECT_EQ(t, expected_entry(entries, a)) << a.str() << " round " << round;
      }
    }
  }
}

// Verdicts through the program itself, with a pool of 4 chunks (2 per slot):
// most blocks fall back to the trie, and every verdict must still be right.
TEST(StrideTableInKernel, VerdictsAreRightWhetherTableOrTrieAnswers) {
  std::mt19937_64 rng(5);
  ProgramOptions o;
  o.table_chunks = 4;
  XdpGate gate(o);
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  size_t via_trie = 0, via_table = 0;
  for (int round = 0; round < 3; round++) {
    auto entries = random_entries(rng, 80);
    gate.maps().publish(entries);
    for (const Cidr& a : probes(rng, entries)) {
      auto m = longest_match(entries, a);
      bool admitted = m && m->kind == RuleKind::Admit;
      (gate.maps().table_entry(a) == SG_ENTRY_TRIE ? via_trie : via_table)++;
      RunResult r = gate.run(syn_from(a).bytes());
      EXPECT_EQ(r.action, admitted ? XDP_PASS : XDP_DROP) << a.str();
    }
  }
  EXPECT_GT(via_trie, 0u);
  EXPECT_GT(via_table, 0u);
}

}  // namespace

namespace {

// The /20 directory's bit of a /20 block, and the /24 bit of a /24 block in
// the group of its /20 (false when the /20 bit is clear), as the program
// reads them.
sg_dir_word dir_word(const StrideImage& img, uint32_t w) {
  sg_dir_word d;
  std::memcpy(&d, reinterpret_cast<const unsigned char*>(&img.dir[w / 64]) + (w % 64) * sizeof(d), sizeof(d));
  return d;
}
uint32_t block_number(const char* block, unsigned block_len) {
  Cidr c = Cidr::parse(block);
  const auto& b = c.bytes();
  return (uint32_t(b[0]) << 16 | uint32_t(b[1]) << 8 | b[2]) >> (24 - block_len);
}
bool dir_bit(const StrideImage& img, const char* block20) {
  uint32_t n = block_number(block20, 20);
  return dir_word(img, n >> 6).bits >> (n & 63) & 1;
}
bool group_bit(const StrideImage& img, const char* block24) {
  uint32_t n = block_number(block24, 24), b20 = n >> 4;
  sg_dir_word d = dir_word(img, b20 >> 6);
  if (!(d.bits >> (b20 & 63) & 1)) return false;
  uint32_t i = d.rank + uint32_t(std::popcount(d.bits & ((uint64_t(1) << (b20 & 63)) - 1)));
  sg_group g;
  std::memcpy(&g,
              reinterpret_cast<const unsigned char*>(&img.groups[i / SG_GROUP_MASKS / 64]) +
                  (i / SG_GROUP_MASKS % 64) * sizeof(g),
              sizeof(g));
  unsigned p = (i % SG_GROUP_MASKS) * 16 + (n & 15);
  return (p < 64 ? g.masks >> p : g.masks_hi >> (p - 64)) & 1;
}
bool summary_bit(const StrideImage& img, const char* block16) {
  uint32_t n = block_number(block16, 16);
  return img.summary[n / SG_SUMMARY_BITS_PER_CHUNK].entry[(n >> 5) % SG_CHUNK_ENTRIES] & (1u << (n & 31));
}

TEST(StrideTable, DirectoryAndGroupsMarkExactlyTheBlocksPrefixesTouch) {
  std::vector<TrieEntry> e = {{Cidr::parse("40.1.2.16/28"), 1, RuleKind::Admit},
                              {Cidr::parse("40.8.0.0/22"), 2, RuleKind::Deny},
                              {Cidr::parse("44.16.0.0/18"), 3, RuleKind::Deny},
                              {Cidr::parse("2a01:111:f400::/48"), 4, RuleKind::Admit}};
  StrideImage img = compile_stride_table(Family::V4, e, 0, 64);
  ASSERT_EQ(img.dir.size(), size_t(SG_DIR_CHUNKS));
  ASSERT_EQ(img.groups.size(), size_t(SG_GROUP_CHUNKS));
  EXPECT_EQ(img.n20, 2u + 4u);
  EXPECT_EQ(img.n24, 1u + 4u + 64u);
  EXPECT_TRUE(dir_bit(img, "40.1.0.0/20"));
  EXPECT_FALSE(dir_bit(img, "40.1.16.0/20"));
  EXPECT_FALSE(dir_bit(img, "40.0.240.0/20"));
  for (const char* b : {"44.16.0.0/20", "44.16.16.0/20", "44.16.32.0/20", "44.16.48.0/20"})
    EXPECT_TRUE(dir_bit(img, b)) << b;
  EXPECT_FALSE(dir_bit(img, "44.16.64.0/20"));
  EXPECT_FALSE(dir_bit(img, "44.15.240.0/20"));
  EXPECT_TRUE(group_bit(img, "40.1.2.0/24"));
  EXPECT_FALSE(group_bit(img, "40.1.3.0/24"));
  for (const char* b : {"40.8.0.0/24", "40.8.1.0/24", "40.8.2.0/24", "40.8.3.0/24", "44.16.63.0/24"})
    EXPECT_TRUE(group_bit(img, b)) << b;
  EXPECT_FALSE(group_bit(img, "40.8.4.0/24"));
  // A source in a clear block is the default rule's.
  EXPECT_EQ(stride_walk(img, Cidr::parse_address("40.1.3.1")), 0u);
  EXPECT_EQ(stride_walk(img, Cidr::parse_address("40.1.2.15")), 0u);
  EXPECT_EQ(stride_walk(img, Cidr::parse_address("40.1.2.17")), leaf_entry(RuleKind::Admit, 1));
  EXPECT_EQ(stride_walk(img, Cidr::parse_address("44.16.63.255")), leaf_entry(RuleKind::Deny, 3));
  // The walk stops at a clear /20 bit, whatever the groups say.
  uint32_t b20 = block_number("40.1.0.0/20", 20);
  sg_dir_word d = dir_word(img, b20 >> 6);
  d.bits &= ~(uint64_t(1) << (b20 & 63));
  std::memcpy(reinterpret_cast<unsigned char*>(&img.dir[(b20 >> 6) / 64]) + ((b20 >> 6) % 64) * sizeof(d), &d,
              sizeof(d));
  EXPECT_EQ(stride_walk(img, Cidr::parse_address("40.1.2.17")), 0u);
  StrideImage v6 = compile_stride_table(Family::V6, e, 0, 64);
  EXPECT_TRUE(v6.dir.empty());
  EXPECT_TRUE(v6.groups.empty());
}

// Every address of /24 blocks cut into few runs (small nodes), many (bitmap
// nodes) and more than a node holds (the trie's).
TEST(StrideTable, NodesBelowTwentyFourAnswerForEveryAddress) {
  std::vector<TrieEntry> e = {{Cidr::parse("40.1.2.16/28"), 1, RuleKind::Admit},
                              {Cidr::parse("40.1.3.0/25"), 2, RuleKind::Deny},
                              {Cidr::parse("40.1.3.0/26"), 3, RuleKind::Admit},
                              {Cidr::parse("40.1.3.255/32"), 4, RuleKind::Watch},
                              {Cidr::parse("40.1.4.0/22"), 5, RuleKind::Admit}};
  uint32_t id = 10;
  for (unsigned a = 0; a < 256; a += 8)
    e.push_back({Cidr::parse("40.1.5." + std::to_string(a) + "/30"), id++, RuleKind::Deny});
  for (unsigned a = 0; a < 256; a += 4)
    e.push_back({Cidr::parse("40.1.6." + std::to_string(a) + "/32"), id++, RuleKind::Admit});
  StrideImage img = compile_stride_table(Family::V4, e, 5, 64);
  EXPECT_EQ(img.trie_blocks_deep, 0u);
  EXPECT_EQ(img.trie_blocks_pool, 0u);
  EXPECT_EQ(img.nodes, 4u);  // 40.1.2, 40.1.3, 40.1.5, 40.1.6
  for (unsigned c = 1; c <= 7; c++)
    for (unsigned x = 0; x < 256; x++) {
      Cidr a = Cidr::parse_address("40.1." + std::to_string(c) + "." + std::to_string(x));
      EXPECT_EQ(stride_walk(img, a), expected_entry(e, a)) << a.str();
    }
  // 256 runs in one /24: more than a node holds.
  for (unsigned a = 2; a < 256; a += 4)
    e.push_back({Cidr::parse("40.1.6." + std::to_string(a) + "/32"), id++, RuleKind::Deny});
  img = compile_stride_table(Family::V4, e, 5, 64);
  EXPECT_EQ(img.trie_blocks_deep, 1u);
  EXPECT_EQ(stride_walk(img, Cidr::parse_address("40.1.6.7")), SG_ENTRY_TRIE);
  EXPECT_EQ(stride_walk(img, Cidr::parse_address("40.1.5.8")), leaf_entry(RuleKind::Deny, 11));
}

// The flood's shape: thousands of random /22 to /28 prefixes, sources inside
// and outside them.
TEST(StrideTable, AgreesWithLongestPrefixMatchOnLargeAllowlists) {
  std::mt19937_64 rng(18);
  std::set<Cidr> seen;
  std::vector<TrieEntry> e;
  while (e.size() < 4000) {
    uint8_t b[4];
    for (auto& x : b) x = uint8_t(rng());
    b[0] = 40 + (b[0] & 7);  // dense enough that /20 blocks hold several
    Cidr c = Cidr::from_bytes(Family::V4, b, 22 + unsigned(rng() % 7));
    if (seen.insert(c).second) e.push_back({c, uint32_t(e.size() + 1), static_cast<RuleKind>(1 + rng() % 3)});
  }
  StrideImage img = compile_stride_table(Family::V4, e, 40, 4096);
  EXPECT_EQ(img.trie_blocks_pool + img.trie_blocks_deep, 0u);
  std::vector<Cidr> addrs = probes(rng, e);
  for (int i = 0; i < 4000; i++) {
    uint8_t b[4];
    for (auto& x : b) x = uint8_t(rng());
    b[0] = 40 + (b[0] & 7);
    addrs.push_back(Cidr::from_bytes(Family::V4, b, 32));
  }
  size_t inside = 0;
  for (const Cidr& a : addrs) {
    uint32_t want = expected_entry(e, a);
    inside += want != 0;
    ASSERT_EQ(stride_walk(img, a), want) << a.str();
  }
  EXPECT_GT(inside, 4000u);
  EXPECT_GT(addrs.size() - inside, 4000u);
}

TEST(StrideTable, SummaryMarksExactlyTheSixteensPrefixesTouch) {
  std::vector<TrieEntry> e = {{Cidr::parse("40.1.2.16/28"), 1, RuleKind::Admit},
                              {Cidr::parse("44.16.0.0/12"), 2, RuleKind::Deny},
                              {Cidr::parse("2a01:111:f400::/48"), 3, RuleKind::Admit},
                              {Cidr::parse("2400::/15"), 4, RuleKind::Admit}};
  StrideImage v4 = compile_stride_table(Family::V4, e, 0, 64);
  ASSERT_EQ(v4.summary.size(), size_t(SG_SUMMARY_CHUNKS));
  EXPECT_TRUE(summary_bit(v4, "40.1.0.0/16"));
  EXPECT_FALSE(summary_bit(v4, "40.0.0.0/16"));
  EXPECT_FALSE(summary_bit(v4, "40.2.0.0/16"));
  for (const char* b : {"44.16.0.0/16", "44.24.0.0/16", "44.31.0.0/16"}) EXPECT_TRUE(summary_bit(v4, b)) << b;
  EXPECT_FALSE(summary_bit(v4, "44.15.0.0/16"));
  EXPECT_FALSE(summary_bit(v4, "44.32.0.0/16"));
  StrideImage v6 = compile_stride_table(Family::V6, e, 0, 64);
  EXPECT_TRUE(summary_bit(v6, "2a01::/16"));
  EXPECT_FALSE(summary_bit(v6, "2a00::/16"));
  EXPECT_TRUE(summary_bit(v6, "2400::/16"));
  EXPECT_TRUE(summary_bit(v6, "2401::/16"));
  EXPECT_FALSE(summary_bit(v6, "2402::/16"));
  // The other family's prefixes leave no bits.
  EXPECT_FALSE(summary_bit(v6, "2801::/16"));  // 40.1 read as IPv6
  // The walk stops at a clear bit, whatever the rest says.
  ASSERT_EQ(stride_walk(v4, Cidr::parse_address("40.1.2.17")), leaf_entry(RuleKind::Admit, 1));
  v4.summary[(40u << 8 | 1) / SG_SUMMARY_BITS_PER_CHUNK].entry[((40u << 8 | 1) >> 5) % SG_CHUNK_ENTRIES] = 0;
  EXPECT_EQ(stride_walk(v4, Cidr::parse_address("40.1.2.17")), 0u);
}

// The XDP action of the gate for a SYN to port 25 from src.
int syn_action(XdpGate& gate, const char* src) {
  Packet p;
  p.eth();
  if (Cidr::parse_address(src).family() == Family::V4)
    p.ipv4(src, "192.0.2.1");
  else
    p.ipv6(src, "2001:db8::1");
  return gate.run(p.tcp(40000, 25, SYN).bytes()).action;
}

// The program reads the summary first: with the active slot's bits cleared,
// a source its range admits gets the default rule; a publish writes them
// again.
TEST(StrideTableInKernel, TheProgramConsultsTheSummaryFirst) {
  XdpGate gate;
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  std::vector<TrieEntry> e = {{Cidr::parse("40.92.0.0/15"), 1, RuleKind::Admit},
                              {Cidr::parse("2a01:111:f400::/48"), 2, RuleKind::Admit}};
  gate.maps().publish(e);
  auto syn = [&](const char* src) { return syn_action(gate, src); };
  ASSERT_EQ(syn("40.93.1.1"), XDP_PASS);
  ASSERT_EQ(syn("2a01:111:f400::1"), XDP_PASS);
  sg_config cfg{};
  uint32_t zero = 0;
  ASSERT_EQ(bpf_map_lookup_elem(gate.map_fd("gate_config"), &zero, &cfg), 0);
  const sg_state& st = cfg.state;
  sg_chunk clear{};
  for (int fam : {4, 6})
    for (uint32_t i = 0; i < SG_SUMMARY_CHUNKS; i++) {
      uint32_t idx = SG_SUMMARY_INDEX(st.active_slot, fam) + i;
      ASSERT_EQ(bpf_map_update_elem(gate.map_fd("summary"), &idx, &clear, BPF_ANY), 0);
    }
  EXPECT_EQ(syn("40.93.1.1"), XDP_DROP);
  EXPECT_EQ(syn("2a01:111:f400::1"), XDP_DROP);
  gate.maps().publish(e);
  EXPECT_EQ(syn("40.93.1.1"), XDP_PASS);
  EXPECT_EQ(syn("2a01:111:f400::1"), XDP_PASS);
}

// The program reads the IPv4 directory and groups: with the active slot's
// directory, or its groups, cleared, a source its range admits gets the
// default rule; a publish writes them again.
TEST(StrideTableInKernel, TheProgramConsultsTheDirectoryAndTheGroups) {
  XdpGate gate;
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  std::vector<TrieEntry> e = {{Cidr::parse("40.92.0.0/15"), 1, RuleKind::Admit},
                              {Cidr::parse("52.100.7.0/28"), 2, RuleKind::Admit}};
  gate.maps().publish(e);
  auto syn = [&](const char* src) { return syn_action(gate, src); };
  // Clears the active slot's directory (coarse) or its groups.
  auto clear = [&](bool coarse) {
    sg_config cfg{};
    uint32_t zero = 0;
    ASSERT_EQ(bpf_map_lookup_elem(gate.map_fd("gate_config"), &zero, &cfg), 0);
    uint32_t slot = cfg.state.active_slot;
    uint32_t first = coarse ? SG_DIR_INDEX(slot) : SG_GROUP_INDEX(slot);
    uint32_t n = coarse ? SG_DIR_CHUNKS : SG_GROUP_CHUNKS;
    sg_chunk none{};
    for (uint32_t idx = first; idx < first + n; idx++)
      ASSERT_EQ(bpf_map_update_elem(gate.map_fd("prefilter_v4"), &idx, &none, BPF_ANY), 0);
  };
  for (bool coarse : {true, false}) {
    SCOPED_TRACE(coarse ? "the directory cleared" : "the groups cleared");
    ASSERT_EQ(syn("40.93.1.1"), XDP_PASS);
    ASSERT_EQ(syn("52.100.7.9"), XDP_PASS);
    clear(coarse);
    EXPECT_EQ(syn("40.93.1.1"), XDP_DROP);
    EXPECT_EQ(syn("52.100.7.9"), XDP_DROP);
    gate.maps().publish(e);
    EXPECT_EQ(syn("40.93.1.1"), XDP_PASS);
    EXPECT_EQ(syn("52.100.7.9"), XDP_PASS);
  }
}

// A prefix twice is refused before any map changes, whether the entries come
// sorted (checked in place) or not (checked on a sorted copy).
TEST(StrideTableInKernel, APrefixTwiceIsRefusedAndNothingChanges) {
  XdpGate gate;
  gate.maps().set_config(GateConfig{Action::Drop, {25}, 0});
  std::vector<TrieEntry> e = {{Cidr::parse("40.92.0.0/15"), 1, RuleKind::Admit},
                              {Cidr::parse("52.100.7.0/28"), 2, RuleKind::Admit}};
  gate.maps().publish(e);
  uint32_t generation = gate.maps().generation();
  auto syn = [&](const char* src) { return syn_action(gate, src); };
  std::vector<TrieEntry> sorted = {{Cidr::parse("10.0.0.0/8"), 3, RuleKind::Admit},
                                   {Cidr::parse("52.100.7.0/28"), 4, RuleKind::Admit},
                                   {Cidr::parse("52.100.7.0/28"), 5, RuleKind::Admit}};
  std::vector<TrieEntry> unsorted = {{Cidr::parse("52.100.7.0/28"), 4, RuleKind::Admit},
                                     {Cidr::parse("10.0.0.0/8"), 3, RuleKind::Admit},
                                     {Cidr::parse("52.100.7.0/28"), 5, RuleKind::Admit}};
  for (const auto* twice : {&sorted, &unsorted}) {
    SCOPED_TRACE(twice == &sorted ? "sorted" : "unsorted");
    EXPECT_THROW(gate.maps().publish(*twice), InputError);
    EXPECT_EQ(gate.maps().generation(), generation);
    EXPECT_EQ(syn("40.93.1.1"), XDP_PASS);
    EXPECT_EQ(syn("52.100.7.9"), XDP_PASS);
    EXPECT_EQ(syn("10.1.1.1"), XDP_DROP);
  }
}

}  // namespace
