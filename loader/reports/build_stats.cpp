// stats: the counters of every rule, per origin, per verdict and per reason.
#include "builders.hpp"
#include "desired_state.hpp"
#include "gate_maps.hpp"
#include "report_json.hpp"
#include "rule_naming.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {

constexpr const char* kCounterNames[] = {"admit_packets", "admit_bytes", "refuse_packets", "refuse_bytes"};

// Sums of the rules' counters per origin, with the number of ranges.
class OriginTotals {
 public:
  void add(const json& rule) {
    json& o = by_origin_[rule["origin"].get<std::string>()];
    if (o.is_null()) {
      o = {{"ranges", 0}};
      for (const char* k : kCounterNames) o[k] = 0;
    }
    if (rule["range"].is_string()) o["ranges"] = o["ranges"].get<uint64_t>() + 1;
    for (const char* k : kCounterNames) o[k] = o[k].get<uint64_t>() + rule["counters"][k].get<uint64_t>();
  }
  const json& json_value() const { return by_origin_; }

 private:
  json by_origin_ = json::object();
};

// Packets and bytes per name, from counters indexed by a kernel enum.
template <typename Counters, typename Name>
json named_counters(const Counters& c, uint32_t count, Name name) {
  json out = json::object();
  for (uint32_t i = 0; i < count; i++) out[name(i)] = {{"packets", c[i].packets}, {"bytes", c[i].bytes}};
  return out;
}

}  // namespace

json build_stats(const Paths& paths) {
  GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
  std::vector<TrieEntry> active = maps.active_entries();
  RuleIndex index(active, read_desired_ranges(paths.state_dir));
  auto with_counters = [&](uint32_t rule_id) {
    json r = index.rule(rule_id);
    r["counters"] = counters_json(maps.rule_counters(rule_id));
    return r;
  };
  OriginTotals totals;
  json rules = json::array();
  for (const auto& e : active) {
    rules.push_back(with_counters(e.rule_id));
    totals.add(rules.back());
  }
  json def = with_counters(SG_RULE_DEFAULT);
  totals.add(def);
  return {{"schema", kJsonSchemaVersion},
          {"action", to_string(maps.config().action)},
          {"by_origin", totals.json_value()},
          {"rules", rules},
          {"default_rule", def},
          {"verdicts", named_counters(maps.verdict_counters(), SG_VERDICT_MAX, verdict_name)},
          {"reasons", named_counters(maps.reason_counters(), SG_REASON_MAX, reason_name)},
          {"events_suppressed", maps.events_suppressed()}};
}

}  // namespace smtpgate
