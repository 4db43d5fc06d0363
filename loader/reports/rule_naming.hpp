// Rules of the active allowlist named as every document prints them:
// rule_id, range, kind, origin, note. RuleIndex names them all from the
// whole allowlist; RuleNamer one at a time from an address they decided.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cidr.hpp"
#include "desired_state.hpp"
#include "gate_maps.hpp"
#include "ruleset.hpp"

namespace smtpgate {

/// Rule 0, the default rule: range null, kind and origin "default".
nlohmann::json default_rule_json();
/// An active entry's rule; origin "unknown" when no desired range explains it.
nlohmann::json rule_json(const TrieEntry& e, const DesiredRange* d);

/// The rules of the active allowlist by id.
class RuleIndex {
 public:
  RuleIndex(const GateMaps& maps, const std::vector<DesiredRange>& desired);
  /// From entries already read (GateMaps::active_entries), not read again.
  RuleIndex(const std::vector<TrieEntry>& active, const std::vector<DesiredRange>& desired);
  /// Rule 0 is the default rule; an id no range holds now (its range left
  /// since) is described with range null and origin "unknown".
  nlohmann::json rule(uint32_t rule_id) const;
  /// True when the address lies inside any desired range with a feed origin
  /// (admitted or watched, whichever range decides).
  bool microsoft(const Cidr& address) const { return feed_.contains(address); }

 private:
  std::map<uint32_t, nlohmann::json> by_id_;
  FeedCover feed_;
};

/// Rules named one at a time, from an address the rule decided: the range
/// from the active allowlist's prefixes that hold the address (a few map
/// lookups), origin and note from DesiredState. Nothing is read whole; each
/// rule is looked up once per publish. The same JSON as RuleIndex::rule for
/// every rule whose range holds the address; an id whose range no longer
/// holds it (the range left since the event) is "unknown".
class RuleNamer {
 public:
  RuleNamer(const GateMaps& maps, std::string state_dir);
  nlohmann::json rule(uint32_t rule_id, const Cidr& source);
  /// RuleIndex::microsoft, from the feed's files alone.
  bool microsoft(const Cidr& address) { return desired_.microsoft(address); }

 private:
  /// Forgets the rules named under another publish than `generation`.
  void follow(uint32_t generation);

  const GateMaps& maps_;
  DesiredState desired_;
  uint32_t generation_ = 0;
  std::map<uint32_t, std::pair<Cidr, nlohmann::json>> by_id_;  // rules of generation_: range, name
};

}  // namespace smtpgate
