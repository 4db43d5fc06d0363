#include "ruleset.hpp"

#include <algorithm>

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

}  // namespace

CompiledRules compile_rules(const std::vector<DesiredRange>& desired, const std::vector<TrieEntry>& current,
                            uint32_t max_rules) {
  // Sorted arrays, no tree of nodes: a million ranges compile in a few
  // radix passes and linear walks.
  std::vector<Cidr> prefixes;
  prefixes.reserve(desired.size());
  for (const auto& d : desired) prefixes.push_back(d.cidr);
  std::vector<uint32_t> order = prefix_order(prefixes);
  prefixes.clear();
  prefixes.shrink_to_fit();

  // One entry per prefix, in prefix order, the strongest kind winning.
  std::vector<TrieEntry> winners;
  winners.reserve(order.size());
  for (uint32_t i : order) {
    const DesiredRange& d = desired[i];
    if (!winners.empty() && winners.back().prefix == d.cidr) {
      if (strength(d.kind) > strength(winners.back().kind)) winners.back().kind = d.kind;
    } else {
      winners.push_back(TrieEntry{d.cidr, 0, d.kind});
    }
  }
  order.clear();
  order.shrink_to_fit();

  // The current entries in prefix order (the first of equal prefixes kept).
  std::vector<Cidr> current_prefixes;
  current_prefixes.reserve(current.size());
  for (const auto& e : current) current_prefixes.push_back(e.prefix);
  std::vector<uint32_t> current_order = prefix_order(current_prefixes);

  uint32_t id_bound = max_rules;
  for (const auto& e : current) id_bound = std::max(id_bound, e.rule_id + 1);
  std::vector<bool> used(id_bound);

  CompiledRules out;
  out.entries.reserve(winners.size());
  // Admit and deny prefixes that contain the one being walked, each inside
  // the one below it: sorted by address then length, every prefix that
  // contains another comes before it, and what lies between lies inside it.
  std::vector<Cidr> decisive;
  size_t needs_id = 0;
  size_t cur = 0;
  for (const auto& w : winners) {
    while (!decisive.empty() && !decisive.back().contains(w.prefix)) decisive.pop_back();
    bool covered = !decisive.empty();
    if (w.kind != RuleKind::Watch) decisive.push_back(w.prefix);
    // A watch prefix inside an admit or deny one is left out.
    if (w.kind == RuleKind::Watch && covered) continue;
    while (cur < current_order.size() && current[current_order[cur]].prefix < w.prefix) cur++;
    const TrieEntry* kept = cur < current_order.size() && current[current_order[cur]].prefix == w.prefix
                                ? &current[current_order[cur]]
                                : nullptr;
    if (kept && kept->kind == w.kind) {
      out.entries.push_back(*kept);
      used[kept->rule_id] = true;
    } else {
      out.entries.push_back(w);  // rule id 0: given below
      needs_id++;
    }
  }
  winners.clear();
  winners.shrink_to_fit();
  // Ids of ranges that leave now are not reused in the same publish: a packet
  // judged just before the flip still counts against the old meaning.
  for (const auto& e : current) used[e.rule_id] = true;

  if (out.entries.size() > max_rules - 1)
    throw InputError("the allowlist needs " + std::to_string(out.entries.size()) +
                     " ranges but this gate holds at most " + std::to_string(max_rules - 1) +
                     ": raise max_rules in smtpgate.toml and restart smtpgated");
  out.fresh_ids.reserve(needs_id);
  uint32_t next = 1;
  for (auto& e : out.entries) {
    if (e.rule_id != 0) continue;
    while (next < max_rules && used[next]) next++;
    if (next >= max_rules) {
      // Every free id is held by a range leaving now: reuse those after all.
      std::fill(used.begin(), used.end(), false);
      for (const auto& k : out.entries) used[k.rule_id] = true;
      for (uint32_t f : out.fresh_ids) used[f] = true;
      next = 1;
      while (used[next]) next++;
    }
    e.rule_id = next;
    out.fresh_ids.push_back(next);
    used[next] = true;
  }
  return out;
}

DesiredIndex::DesiredIndex(const std::vector<DesiredRange>& desired) {
  std::vector<Cidr> prefixes;
  prefixes.reserve(desired.size());
  for (const auto& d : desired) prefixes.push_back(d.cidr);
  by_prefix_.reserve(desired.size());
  for (uint32_t i : prefix_order(prefixes)) by_prefix_.push_back(&desired[i]);
}

const DesiredRange* DesiredIndex::find(const TrieEntry& entry) const {
  auto first = std::lower_bound(by_prefix_.begin(), by_prefix_.end(), entry.prefix,
                                [](const DesiredRange* d, const Cidr& c) { return d->cidr < c; });
  auto last = first;
  while (last != by_prefix_.end() && (*last)->cidr == entry.prefix) ++last;
  for (auto it = first; it != last; ++it)
    if ((*it)->kind == entry.kind) return *it;
  return first != last ? *first : nullptr;
}

}  // namespace smtpgate
