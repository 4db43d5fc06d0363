// top: the sources the gate turned away most, Microsoft's first.
#include <algorithm>
#include <numeric>

#include "builders.hpp"
#include "desired_state.hpp"
#include "feed_gap.hpp"
#include "gate_maps.hpp"
#include "report_json.hpp"
#include "rule_naming.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {

// A recently refused source with its deciding rule and feed gap.
struct TopSource {
  RecentSource source;
  json rule;
  json feed_gap;
  bool microsoft = false;
};

// The order top shows: Microsoft's sources first, then by count, then by
// the most recent.
bool shown_before(const TopSource& a, const TopSource& b) {
  if (a.microsoft != b.microsoft) return a.microsoft;
  if (a.source.count != b.source.count) return a.source.count > b.source.count;
  return a.source.last_seen_ns > b.source.last_seen_ns;
}

json row_json(const TopSource& t) {
  json row = refused_source_json(t.source);
  row["source"] = t.source.address.address_str();
  row["microsoft"] = t.microsoft;
  for (const char* k : {"range", "kind", "origin", "note"}) row[k] = t.rule[k];
  row["feed_gap"] = t.feed_gap;
  return row;
}

}  // namespace

json build_top(const Paths& paths, size_t limit, const std::string& origin) {
  GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
  // Each source's rule from its own address: no dump of the whole allowlist.
  RuleNamer names(maps, paths.state_dir);
  std::vector<TopSource> all;
  for (const auto& s : maps.recent_refused()) {
    json rule = names.rule(s.rule_id, s.address);
    if (!origin.empty() && rule["origin"] != origin) continue;
    all.push_back({s, rule, nullptr, false});
  }
  // Microsoft's: a feed origin decides, or a feed lists it, or it is a feed gap.
  FeedGaps gaps = read_feed_gaps(paths.state_dir);
  for (auto& t : all) {
    t.feed_gap = feed_gap_json(gaps, t.source.address);
    t.microsoft = is_feed_origin(t.rule["origin"]) || names.microsoft(t.source.address) || !t.feed_gap.is_null();
  }
  std::stable_sort(all.begin(), all.end(), shown_before);
  json rows = json::array();
  for (size_t i = 0; i < all.size() && i < limit; i++) rows.push_back(row_json(all[i]));
  return {{"schema", kJsonSchemaVersion},
          {"action", to_string(maps.config().action)},
          {"origin", origin.empty() ? json(nullptr) : json(origin)},
          {"limit", limit},
          {"sources_known", all.size()},
          {"sources", rows}};
}

}  // namespace smtpgate
