// What the read commands report, built once as JSON (the documented schema,
// docs/json-schema.md) and rendered as text from that same JSON, so the two
// views cannot disagree.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cidr.hpp"
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
nlohmann::json build_feed_status(const Paths& paths);

/// True for the origins that mean "Microsoft publishes this range".
bool is_feed_origin(const std::string& origin);

/// The rules of the active allowlist by id, described as every document
/// prints them: rule_id, range, kind, origin, note.
class RuleIndex {
 public:
  RuleIndex(const GateMaps& maps, std::vector<DesiredRange> desired);
  /// Rule 0 is the default rule; an id no range holds now (its range left
  /// since) is described with range null and origin "unknown".
  nlohmann::json rule(uint32_t rule_id) const;
  /// True when the address lies inside any range with a feed origin the gate
  /// knows (admitted or watched, whichever range decides).
  bool microsoft(const Cidr& address) const;
  const std::vector<DesiredRange>& desired() const { return desired_; }

 private:
  std::map<uint32_t, nlohmann::json> by_id_;
  std::vector<DesiredRange> desired_;
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
