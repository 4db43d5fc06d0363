// explain: the verdict a SYN from one address would get now, why, and what
// the feed knows about it.
#include <time.h>

#include <algorithm>

#include "builders.hpp"
#include "desired_state.hpp"
#include "eop_codes.hpp"
#include "feed_gap.hpp"
#include "feed_other.hpp"
#include "feed_sync.hpp"
#include "gate_maps.hpp"
#include "grace.hpp"
#include "report_json.hpp"
#include "rule_naming.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {

// The deciding rule with its counters (those of the whole range).
json deciding_rule_json(const GateMaps& maps, const std::optional<TrieEntry>& m,
                        const std::vector<DesiredRange>& desired) {
  json rule = m ? rule_json(*m, DesiredIndex(desired).find(*m)) : default_rule_json();
  if (!m) rule["note"] = "no range contains this address";
  rule["counters"] = counters_json(maps.rule_counters(m ? m->rule_id : SG_RULE_DEFAULT));
  return rule;
}

std::string why(const Cidr& address, const std::optional<TrieEntry>& m) {
  if (!m) return address.address_str() + " is in no range the gate knows";
  std::string kind = to_string(m->kind);
  return address.address_str() + " is inside " + m->prefix.str() + (m->kind == RuleKind::Admit ? ", an " : ", a ") +
         kind + " range";
}

// The address's row of the recently-refused table, or null.
json last_refused_json(const GateMaps& maps, const Cidr& address) {
  for (const auto& s : maps.recent_refused())
    if (s.address == address) return refused_source_json(s);
  return nullptr;
}

// Every origin that lists the address, not only the deciding one.
json listed_in_json(const std::vector<DesiredRange>& desired, const Cidr& address) {
  json listed = json::array();
  for (const auto& d : desired)
    if (d.cidr.contains(address)) listed.push_back(desired_range_json(d));
  return listed;
}

std::string feed_gap_advice(const Cidr& address, const json& gap) {
  std::string around =
      Cidr::from_bytes(address.family(), address.bytes().data(), address.family() == Family::V4 ? 24 : 64).str();
  return address.address_str() + " is EOP host " + gap["name"].get<std::string>() +
         " (its PTR name, confirmed forward, is under " + gap["domain"].get<std::string>() + ", " +
         gap["instances"].get<std::string>() +
         ") but the published port-25 set does not hold it: a feed gap, EOP sending from where it has "
         "not published (such as its relay pool in 40.95.0.0/16). Its mail is queued and bounced after "
         "24 hours: admit it now with smtpgatectl ranges add " +
         around + " --comment 'EOP host " + gap["name"].get<std::string>() + ", not published'";
}

// What the feed knows about the address: the version applied and announced,
// whether a rejected, removed or other instance's set lists it.
json feed_view(const FeedStatus& f, const std::vector<OtherInstanceSet>& others, const Cidr& address) {
  auto in = [&](const std::vector<Cidr>& v) {
    return std::any_of(v.begin(), v.end(), [&](const Cidr& c) { return c.contains(address); });
  };
  json j{{"instance", f.applied ? json(to_string(f.applied->instance)) : json(nullptr)},
         {"applied_version", f.applied ? null_if_empty(f.applied->version) : json(nullptr)},
         {"latest_version", null_if_empty(f.latest_version)},
         {"stale", f.stale()},
         {"in_applied", f.applied && in(f.applied->ranges)},
         {"in_rejected", nullptr},
         {"removed_by", nullptr},
         {"grace_until", nullptr},
         {"in_grace", false},
         {"other_instances", json::array()}};
  if (f.rejected && in(f.rejected->ranges))
    j["in_rejected"] = {{"version", null_if_empty(f.rejected->version)}, {"reason", f.rejected->reason}};
  for (const auto& r : f.recently_removed)
    if (r.cidr.contains(address)) {
      j["removed_by"] = r.version.empty() ? json("an unversioned import") : json(r.version);
      if (r.grace_until > r.removed_at) j["grace_until"] = utc_day(r.grace_until);
      j["in_grace"] = in_grace(r, ::time(nullptr));
    }
  for (const auto& o : others)
    if (in(o.ranges)) j["other_instances"].push_back(to_string(o.instance));
  return j;
}

// The advice that follows from where the feed lists the address (feed_view),
// for an address the gate admits or not.
void add_feed_advice(const FeedStatus& f, const json& view, const std::string& a, bool admitted,
                     const std::string& deciding_kind, json& advice) {
  if (view["in_grace"].get<bool>())
    advice.push_back("Microsoft removed the range holding " + a + " in version " +
                     view["removed_by"].get<std::string>() + "; it stays admitted in grace until " +
                     view["grace_until"].get<std::string>() +
                     " (feed.removal_grace_days), then it is refused. Traffic from it now means EOP still sends "
                     "from there: if it keeps coming, add the range with smtpgatectl ranges add");
  if (admitted) return;
  if (!view["in_rejected"].is_null())
    advice.push_back(
        a + " is in feed version " + (f.rejected->version.empty() ? "(unversioned)" : f.rejected->version) +
        ", which validation rejected: " + f.rejected->reason +
        (f.rejected->watched
             ? ". Check the cause (smtpgatectl feed status); smtpgatectl feed sync --force applies it anyway"
             : ". Its ranges are kept out of the gate: a forged or damaged answer looks like this. Compare "
               "it with Microsoft's published list; only if it matches, smtpgatectl feed sync --force "
               "(never past the prefix minimums or special-purpose space)"));
  if (view["in_applied"].get<bool>() && deciding_kind == "deny")
    advice.push_back(a +
                     " is in the applied feed, but an operator deny range overrides it: "
                     "smtpgatectl ranges del that range if EOP should reach you from here");
  if (!view["removed_by"].is_null() && !view["in_grace"].get<bool>())
    advice.push_back(
        "Microsoft removed the range holding " + a + " in version " + view["removed_by"].get<std::string>() +
        (view["grace_until"].is_null() ? std::string()
                                       : ", and its grace ended " + view["grace_until"].get<std::string>()) +
        ": EOP should no longer send from it; if it still does, add the range with smtpgatectl ranges add");
  // A stale allowlist is news only when the announced version was not
  // refused: syncing again would refuse it again.
  bool latest_refused = f.rejected && f.rejected->version == f.latest_version;
  if (f.stale() && !latest_refused && !view["in_applied"].get<bool>())
    advice.push_back("the service announces feed version " + f.latest_version + " but " +
                     (f.applied && !f.applied->version.empty() ? f.applied->version : std::string("no version")) +
                     " is applied: your allowlist is stale, run smtpgatectl feed sync");
  for (const auto& inst : view["other_instances"])
    advice.push_back(a + " is in the " + inst.get<std::string>() + " instance's port-25 set; this gate follows " +
                     (f.applied ? to_string(f.applied->instance) : std::string("another instance")) +
                     ": if mail for you comes through " + inst.get<std::string>() +
                     ", set [feed] instance or add the range with smtpgatectl ranges add");
  if (!f.last_error.empty() && view["in_rejected"].is_null())
    advice.push_back("the last feed check failed: " + f.last_error);
}

}  // namespace

json build_explain(const Paths& paths, const Cidr& address) {
  GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
  // One address: its deciding entry and the state, never the whole allowlist.
  std::vector<DesiredRange> desired = read_desired_ranges(paths.state_dir);
  GateConfig cfg = maps.config();
  std::optional<TrieEntry> m = maps.match(address);
  bool admitted = m && m->kind == RuleKind::Admit;
  json j{{"schema", kJsonSchemaVersion},
         {"address", address.address_str()},
         {"action", to_string(cfg.action)},
         {"ports", cfg.ports},
         {"verdict", admitted ? "admit" : to_string(cfg.action)},
         {"rule", deciding_rule_json(maps, m, desired)},
         {"microsoft", FeedCover(desired).contains(address)},
         {"why", why(address, m)},
         {"eop_code", admitted ? json(nullptr) : json(eop_code_for(cfg.action))},
         {"last_refused", last_refused_json(maps, address)},
         {"listed_in", listed_in_json(desired, address)},
         {"feed_gap", feed_gap_json(read_feed_gaps(paths.state_dir), address)}};
  json advice = json::array();
  if (!j["feed_gap"].is_null() && !admitted) advice.push_back(feed_gap_advice(address, j["feed_gap"]));
  FeedStatus feed = read_feed_status(paths.state_dir);
  j["feed"] = feed_view(feed, read_other_instances(paths.state_dir), address);
  add_feed_advice(feed, j["feed"], address.address_str(), admitted, j["rule"]["kind"].get<std::string>(), advice);
  if (!admitted && cfg.action == Action::Monitor)
    advice.push_back(
        "the action is monitor: the SYN passes and is counted as would-refuse; "
        "smtpgatectl action drop|reject enforces");
  j["advice"] = advice;
  return j;
}

}  // namespace smtpgate
