// The patch (GateMaps::publish with the current allowlist): a small change
// made in place in the active slot answers as a full publish of the same
// entries would, in the program, in GateMaps::match and in the table;
// anything else takes the full publish; the inactive slot and the counters
// stay as they are; and packets sent while a range comes and goes see their
// source's old rule or its new one, never another.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <thread>

#include "gate.hpp"
#include "map_names.hpp"
#include "packet_builder.hpp"
#include "prefix_probes.hpp"
#include "stride_table.hpp"
#include "xdp_runner.hpp"

using namespace smtpgate;
using namespace sgtest;
using Path = GateMaps::PublishPath;

namespace {

Cidr v4(uint32_t a, unsigned len) {
  uint8_t b[4] = {uint8_t(a >> 24), uint8_t(a >> 16), uint8_t(a >> 8), uint8_t(a)};
  return Cidr::from_bytes(Family::V4, b, len);
}

Cidr v6(std::mt19937_64& rng, unsigned len) {
  uint8_t b[16] = {0x2a, 0x01};
  for (size_t i = 2; i < 16; i++) b[i] = uint8_t(rng());
  return Cidr::from_bytes(Family::V6, b, len);
}

void sort_by_prefix(std::vector<TrieEntry>& e) {
  std::sort(e.begin(), e.end(), [](const TrieEntry& a, const TrieEntry& b) { return a.prefix < b.prefix; });
}

// The flood's shape: random /22 to /28 prefixes in 40.0.0.0/8 and some IPv6
// /40s in 2a01::/16, of every kind.
std::vector<TrieEntry> flood_allowlist(std::mt19937_64& rng, size_t n4, size_t n6) {
  std::set<Cidr> seen;
  std::vector<TrieEntry> out;
  while (out.size() < n4 + n6) {
    Cidr c = out.size() < n4 ? v4(40u << 24 | uint32_t(rng() & 0x00ffffff), 22 + unsigned(rng() % 7)) : v6(rng, 40);
    if (seen.insert(c).second)
      out.push_back(TrieEntry{c, uint32_t(out.size() + 1), static_cast<RuleKind>(1 + rng() % 3)});
  }
  sort_by_prefix(out);
  return out;
}

uint64_t packets_of(GateMaps& m, uint32_t id) {
  sg_rule_counters c = m.rule_counters(id);
  return c.admit_packets + c.refuse_packets;
}

// The program's answer for a source: its action, and whether rule `id`
// counted the packet.
std::pair<uint32_t, bool> program_answer(XdpGate& gate, const Cidr& a, uint32_t id) {
  uint64_t before = packets_of(gate.maps(), id);
  uint32_t action = gate.run(syn_from(a).bytes()).action;
  return {action, packets_of(gate.maps(), id) == before + 1};
}

// The entry that decides for a, from the table or, where it hands on, the trie.
uint32_t decided(GateMaps& m, const Cidr& a) {
  uint32_t t = m.table_entry(a);
  if (t != SG_ENTRY_TRIE) return t;
  auto hit = m.match(a);
  return hit ? leaf_entry(hit->kind, hit->rule_id) : 0;
}

// Everything the patched gate answers for the addresses is what the gate
// with a fresh full publish answers.
void expect_same_answers(XdpGate& patched, XdpGate& fresh, const std::vector<Cidr>& addresses, const std::string& at) {
  for (const Cidr& a : addresses) {
    auto want = fresh.maps().match(a);
    auto got = patched.maps().match(a);
    ASSERT_EQ(got.has_value(), want.has_value()) << a.str() << " " << at;
    if (want) {
      EXPECT_EQ(got->prefix, want->prefix) << a.str() << " " << at;
      EXPECT_EQ(got->rule_id, want->rule_id) << a.str() << " " << at;
      EXPECT_EQ(got->kind, want->kind) << a.str() << " " << at;
    }
    EXPECT_EQ(decided(patched.maps(), a), decided(fresh.maps(), a)) << a.str() << " " << at;
    uint32_t id = want ? want->rule_id : SG_RULE_DEFAULT;
    auto p = program_answer(patched, a, id);
    auto f = program_answer(fresh, a, id);
    EXPECT_EQ(p.first, f.first) << a.str() << " " << at;
    EXPECT_TRUE(p.second) << a.str() << " not counted to rule " << id << " " << at;
    EXPECT_TRUE(f.second) << a.str() << " " << at;
  }
}

GateConfig quiet_drop() { return GateConfig{Action::Drop, {25}, 0}; }

// The addresses to compare after a change: around the changed prefix, around
// some others, and random ones in the prefixes' space.
std::vector<Cidr> addresses_for(std::mt19937_64& rng, const std::vector<TrieEntry>& entries, const TrieEntry& changed) {
  std::vector<TrieEntry> around{changed};
  for (int i = 0; i < 8; i++) around.push_back(entries[rng() % entries.size()]);
  std::vector<Cidr> out = probes(rng, around);
  for (int i = 0; i < 20; i++) out.push_back(v4(40u << 24 | uint32_t(rng() & 0x00ffffff), 32));
  out.push_back(v6(rng, 128));
  return out;
}

}  // namespace

TEST(PublishPatch, OneRangeAtATimeAnswersAsAFullPublish) {
  std::mt19937_64 rng(20261208);
  XdpGate patched, fresh;
  patched.maps().set_config(quiet_drop());
  fresh.maps().set_config(quiet_drop());
  std::vector<TrieEntry> cur = flood_allowlist(rng, 3000, 60);
  patched.maps().publish(cur);
  uint32_t slot = patched.maps().active_slot();
  uint32_t next_id = uint32_t(cur.size() + 1);
  for (int step = 0; step < 60; step++) {
    std::vector<TrieEntry> next = cur;
    TrieEntry changed;
    int op = step % 3;
    if (op == 0) {  // add: IPv4 from /8 (a few short ones), or IPv6 from /16
      Cidr c;
      do {
        if (rng() % 4 == 0)
          c = v6(rng, 16 + unsigned(rng() % 113));
        else
          c = v4(40u << 24 | uint32_t(rng() & 0x00ffffff), step == 9 ? 8 : step == 18 ? 11 : 16 + unsigned(rng() % 17));
      } while (std::any_of(cur.begin(), cur.end(), [&](const TrieEntry& e) { return e.prefix == c; }));
      changed = TrieEntry{c, next_id++, static_cast<RuleKind>(1 + rng() % 3)};
      next.push_back(changed);
    } else if (op == 1) {  // remove
      size_t i = rng() % next.size();
      changed = next[i];
      next.erase(next.begin() + long(i));
    } else {  // another kind, under a fresh id
      TrieEntry& e = next[rng() % next.size()];
      e.kind = static_cast<RuleKind>(1 + (uint32_t(e.kind) % 3));
      e.rule_id = next_id++;
      changed = e;
      patched.maps().reset_rule_counters(e.rule_id);
    }
    sort_by_prefix(next);
    uint32_t gen = patched.maps().generation();
    ASSERT_EQ(patched.maps().publish(next, &cur), Path::Patch) << "step " << step << " " << changed.prefix.str();
    EXPECT_EQ(patched.maps().active_slot(), slot);
    EXPECT_EQ(patched.maps().generation(), gen + 1);
    EXPECT_EQ(patched.maps().active_entries(), next);
    fresh.maps().publish(next);
    cur = next;
    expect_same_answers(patched, fresh, addresses_for(rng, cur, changed), "step " + std::to_string(step));
  }
  // The full publish after patches builds the other slot from scratch.
  EXPECT_EQ(patched.maps().publish(cur), Path::Full);
  EXPECT_NE(patched.maps().active_slot(), slot);
  std::vector<Cidr> all = probes(rng, cur);
  all.resize(std::min<size_t>(all.size(), 4000));
  expect_same_answers(patched, fresh, all, "after the full publish");
}

TEST(PublishPatch, WhatIsNotASmallDisjointChangeTakesTheFullPublish) {
  std::mt19937_64 rng(77);
  XdpGate gate;
  std::vector<TrieEntry> cur = flood_allowlist(rng, 500, 20);
  gate.maps().publish(cur);
  uint32_t id = 10000;
  auto expect_full = [&](std::vector<TrieEntry> next, const std::vector<TrieEntry>& claimed, const char* what) {
    sort_by_prefix(next);
    uint32_t slot = gate.maps().active_slot();
    EXPECT_EQ(gate.maps().publish(next, &claimed), Path::Full) << what;
    EXPECT_NE(gate.maps().active_slot(), slot) << what;
    EXPECT_EQ(gate.maps().active_entries(), next) << what;
    cur = next;
  };
  {  // two changes, one inside the other
    auto next = cur;
    next.push_back(TrieEntry{v4(0x29100000, 12), id++, RuleKind::Admit});
    next.push_back(TrieEntry{v4(0x29120000, 16), id++, RuleKind::Deny});
    expect_full(next, cur, "nested changes");
  }
  {  // shorter than /8
    auto next = cur;
    next.push_back(TrieEntry{v4(0x60000000, 7), id++, RuleKind::Admit});
    expect_full(next, cur, "an IPv4 /7");
  }
  {  // shorter than /16 (IPv6)
    auto next = cur;
    next.push_back(TrieEntry{v6(rng, 15), id++, RuleKind::Admit});
    expect_full(next, cur, "an IPv6 /15");
  }
  {  // more than 64 changes
    auto next = cur;
    for (int i = 0; i < 65; i++)
      next.push_back(TrieEntry{v4(0x5a000000u + uint32_t(i) * 256, 24), id++, RuleKind::Admit});
    expect_full(next, cur, "65 changes");
  }
  {  // a stale current: it claims an entry the trie does not hold
    auto claimed = cur;
    TrieEntry ghost{v4(0x5b000000, 24), id++, RuleKind::Admit};
    claimed.push_back(ghost);
    sort_by_prefix(claimed);
    expect_full(cur, claimed, "a removal of what is not there");
  }
  {  // a stale current: another rule id than the trie's
    auto claimed = cur;
    claimed[3].rule_id = id++;
    auto next = claimed;
    next[3].kind = next[3].kind == RuleKind::Deny ? RuleKind::Admit : RuleKind::Deny;
    expect_full(next, claimed, "a change of what is not there");
  }
  {  // a stale current: the added prefix is already there
    auto claimed = cur;
    claimed.erase(claimed.begin() + 5);
    expect_full(cur, claimed, "an addition of what is there");
  }
  {  // nothing changes: still a full publish (it clears what patches left)
    expect_full(cur, cur, "no change");
  }
  {  // the same prefix twice: the full publish refuses it, nothing changes
    auto next = cur;
    next.push_back(TrieEntry{cur[0].prefix, id++, RuleKind::Deny});
    sort_by_prefix(next);
    uint32_t gen = gate.maps().generation();
    EXPECT_THROW(gate.maps().publish(next, &cur), InputError);
    EXPECT_EQ(gate.maps().generation(), gen);
  }
}

// Past 256 directory words handed to the trie, the full publish comes back,
// and clears them.
TEST(PublishPatch, TheTrieAnswersForABoundedPartOfTheTable) {
  XdpGate gate;
  std::vector<TrieEntry> cur{TrieEntry{v4(0x28000000, 24), 1, RuleKind::Admit}};
  gate.maps().publish(cur);
  uint32_t slot = gate.maps().active_slot(), patches = 0;
  // /14s in distinct directory words: one marked word each.
  for (uint32_t i = 1; i <= 300; i++) {
    auto next = cur;
    next.push_back(TrieEntry{v4(0x30000000u + (i << 18), 14), i + 1, RuleKind::Admit});
    sort_by_prefix(next);
    Path p = gate.maps().publish(next, &cur);
    cur = next;
    if (p == Path::Full) break;
    patches++;
  }
  EXPECT_EQ(patches, 256u);
  EXPECT_NE(gate.maps().active_slot(), slot);
  auto next = cur;
  next.push_back(TrieEntry{v4(0x50000000, 14), 999, RuleKind::Admit});
  sort_by_prefix(next);
  EXPECT_EQ(gate.maps().publish(next, &cur), Path::Patch);
}

TEST(PublishPatch, APatchLeavesTheInactiveSlotAlone) {
  std::mt19937_64 rng(3);
  XdpGate gate;
  std::vector<TrieEntry> cur = flood_allowlist(rng, 1000, 20);
  gate.maps().publish(flood_allowlist(rng, 800, 10));
  gate.maps().publish(cur);
  uint32_t inactive = gate.maps().active_slot() ^ 1;
  // Every element of the maps that belongs to the inactive slot.
  auto snapshot = [&] {
    std::vector<uint8_t> out;
    auto grab = [&](const char* map, uint32_t first, uint32_t count) {
      sg_chunk c;
      for (uint32_t i = first; i < first + count; i++) {
        EXPECT_EQ(bpf_map_lookup_elem(gate.map_fd(map), &i, &c), 0);
        auto* b = reinterpret_cast<uint8_t*>(&c);
        out.insert(out.end(), b, b + sizeof(c));
      }
    };
    grab(mapname::prefilter_v4, SG_DIR_INDEX(inactive), SG_DIR_CHUNKS);
    grab(mapname::prefilter_v4, SG_GROUP_INDEX(inactive), SG_GROUP_CHUNKS);
    grab(mapname::summary, SG_SUMMARY_INDEX(inactive, 4), SG_SUMMARY_CHUNKS);
    grab(mapname::summary, SG_SUMMARY_INDEX(inactive, 6), SG_SUMMARY_CHUNKS);
    grab(mapname::table_v6, inactive * 256, 256);
    for (const char* outer : {mapname::allow_v4, mapname::allow_v6}) {
      uint32_t id = 0;
      int rc = bpf_map_lookup_elem(gate.map_fd(outer), &inactive, &id);
      out.push_back(uint8_t(rc == 0 ? 1 : 0));
      out.insert(out.end(), reinterpret_cast<uint8_t*>(&id), reinterpret_cast<uint8_t*>(&id) + 4);
    }
    return out;
  };
  std::vector<uint8_t> before = snapshot();
  for (int i = 0; i < 6; i++) {
    auto next = cur;
    if (i % 2)
      next.erase(next.begin() + long(rng() % next.size()));
    else
      next.push_back(TrieEntry{i == 4 ? v6(rng, 48) : v4(0x29000000u + uint32_t(i) * 4096, 20), uint32_t(5000 + i),
                               RuleKind::Deny});
    sort_by_prefix(next);
    ASSERT_EQ(gate.maps().publish(next, &cur), Path::Patch);
    cur = next;
  }
  EXPECT_EQ(gate.maps().active_slot(), inactive ^ 1);
  EXPECT_TRUE(snapshot() == before) << "the inactive slot changed";
}

// Through the callers' path (compile, fresh ids' counters zeroed, publish):
// a range added in place counts from zero and the others keep counting.
TEST(PublishPatch, CountersStayExact) {
  XdpGate gate;
  gate.maps().set_config(quiet_drop());
  auto range = [](const char* c, RuleKind k) { return DesiredRange{Cidr::parse(c), k, "operator", ""}; };
  std::vector<DesiredRange> desired{range("40.1.0.0/16", RuleKind::Admit), range("40.2.0.0/24", RuleKind::Deny),
                                    range("40.3.0.0/24", RuleKind::Admit)};
  publish_desired(gate.maps(), desired);
  auto id_of = [&](const char* a) { return gate.maps().match(Cidr::parse_address(a))->rule_id; };
  uint32_t kept = id_of("40.1.2.3"), gone = id_of("40.3.0.9");
  for (int i = 0; i < 5; i++) gate.run(syn_from(Cidr::parse_address("40.3.0.9")).bytes());
  for (int i = 0; i < 4; i++) gate.run(syn_from(Cidr::parse_address("40.1.2.3")).bytes());
  EXPECT_EQ(gate.maps().rule_counters(gone).admit_packets, 5u);

  // Remove 40.3.0.0/24, add 40.4.0.0/24: its fresh id may be the freed one.
  uint32_t slot = gate.maps().active_slot();
  desired.pop_back();
  publish_desired(gate.maps(), desired);
  EXPECT_EQ(gate.maps().active_slot(), slot) << "the removal was patched in";
  desired.push_back(range("40.4.0.0/24", RuleKind::Admit));
  publish_desired(gate.maps(), desired);
  EXPECT_EQ(gate.maps().active_slot(), slot) << "the addition was patched in";
  uint32_t added = id_of("40.4.0.1");
  EXPECT_EQ(packets_of(gate.maps(), added), 0u);
  for (int i = 0; i < 3; i++) gate.run(syn_from(Cidr::parse_address("40.4.0.1")).bytes());
  gate.run(syn_from(Cidr::parse_address("40.1.2.3")).bytes());
  EXPECT_EQ(gate.maps().rule_counters(added).admit_packets, 3u);
  EXPECT_EQ(gate.maps().rule_counters(kept).admit_packets, 5u);
  EXPECT_FALSE(gate.maps().match(Cidr::parse_address("40.3.0.9")).has_value());
}

// One thread sends SYNs (BPF_PROG_TEST_RUN, many runs a call) from sources
// around a prefix that another thread adds and removes: the word of the
// directory that holds them is marked for the trie anew each round (a full
// publish clears it). Every packet from outside the prefix counts to its own
// rule; every packet from inside to the default rule or the prefix's.
TEST(PublishPatch, PacketsDuringPatchesSeeTheOldOrTheNewRule) {
  XdpGate gate;
  gate.maps().set_config(quiet_drop());
  // Set /20 blocks on both sides of the added one, in the same directory
  // word (40.16.0.0/14: /20 blocks 0x28100 to 0x2813f), and empty space.
  std::vector<TrieEntry> base{
      TrieEntry{v4(0x28100000, 24), 1, RuleKind::Admit},          // 40.16.0.0/24: block 0 of the word
      TrieEntry{v4(0x28130000, 22), 2, RuleKind::Deny},           // 40.19.0.0/22
      TrieEntry{v4(0x2813f000, 20), 3, RuleKind::Admit},          // 40.19.240.0/20: the word's last block
      TrieEntry{v4(0x28500000, 24), 4, RuleKind::Admit}};         // elsewhere
  const TrieEntry added{v4(0x28118000, 20), 7, RuleKind::Admit};  // 40.17.128.0/20, between them
  std::vector<TrieEntry> with = base;
  with.push_back(added);
  sort_by_prefix(with);
  struct Source {
    Cidr address;
    uint32_t rule;  // 0: the default rule's, or `added`'s when inside it
    uint32_t action;
  };
  std::vector<Source> outside{{Cidr::parse_address("40.16.0.7"), 1, XDP_PASS},
                              {Cidr::parse_address("40.19.1.1"), 2, XDP_DROP},
                              {Cidr::parse_address("40.19.250.3"), 3, XDP_PASS},
                              {Cidr::parse_address("40.80.0.200"), 4, XDP_PASS},
                              {Cidr::parse_address("40.18.0.1"), 0, XDP_DROP}};
  Cidr inside = Cidr::parse_address("40.17.130.9");

  gate.maps().publish(base);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> wrong{0}, runs{0};
  std::string first_wrong;
  std::thread sender([&] {
    constexpr uint32_t kRepeat = 200;
    while (!stop.load()) {
      for (size_t i = 0; i <= outside.size(); i++) {
        bool in = i == outside.size();
        Cidr src = in ? inside : outside[i].address;
        std::vector<uint8_t> frame = syn_from(src).bytes(), out(frame.size() + 256);
        uint64_t before = in ? packets_of(gate.maps(), 0) + packets_of(gate.maps(), added.rule_id)
                             : packets_of(gate.maps(), outside[i].rule);
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                    .data_size_in = uint32_t(frame.size()), .data_size_out = uint32_t(out.size()), .repeat = kRepeat);
        if (bpf_prog_test_run_opts(gate.prog_fd(), &opts) != 0) {
          wrong++;
          continue;
        }
        uint64_t after = in ? packets_of(gate.maps(), 0) + packets_of(gate.maps(), added.rule_id)
                            : packets_of(gate.maps(), outside[i].rule);
        bool right = after - before == kRepeat && (in || opts.retval == outside[i].action);
        if (!right && wrong++ == 0)
          first_wrong = src.str() + " (action " + std::to_string(opts.retval) + ", " + std::to_string(after - before) +
                        " of " + std::to_string(kRepeat) + " counted to its rule)";
        runs += kRepeat;
      }
    }
  });
  for (int round = 0; round < 150; round++) {
    gate.maps().publish(base);  // full: the word answers from the table again
    ASSERT_EQ(gate.maps().publish(with, &base), Path::Patch);
    ASSERT_EQ(gate.maps().publish(base, &with), Path::Patch);
    ASSERT_EQ(gate.maps().publish(with, &base), Path::Patch);
  }
  stop = true;
  sender.join();
  EXPECT_EQ(wrong.load(), 0u) << "first at " << first_wrong;
  EXPECT_GT(runs.load(), 10000u);
}

// A kernel refusal part-way through a patch (the trie is full) undoes the
// trie changes already made, so that when the full publish fails too the
// running allowlist is still the one before the change.
TEST(PublishPatch, ARefusalPartWayUndoesWhatThePatchChanged) {
  XdpGate gate;
  gate.maps().set_config(quiet_drop());
  std::vector<TrieEntry> cur{TrieEntry{v4(0x3c000000, 24), 1, RuleKind::Admit}};
  gate.maps().publish(cur);
  // The trie's room for patches, filled with /32s under one directory word.
  uint32_t id = 2;
  for (uint32_t round = 0; round < 16; round++) {
    auto next = cur;
    for (uint32_t i = 0; i < 64; i++)
      next.push_back(TrieEntry{v4(0x32000000u + round * 64 + i, 32), id++, RuleKind::Admit});
    sort_by_prefix(next);
    ASSERT_EQ(gate.maps().publish(next, &cur), Path::Patch) << "round " << round;
    cur = next;
  }
  // The full publish cannot install its tries either.
  ASSERT_EQ(bpf_map_freeze(gate.map_fd(mapname::allow_v4)), 0) << std::strerror(errno);
  // Removing 60.0.0.0/24 makes room for 60.1.0.0/24, not for 60.2.0.0/24
  // (the changes side by side at the end: the patch compares the lists from
  // both ends).
  auto next = cur;
  next.pop_back();
  next.push_back(TrieEntry{v4(0x3c010000, 24), id++, RuleKind::Admit});
  next.push_back(TrieEntry{v4(0x3c020000, 24), id++, RuleKind::Admit});
  sort_by_prefix(next);
  EXPECT_THROW(gate.maps().publish(next, &cur), SystemError);
  EXPECT_TRUE(gate.maps().active_entries() == cur) << "the trie is not the allowlist from before the change";
  EXPECT_EQ(program_answer(gate, v4(0x3c000001, 32), 1), std::make_pair(uint32_t(XDP_PASS), true));
  EXPECT_EQ(program_answer(gate, v4(0x3c010001, 32), SG_RULE_DEFAULT), std::make_pair(uint32_t(XDP_DROP), true));
}
