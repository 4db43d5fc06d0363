// What the read commands report, built once as JSON (the documented schema,
// docs/json-schema.md) and rendered as text from that same JSON, so the two
// views cannot disagree.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cidr.hpp"
#include "feed_settings.hpp"
#include "gate_maps.hpp"
#include "ruleset.hpp"
#include "state.hpp"

namespace smtpgate {

/// Schema version of every JSON document smtpgatectl prints.
constexpr int kJsonSchemaVersion = 1;

/// status: interfaces, mode, action, ports, ranges per origin, program ids.
nlohmann::json build_status(const Paths& paths);
/// ranges list: every range the gate knows, with kind, origin, rule id.
nlohmann::json build_ranges(const Paths& paths);
/// stats: per-range counters, the default rule, totals per verdict and reason.
nlohmann::json build_stats(const Paths& paths);
/// explain: the verdict a SYN from address would get now, and why.
nlohmann::json build_explain(const Paths& paths, const Cidr& address);

/// top: the most turned-away sources of the recently-refused table,
/// Microsoft's first; at most `limit`, only those whose deciding rule has
/// `origin` when given.
nlohmann::json build_top(const Paths& paths, size_t limit, const std::string& origin);

/// feed status: instance, applied version and source, last check, last error,
/// the other instances watched.
nlohmann::json build_feed_status(const Paths& paths, const FeedSettingsChoice& settings);

/// True for the origins that mean "Microsoft publishes this range".
bool is_feed_origin(const std::string& origin);

/// The feed-origin ranges among some desired ranges, to tell whether an
/// address is Microsoft's with one set lookup per prefix length, not a scan.
class FeedCover {
 public:
  FeedCover() = default;
  explicit FeedCover(const std::vector<DesiredRange>& desired);
  /// True when the address lies inside any of the ranges.
  bool contains(const Cidr& address) const;

 private:
  std::set<Cidr> ranges_;
};

/// The rules of the active allowlist by id, described as every document
/// prints them: rule_id, range, kind, origin, note.
class RuleIndex {
 public:
  RuleIndex(const GateMaps& maps, const std::vector<DesiredRange>& desired);
  /// From entries already read (GateMaps::active_entries), not read again.
  RuleIndex(const std::vector<TrieEntry>& active, const std::vector<DesiredRange>& desired);
  /// Rule 0 is the default rule; an id no range holds now (its range left
  /// since) is described with range null and origin "unknown".
  nlohmann::json rule(uint32_t rule_id) const;
  /// True when the address lies inside any range with a feed origin the gate
  /// knows (admitted or watched, whichever range decides).
  bool microsoft(const Cidr& address) const { return feed_.contains(address); }

 private:
  std::map<uint32_t, nlohmann::json> by_id_;
  FeedCover feed_;
};

/// The desired ranges of a state directory (StateStore::desired_ranges), read
/// only when asked and again only after a file changed (its device, inode,
/// size or modification time): the operator's ranges apart from the feed's,
/// so that a feed check, which rewrites feed.json, does not re-read a large
/// ranges.json.
class DesiredState {
 public:
  explicit DesiredState(std::string state_dir);
  ~DesiredState();
  DesiredState(const DesiredState&) = delete;
  DesiredState& operator=(const DesiredState&) = delete;
  /// The range that explains a trie entry, as DesiredIndex::find over
  /// StateStore::desired_ranges() finds it; nullopt when none does.
  std::optional<DesiredRange> explain(const TrieEntry& entry);
  /// RuleIndex::microsoft from the feed's files alone.
  bool microsoft(const Cidr& address);

 private:
  struct Part;
  std::string dir_;
  std::unique_ptr<Part> operator_, feed_;
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
  bool microsoft(const Cidr& address) { return desired_.microsoft(address); }

 private:
  /// Forgets the rules named under another publish than `generation`.
  void follow(uint32_t generation);

  const GateMaps& maps_;
  DesiredState desired_;
  uint32_t generation_ = 0;
  std::map<uint32_t, std::pair<Cidr, nlohmann::json>> by_id_;  // rules of generation_: range, name
};

std::string render_status(const nlohmann::json& j);
std::string render_feed_status(const nlohmann::json& j);
std::string render_ranges(const nlohmann::json& j);
std::string render_stats(const nlohmann::json& j);
std::string render_explain(const nlohmann::json& j);
std::string render_top(const nlohmann::json& j);

/// What a sender (EOP) reports when this action refuses its SYN.
std::string eop_code_for(Action a);
/// What to add to a CLOCK_MONOTONIC time (ns) to get Unix time (ns) now.
/// The program's CLOCK_MONOTONIC_COARSE stamps are the same clock at tick
/// resolution; reading the fine clocks keeps the offset steady.
int64_t monotonic_offset_ns();
/// A CLOCK_MONOTONIC_COARSE timestamp (ns, as the program records them) as
/// Unix time in ns, and as RFC 3339 wall-clock time.
int64_t monotonic_to_unix_ns(uint64_t mono_ns);
std::string monotonic_to_wall(uint64_t mono_ns);

}  // namespace smtpgate
