// status, ranges list and feed status: what is loaded and configured.
#include <net/if.h>

#include <map>

#include "builders.hpp"
#include "desired_state.hpp"
#include "drop_log.hpp"
#include "feed_other.hpp"
#include "feed_sync.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "links.hpp"
#include "report_json.hpp"
#include "rule_naming.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {

// Interfaces of this network namespace that carry smtpgate.
json interfaces_json(const Paths& paths) {
  json arr = json::array();
  struct if_nameindex* list = if_nameindex();
  if (!list) return arr;
  for (struct if_nameindex* i = list; i->if_index; i++) {
    AttachedInfo a;
    try {
      a = query_attached(i->if_name, paths.pin_dir);
    } catch (...) {
      continue;
    }
    if (!a.attached) continue;
    arr.push_back({{"name", a.ifname},
                   {"ifindex", a.ifindex},
                   {"mode", a.mode},
                   {"prog_id", a.prog_id},
                   {"dispatcher", a.dispatcher},
                   {"uses_pinned_maps", a.uses_pinned_maps},
                   {"other_programs", a.others}});
  }
  if_freenameindex(list);
  return arr;
}

json unguarded_tunnels_json() {
  json arr = json::array();
  for (const auto& t : unguarded_tunnels())
    arr.push_back({{"name", t.ifname}, {"kind", t.kind}, {"guardable", t.guardable}, {"advice", tunnel_advice(t)}});
  return arr;
}

// The feed version applied and the last feed error.
json feed_json(const std::string& state_dir) {
  FeedStatus f = read_feed_status(state_dir);
  json applied = nullptr;
  if (f.applied)
    applied = {{"instance", to_string(f.applied->instance)},
               {"version", null_if_empty(f.applied->version)},
               {"source", f.applied->source}};
  return {{"applied", applied}, {"last_error", null_if_empty(f.last_error)}};
}

// Who reads refused SYNs into the drop log (drops.lock's holder).
json drops_json(const std::string& state_dir) {
  std::optional<LockHolder> consumer = lock_holder(drops_lock_path(state_dir));
  return {{"recorded_by", consumer ? json{{"pid", consumer->pid}, {"command", consumer->command}} : json(nullptr)}};
}

// The active ranges counted per origin and kind.
json ranges_json(const GateMaps& maps, const std::vector<DesiredRange>& desired) {
  std::map<std::string, json> by_origin;
  size_t total = 0;
  DesiredIndex index(desired);
  for (const auto& e : maps.active_entries()) {
    const DesiredRange* d = index.find(e);
    json& o = by_origin[d ? d->origin : "unknown"];
    if (o.is_null()) o = {{"admit", 0}, {"deny", 0}, {"watch", 0}};
    o[to_string(e.kind)] = o[to_string(e.kind)].get<int>() + 1;
    total++;
  }
  return {{"total", total}, {"by_origin", by_origin}};
}

}  // namespace

json build_status(const Paths& paths) {
  json j{{"schema", kJsonSchemaVersion}, {"pin_dir", paths.pin_dir}, {"state_dir", paths.state_dir}};
  j["interfaces"] = interfaces_json(paths);
  j["unguarded_tunnels"] = unguarded_tunnels_json();
  j["feed"] = feed_json(paths.state_dir);
  j["drops"] = drops_json(paths.state_dir);
  bool pinned = GateMaps::pinned_at(paths.pin_dir);
  j["loaded"] = pinned;
  std::vector<DesiredRange> desired = read_desired_ranges(paths.state_dir);
  if (pinned) {
    GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
    GateConfig cfg = maps.config();
    j["action"] = to_string(cfg.action);
    j["ports"] = cfg.ports;
    j["generation"] = maps.generation();
    j["allowlist_published"] = maps.has_allowlist();
    j["ranges"] = ranges_json(maps, desired);
  } else {
    RuntimeSettings rt = StateStore(paths.state_dir).runtime();
    j["action"] = to_string(rt.action.value_or(Action::Drop));
    j["ranges"] = {{"total", 0}, {"by_origin", json::object()}};
  }
  return j;
}

json build_ranges(const Paths& paths) {
  std::vector<DesiredRange> desired = read_desired_ranges(paths.state_dir);
  json arr = json::array();
  if (GateMaps::pinned_at(paths.pin_dir)) {
    GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
    std::vector<TrieEntry> active = maps.active_entries();
    RuleIndex index(active, desired);
    for (const auto& e : active) arr.push_back(index.rule(e.rule_id));
  } else {
    // No gate loaded: what the state directory would load.
    for (const auto& d : desired) {
      json r = desired_range_json(d);
      r["rule_id"] = nullptr;
      arr.push_back(r);
    }
  }
  return {{"schema", kJsonSchemaVersion}, {"loaded", GateMaps::pinned_at(paths.pin_dir)}, {"ranges", arr}};
}

json build_feed_status(const Paths& paths, const FeedSettingsChoice& settings) {
  FeedStatus st = read_feed_status(paths.state_dir);
  json j = to_json(st);
  j["settings"] = feed_settings_json(settings);
  j["schema"] = kJsonSchemaVersion;
  j["stale"] = st.stale();
  j["other_instances"] = other_instances_json(read_other_instances(paths.state_dir));
  return j;
}

}  // namespace smtpgate
