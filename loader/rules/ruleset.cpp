#include "ruleset.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "error.hpp"

namespace smtpgate {

namespace {
int strength(RuleKind k) {
  switch (k) {
    case RuleKind::Deny: return 3;
    case RuleKind::Admit: return 2;
    case RuleKind::Watch: return 1;
  }
  return 0;
}

// Prefixes of admit/deny kind, to test "does one of them contain this watch
// prefix". Walking up a prefix's ancestors costs at most 128 set lookups.
bool covered_by(const std::set<Cidr>& decisive, const Cidr& c) {
  Cidr p = c;
  while (true) {
    if (decisive.count(p)) return true;
    if (p.prefix_len() == 0) return false;
    p = p.parent();
  }
}
}  // namespace

CompiledRules compile_rules(const std::vector<DesiredRange>& desired, const std::vector<TrieEntry>& current,
                            uint32_t max_rules) {
  std::map<Cidr, RuleKind> winner;
  for (const auto& d : desired) {
    auto [it, inserted] = winner.emplace(d.cidr, d.kind);
    if (!inserted && strength(d.kind) > strength(it->second)) it->second = d.kind;
  }
  std::set<Cidr> decisive;
  for (const auto& [c, k] : winner)
    if (k != RuleKind::Watch) decisive.insert(c);

  std::map<Cidr, TrieEntry> kept;
  for (const auto& e : current) kept.emplace(e.prefix, e);

  CompiledRules out;
  std::set<uint32_t> used;
  std::vector<std::pair<Cidr, RuleKind>> needs_id;
  for (const auto& [c, k] : winner) {
    if (k == RuleKind::Watch && covered_by(decisive, c)) continue;
    auto it = kept.find(c);
    if (it != kept.end() && it->second.kind == k) {
      out.entries.push_back(it->second);
      used.insert(it->second.rule_id);
    } else {
      needs_id.emplace_back(c, k);
    }
  }
  // Ids of ranges that leave now are not reused in the same publish: a packet
  // judged just before the flip still counts against the old meaning.
  for (const auto& e : current) used.insert(e.rule_id);

  if (out.entries.size() + needs_id.size() > max_rules - 1)
    throw InputError("the allowlist needs " + std::to_string(out.entries.size() + needs_id.size()) +
                     " ranges but this gate holds at most " + std::to_string(max_rules - 1) +
                     ": raise max_rules in smtpgate.toml and restart smtpgated");
  uint32_t next = 1;
  for (const auto& [c, k] : needs_id) {
    while (next < max_rules && used.count(next)) next++;
    if (next >= max_rules) {
      // Every free id is held by a range leaving now: reuse those after all.
      used.clear();
      for (const auto& e : out.entries) used.insert(e.rule_id);
      for (const auto& f : out.fresh_ids) used.insert(f);
      next = 1;
      while (used.count(next)) next++;
    }
    out.entries.push_back(TrieEntry{c, next, k});
    out.fresh_ids.push_back(next);
    used.insert(next);
  }
  std::sort(out.entries.begin(), out.entries.end(),
            [](const TrieEntry& a, const TrieEntry& b) { return a.prefix < b.prefix; });
  return out;
}

DesiredIndex::DesiredIndex(const std::vector<DesiredRange>& desired) {
  for (const auto& d : desired) by_prefix_.emplace(d.cidr, &d);
}

const DesiredRange* DesiredIndex::find(const TrieEntry& entry) const {
  auto [first, last] = by_prefix_.equal_range(entry.prefix);
  for (auto it = first; it != last; ++it)
    if (it->second->kind == entry.kind) return it->second;
  return first != last ? first->second : nullptr;
}

}  // namespace smtpgate
