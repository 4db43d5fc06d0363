#include "rule_naming.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {

json unknown_rule_json(uint32_t rule_id) {
  return {{"rule_id", rule_id},
          {"range", nullptr},
          {"kind", "unknown"},
          {"origin", "unknown"},
          {"note", "a range no longer in the allowlist"}};
}

}  // namespace

json default_rule_json() {
  return {{"rule_id", SG_RULE_DEFAULT},
          {"range", nullptr},
          {"kind", "default"},
          {"origin", "default"},
          {"note", "sources no range explains"}};
}

json rule_json(const TrieEntry& e, const DesiredRange* d) {
  return {{"rule_id", e.rule_id},
          {"range", e.prefix.str()},
          {"kind", to_string(e.kind)},
          {"origin", d ? d->origin : "unknown"},
          {"note", d ? d->note : ""}};
}

RuleIndex::RuleIndex(const GateMaps& maps, const std::vector<DesiredRange>& desired)
    : RuleIndex(maps.active_entries(), desired) {}

RuleIndex::RuleIndex(const std::vector<TrieEntry>& active, const std::vector<DesiredRange>& desired) : feed_(desired) {
  DesiredIndex index(desired);
  for (const auto& e : active) by_id_[e.rule_id] = rule_json(e, index.find(e));
}

json RuleIndex::rule(uint32_t rule_id) const {
  if (rule_id == SG_RULE_DEFAULT) return default_rule_json();
  auto it = by_id_.find(rule_id);
  if (it != by_id_.end()) return it->second;
  return unknown_rule_json(rule_id);
}

RuleNamer::RuleNamer(const GateMaps& maps, std::string state_dir) : maps_(maps), desired_(std::move(state_dir)) {}

void RuleNamer::follow(uint32_t generation) {
  if (generation == generation_) return;
  by_id_.clear();
  generation_ = generation;
}

json RuleNamer::rule(uint32_t rule_id, const Cidr& source) {
  if (rule_id == SG_RULE_DEFAULT) return default_rule_json();
  // Rule ids mean what the allowlist in force says: looked up again after a
  // publish.
  follow(maps_.generation());
  if (auto it = by_id_.find(rule_id); it != by_id_.end())
    return it->second.first.contains(source) ? it->second.second : unknown_rule_json(rule_id);
  uint32_t gen = 0;
  std::vector<TrieEntry> holding = maps_.containing(source, &gen);
  follow(gen);  // a publish may have come between the two reads
  for (const auto& e : holding)
    if (e.rule_id == rule_id) {
      std::optional<DesiredRange> d = desired_.explain(e);
      return (by_id_[rule_id] = {e.prefix, rule_json(e, d ? &*d : nullptr)}).second;
    }
  // The id's range (if any) does not hold the source: it left since.
  return unknown_rule_json(rule_id);
}

}  // namespace smtpgate
