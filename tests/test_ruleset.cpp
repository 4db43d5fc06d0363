// compile_rules: desired ranges -> trie entries with stable rule ids.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "ruleset.hpp"

using namespace smtpgate;

namespace {
DesiredRange D(const char* c, RuleKind k, const char* origin = origin::kOperator) {
  return DesiredRange{Cidr::parse(c), k, origin, ""};
}
const TrieEntry* find(const CompiledRules& r, const char* c) {
  for (const auto& e : r.entries)
    if (e.prefix == Cidr::parse(c)) return &e;
  return nullptr;
}
constexpr auto A = RuleKind::Admit;
constexpr auto X = RuleKind::Deny;
constexpr auto W = RuleKind::Watch;
}  // namespace

TEST(Ruleset, SamePrefixFromSeveralOriginsBecomesOneEntryDenyWinning) {
  struct Case {
    std::vector<RuleKind> kinds;
    RuleKind expect;
  } cases[] = {
      {{A, X}, X}, {{X, A}, X}, {{A, W}, A}, {{W, A}, A}, {{W, X}, X}, {{W, W}, W}, {{A, A}, A},
  };
  for (const auto& c : cases) {
    std::vector<DesiredRange> d;
    for (auto k : c.kinds) d.push_back(D("40.92.0.0/15", k));
    auto r = compile_rules(d, {}, 64);
    ASSERT_EQ(r.entries.size(), 1u);
    EXPECT_EQ(r.entries[0].kind, c.expect);
  }
}

TEST(Ruleset, WatchInsideAnAdmitOrDenyIsLeftOut) {
  auto r = compile_rules({D("40.92.0.0/15", A), D("40.92.1.0/24", W, origin::kFeedRemoved), D("10.0.0.0/8", X),
                          D("10.1.0.0/16", W), D("52.96.0.0/12", W), D("52.100.0.0/14", A)},
                         {}, 64);
  EXPECT_EQ(find(r, "40.92.1.0/24"), nullptr);
  EXPECT_EQ(find(r, "10.1.0.0/16"), nullptr);
  // A watch range that contains an admit range stays: the admit is longer.
  ASSERT_NE(find(r, "52.96.0.0/12"), nullptr);
  EXPECT_EQ(find(r, "52.100.0.0/14")->kind, A);
}

TEST(Ruleset, IdsStayWithTheirPrefixAcrossCompiles) {
  auto first = compile_rules({D("40.92.0.0/15", A), D("40.107.0.0/16", A), D("52.100.0.0/14", A)}, {}, 64);
  auto second = compile_rules({D("40.107.0.0/16", A), D("52.100.0.0/14", A), D("104.47.0.0/17", A)}, first.entries, 64);
  EXPECT_EQ(find(second, "40.107.0.0/16")->rule_id, find(first, "40.107.0.0/16")->rule_id);
  EXPECT_EQ(find(second, "52.100.0.0/14")->rule_id, find(first, "52.100.0.0/14")->rule_id);
  // The new range does not take the id the leaving range held.
  EXPECT_NE(find(second, "104.47.0.0/17")->rule_id, find(first, "40.92.0.0/15")->rule_id);
  ASSERT_EQ(second.fresh_ids.size(), 1u);
  EXPECT_EQ(second.fresh_ids[0], find(second, "104.47.0.0/17")->rule_id);
}

TEST(Ruleset, AKindChangeIsANewRule) {
  auto first = compile_rules({D("40.92.0.0/15", A)}, {}, 64);
  auto second = compile_rules({D("40.92.0.0/15", X)}, first.entries, 64);
  EXPECT_NE(second.entries[0].rule_id, first.entries[0].rule_id);
  EXPECT_EQ(second.fresh_ids.size(), 1u);
}

TEST(Ruleset, IdsAreNeverTheDefaultRuleAndStayBelowMax) {
  std::vector<DesiredRange> d;
  for (int i = 0; i < 15; i++) d.push_back(D(("40.92." + std::to_string(i) + ".0/24").c_str(), A));
  auto r = compile_rules(d, {}, 16);
  for (const auto& e : r.entries) {
    EXPECT_GT(e.rule_id, 0u);
    EXPECT_LT(e.rule_id, 16u);
  }
  d.push_back(D("40.93.0.0/24", A));
  EXPECT_THROW(compile_rules(d, {}, 16), std::exception);
}

TEST(Ruleset, LeavingIdsAreReusedOnlyWhenNothingElseIsFree) {
  std::vector<DesiredRange> a, b;
  for (int i = 0; i < 15; i++) a.push_back(D(("40.92." + std::to_string(i) + ".0/24").c_str(), A));
  for (int i = 0; i < 15; i++) b.push_back(D(("40.93." + std::to_string(i) + ".0/24").c_str(), A));
  auto first = compile_rules(a, {}, 16);
  auto second = compile_rules(b, first.entries, 16);  // every id is leaving: must reuse
  EXPECT_EQ(second.entries.size(), 15u);
  EXPECT_EQ(second.fresh_ids.size(), 15u);
}

TEST(Ruleset, ALargeRandomSetKeepsEveryRule) {
  // Thousands of nested prefixes of every kind, compiled twice: each check
  // below is made by brute force over the desired ranges.
  std::mt19937 rng(18);
  auto draw = [&] {
    std::vector<DesiredRange> d;
    for (int i = 0; i < 4000; i++) {
      unsigned len = 12 + rng() % 17;
      uint8_t b[4] = {40, uint8_t(rng() % 4), uint8_t(rng()), 0};
      RuleKind k = rng() % 3 == 0 ? W : rng() % 5 == 0 ? X : A;
      d.push_back(DesiredRange{Cidr::from_bytes(Family::V4, b, len), k, origin::kOperator, ""});
    }
    return d;
  };
  std::vector<DesiredRange> first_d = draw();
  auto first = compile_rules(first_d, {}, 1u << 16);
  std::vector<DesiredRange> second_d(first_d.begin(), first_d.begin() + 2000);
  for (auto& d : draw()) second_d.push_back(d);
  auto second = compile_rules(second_d, first.entries, 1u << 16);

  std::map<uint32_t, Cidr> ids_before;
  for (const auto& e : first.entries) ids_before.emplace(e.rule_id, e.prefix);
  for (const auto* r : {&first, &second}) {
    const auto& desired = r == &first ? first_d : second_d;
    std::map<Cidr, RuleKind> strongest;
    for (const auto& d : desired) {
      auto [it, fresh] = strongest.emplace(d.cidr, d.kind);
      auto rank = [](RuleKind k) { return k == X ? 3 : k == A ? 2 : 1; };
      if (!fresh && rank(d.kind) > rank(it->second)) it->second = d.kind;
    }
    std::set<uint32_t> ids;
    size_t i = 0;
    for (const auto& [c, k] : strongest) {
      bool covered = false;
      for (const auto& [o, ok] : strongest) covered |= ok != W && o != c && o.contains(c);
      if (k == W && covered) continue;
      ASSERT_LT(i, r->entries.size());
      const TrieEntry& e = r->entries[i++];
      EXPECT_EQ(e.prefix, c);
      EXPECT_EQ(e.kind, k);
      EXPECT_TRUE(ids.insert(e.rule_id).second) << "id " << e.rule_id << " twice";
    }
    EXPECT_EQ(i, r->entries.size());
  }
  // The second compile keeps the id of every prefix that stays with its kind
  // and gives new ones ids no first-compile entry held.
  std::map<Cidr, TrieEntry> before;
  for (const auto& e : first.entries) before.emplace(e.prefix, e);
  std::set<uint32_t> fresh(second.fresh_ids.begin(), second.fresh_ids.end());
  for (const auto& e : second.entries) {
    auto it = before.find(e.prefix);
    if (it != before.end() && it->second.kind == e.kind) {
      EXPECT_EQ(e.rule_id, it->second.rule_id);
      EXPECT_EQ(fresh.count(e.rule_id), 0u);
    } else {
      EXPECT_EQ(fresh.count(e.rule_id), 1u);
      EXPECT_EQ(ids_before.count(e.rule_id), 0u);
    }
  }
}
