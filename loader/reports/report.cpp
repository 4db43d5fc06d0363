#include "report.hpp"

#include <net/if.h>
#include <sys/stat.h>
#include <time.h>

#include <functional>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include <algorithm>

#include "desired_set.hpp"
#include "drops.hpp"
#include "feed_gap.hpp"
#include "feed_other.hpp"
#include "fsutil.hpp"
#include "feed_ranges.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "grace.hpp"
#include "links.hpp"

namespace smtpgate {

using nlohmann::json;

std::string eop_code_for(Action a) {
  switch (a) {
    case Action::Drop: return "450 4.4.315 connection timed out (the SYN was dropped silently)";
    case Action::Reject: return "450 4.4.316 connection refused (the gate answered with a TCP reset)";
    case Action::Monitor: return "none: monitor lets the SYN through";
  }
  return "";
}

int64_t monotonic_offset_ns() {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  return (int64_t(real.tv_sec) - int64_t(mono.tv_sec)) * 1000000000 + (real.tv_nsec - mono.tv_nsec);
}

int64_t monotonic_to_unix_ns(uint64_t mono_ns) { return int64_t(mono_ns) + monotonic_offset_ns(); }

std::string monotonic_to_wall(uint64_t mono_ns) { return rfc3339_utc(monotonic_to_unix_ns(mono_ns) / 1000000000); }

bool is_feed_origin(const std::string& o) {
  return o == origin::kFeed || o == origin::kFeedPending || o == origin::kFeedGrace || o == origin::kFeedRemoved ||
         o == origin::kFeedOther || o == origin::kEopConfirmed;
}

namespace {

json default_rule_json() {
  return {{"rule_id", SG_RULE_DEFAULT}, {"range", nullptr}, {"kind", "default"}, {"origin", "default"},
          {"note", "sources no range explains"}};
}

json unknown_rule_json(uint32_t rule_id) {
  return {{"rule_id", rule_id}, {"range", nullptr}, {"kind", "unknown"}, {"origin", "unknown"},
          {"note", "a range no longer in the allowlist"}};
}

json rule_json(const TrieEntry& e, const DesiredRange* d) {
  return {{"rule_id", e.rule_id},
          {"range", e.prefix.str()},
          {"kind", to_string(e.kind)},
          {"origin", d ? d->origin : "unknown"},
          {"note", d ? d->note : ""}};
}

}  // namespace

FeedCover::FeedCover(const std::vector<DesiredRange>& desired) {
  for (const auto& d : desired)
    if (is_feed_origin(d.origin)) ranges_.insert(d.cidr);
}

bool FeedCover::contains(const Cidr& address) const {
  if (ranges_.empty()) return false;
  for (unsigned len = 0; len <= address.max_len(); len++)
    if (ranges_.count(Cidr::from_bytes(address.family(), address.bytes().data(), len))) return true;
  return false;
}

RuleIndex::RuleIndex(const GateMaps& maps, const std::vector<DesiredRange>& desired)
    : RuleIndex(maps.active_entries(), desired) {}

RuleIndex::RuleIndex(const std::vector<TrieEntry>& active, const std::vector<DesiredRange>& desired)
    : feed_(desired) {
  DesiredIndex index(desired);
  for (const auto& e : active) by_id_[e.rule_id] = rule_json(e, index.find(e));
}

json RuleIndex::rule(uint32_t rule_id) const {
  if (rule_id == SG_RULE_DEFAULT) return default_rule_json();
  auto it = by_id_.find(rule_id);
  if (it != by_id_.end()) return it->second;
  return unknown_rule_json(rule_id);
}

// Some of the state directory's files and the desired ranges they hold, with
// the identity of each file when it was read.
struct DesiredState::Part {
  struct FileId {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    bool operator==(const FileId& o) const {
      return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size &&
             mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };
  std::vector<std::string> files;
  std::function<std::vector<DesiredRange>()> load;
  std::optional<std::vector<FileId>> read_as;  // nullopt: never read
  std::vector<DesiredRange> ranges;
  std::unique_ptr<DesiredIndex> index;
  FeedCover feed;

  static FileId identify(const std::string& path) {
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) return {};
    return FileId{true, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
  }

  // Reads the files again if any changed since they were read. Identities
  // are taken first: a change during the read is seen by the next call.
  void refresh() {
    std::vector<FileId> now;
    for (const auto& f : files) now.push_back(identify(f));
    if (read_as && *read_as == now) return;
    index.reset();
    ranges = load();
    index = std::make_unique<DesiredIndex>(ranges);
    feed = FeedCover(ranges);
    read_as = std::move(now);
  }

  // The entry's ranges of this part: the first of the same kind, the first.
  std::pair<const DesiredRange*, const DesiredRange*> find(const TrieEntry& e) {
    refresh();
    const DesiredRange* any = index->find(e);
    return {any && any->kind == e.kind ? any : nullptr, any};
  }
};

DesiredState::DesiredState(std::string state_dir)
    : dir_(std::move(state_dir)), operator_(std::make_unique<Part>()), feed_(std::make_unique<Part>()) {
  operator_->files = {dir_ + "/ranges.json"};
  operator_->load = [dir = dir_] { return operator_desired_ranges(StateStore(dir).operator_ranges()); };
  feed_->files = {dir_ + "/feed.json", dir_ + "/feed-other.json"};
  feed_->load = [dir = dir_] { return feed_desired_ranges(dir); };
}

DesiredState::~DesiredState() = default;

std::optional<DesiredRange> DesiredState::explain(const TrieEntry& entry) {
  // desired_ranges() lists the operator's ranges first, then the feed's.
  auto [op_same, op_any] = operator_->find(entry);
  if (op_same) return *op_same;
  auto [feed_same, feed_any] = feed_->find(entry);
  if (feed_same) return *feed_same;
  if (op_any) return *op_any;
  if (feed_any) return *feed_any;
  return std::nullopt;
}

bool DesiredState::microsoft(const Cidr& address) {
  // Only the feed's files hold feed origins.
  feed_->refresh();
  return feed_->feed.contains(address);
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

namespace {

std::string str(const json& j) { return j.is_string() ? j.get<std::string>() : j.is_null() ? "-" : j.dump(); }

json counters_json(const sg_rule_counters& c) {
  return {{"admit_packets", c.admit_packets},
          {"admit_bytes", c.admit_bytes},
          {"refuse_packets", c.refuse_packets},
          {"refuse_bytes", c.refuse_bytes}};
}

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

json counter_totals() {
  return {{"ranges", 0}, {"admit_packets", 0}, {"admit_bytes", 0}, {"refuse_packets", 0}, {"refuse_bytes", 0}};
}

void add_counters(json& totals, const json& c) {
  for (const char* k : {"admit_packets", "admit_bytes", "refuse_packets", "refuse_bytes"})
    totals[k] = totals[k].get<uint64_t>() + c[k].get<uint64_t>();
}

}  // namespace

json build_status(const Paths& paths) {
  json j{{"schema", kJsonSchemaVersion}, {"pin_dir", paths.pin_dir}, {"state_dir", paths.state_dir}};
  j["interfaces"] = interfaces_json(paths);
  j["unguarded_tunnels"] = json::array();
  for (const auto& t : unguarded_tunnels())
    j["unguarded_tunnels"].push_back({{"name", t.ifname}, {"kind", t.kind}, {"guardable", t.guardable}, {"advice", tunnel_advice(t)}});
  {
    FeedStatus f = read_feed_status(paths.state_dir);
    json applied = nullptr;
    if (f.applied)
      applied = {{"instance", to_string(f.applied->instance)},
                 {"version", f.applied->version.empty() ? json(nullptr) : json(f.applied->version)},
                 {"source", f.applied->source}};
    j["feed"] = {{"applied", applied}, {"last_error", f.last_error.empty() ? json(nullptr) : json(f.last_error)}};
  }
  // Who reads refused SYNs into the drop log (drops.lock's holder).
  std::optional<LockHolder> consumer = lock_holder(drops_lock_path(paths.state_dir));
  j["drops"] = {{"recorded_by", consumer ? json{{"pid", consumer->pid}, {"command", consumer->command}} : json(nullptr)}};
  bool pinned = GateMaps::pinned_at(paths.pin_dir);
  j["loaded"] = pinned;
  StateStore store(paths.state_dir);
  std::vector<DesiredRange> desired = desired_ranges(store);
  if (pinned) {
    GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
    GateConfig cfg = maps.config();
    j["action"] = to_string(cfg.action);
    j["ports"] = cfg.ports;
    j["generation"] = maps.generation();
    j["allowlist_published"] = maps.has_allowlist();
    std::map<std::string, json> by_origin;
    size_t total = 0;
    DesiredIndex index(desired);
    for (const auto& e : maps.active_entries()) {
      const DesiredRange* d = index.find(e);
      std::string origin = d ? d->origin : "unknown";
      json& o = by_origin[origin];
      if (o.is_null()) o = {{"admit", 0}, {"deny", 0}, {"watch", 0}};
      o[to_string(e.kind)] = o[to_string(e.kind)].get<int>() + 1;
      total++;
    }
    j["ranges"] = {{"total", total}, {"by_origin", by_origin}};
  } else {
    RuntimeSettings rt = store.runtime();
    j["action"] = to_string(rt.action.value_or(Action::Drop));
    j["ranges"] = {{"total", 0}, {"by_origin", json::object()}};
  }
  return j;
}

json build_ranges(const Paths& paths) {
  StateStore store(paths.state_dir);
  std::vector<DesiredRange> desired = desired_ranges(store);
  json arr = json::array();
  if (GateMaps::pinned_at(paths.pin_dir)) {
    GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
    std::vector<TrieEntry> active = maps.active_entries();
    RuleIndex index(active, desired);
    for (const auto& e : active) arr.push_back(index.rule(e.rule_id));
  } else {
    // No gate loaded: what the state directory would load.
    for (const auto& d : desired)
      arr.push_back({{"rule_id", nullptr}, {"range", d.cidr.str()}, {"kind", to_string(d.kind)},
                     {"origin", d.origin}, {"note", d.note}});
  }
  return {{"schema", kJsonSchemaVersion}, {"loaded", GateMaps::pinned_at(paths.pin_dir)}, {"ranges", arr}};
}

json build_stats(const Paths& paths) {
  GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
  std::vector<TrieEntry> active = maps.active_entries();
  RuleIndex index(active, desired_ranges(StateStore(paths.state_dir)));
  json rules = json::array();
  json by_origin = json::object();
  auto count = [&](const json& r) {
    json& o = by_origin[r["origin"].get<std::string>()];
    if (o.is_null()) o = counter_totals();
    if (r["range"].is_string()) o["ranges"] = o["ranges"].get<uint64_t>() + 1;
    add_counters(o, r["counters"]);
  };
  for (const auto& e : active) {
    json r = index.rule(e.rule_id);
    r["counters"] = counters_json(maps.rule_counters(e.rule_id));
    count(r);
    rules.push_back(r);
  }
  json def = index.rule(SG_RULE_DEFAULT);
  def["counters"] = counters_json(maps.rule_counters(SG_RULE_DEFAULT));
  count(def);
  json verdicts = json::object(), reasons = json::object();
  auto v = maps.verdict_counters();
  for (uint32_t i = 0; i < SG_VERDICT_MAX; i++)
    verdicts[verdict_name(i)] = {{"packets", v[i].packets}, {"bytes", v[i].bytes}};
  auto r = maps.reason_counters();
  for (uint32_t i = 0; i < SG_REASON_MAX; i++)
    reasons[reason_name(i)] = {{"packets", r[i].packets}, {"bytes", r[i].bytes}};
  return {{"schema", kJsonSchemaVersion},
          {"action", to_string(maps.config().action)},
          {"by_origin", by_origin},
          {"rules", rules},
          {"default_rule", def},
          {"verdicts", verdicts},
          {"reasons", reasons},
          {"events_suppressed", maps.events_suppressed()}};
}

namespace {

// What the feed knows about an address the gate does not admit: the version
// applied and announced, and the advice that follows from where it is listed.
json feed_view(const FeedStatus& f, const std::vector<OtherInstanceSet>& others, const Cidr& address,
               bool admitted, const std::string& deciding_kind, json& advice) {
  auto in = [&](const std::vector<Cidr>& v) {
    return std::any_of(v.begin(), v.end(), [&](const Cidr& c) { return c.contains(address); });
  };
  json j{{"instance", f.applied ? json(to_string(f.applied->instance)) : json(nullptr)},
         {"applied_version", f.applied && !f.applied->version.empty() ? json(f.applied->version) : json(nullptr)},
         {"latest_version", f.latest_version.empty() ? json(nullptr) : json(f.latest_version)},
         {"stale", f.stale()},
         {"in_applied", f.applied && in(f.applied->ranges)},
         {"in_rejected", nullptr},
         {"removed_by", nullptr},
         {"grace_until", nullptr},
         {"in_grace", false},
         {"other_instances", json::array()}};
  if (f.rejected && in(f.rejected->ranges))
    j["in_rejected"] = {{"version", f.rejected->version.empty() ? json(nullptr) : json(f.rejected->version)},
                        {"reason", f.rejected->reason}};
  for (const auto& r : f.recently_removed)
    if (r.cidr.contains(address)) {
      j["removed_by"] = r.version.empty() ? json("an unversioned import") : json(r.version);
      if (r.grace_until > r.removed_at) j["grace_until"] = utc_day(r.grace_until);
      j["in_grace"] = in_grace(r, ::time(nullptr));
    }
  for (const auto& o : others)
    if (in(o.ranges)) j["other_instances"].push_back(to_string(o.instance));
  const std::string a = address.address_str();
  if (j["in_grace"].get<bool>())
    advice.push_back("Microsoft removed the range holding " + a + " in version " + j["removed_by"].get<std::string>() +
                     "; it stays admitted in grace until " + j["grace_until"].get<std::string>() +
                     " (feed.removal_grace_days), then it is refused. Traffic from it now means EOP still sends "
                     "from there: if it keeps coming, add the range with smtpgatectl ranges add");
  if (admitted) return j;

  if (!j["in_rejected"].is_null())
    advice.push_back(a + " is in feed version " + (f.rejected->version.empty() ? "(unversioned)" : f.rejected->version) +
                     ", which validation rejected: " + f.rejected->reason +
                     (f.rejected->watched
                          ? ". Check the cause (smtpgatectl feed status); smtpgatectl feed sync --force applies it anyway"
                          : ". Its ranges are kept out of the gate: a forged or damaged answer looks like this. Compare "
                            "it with Microsoft's published list; only if it matches, smtpgatectl feed sync --force "
                            "(never past the prefix minimums or special-purpose space)"));
  if (j["in_applied"].get<bool>() && deciding_kind == "deny")
    advice.push_back(a + " is in the applied feed, but an operator deny range overrides it: "
                     "smtpgatectl ranges del that range if EOP should reach you from here");
  if (!j["removed_by"].is_null() && !j["in_grace"].get<bool>())
    advice.push_back("Microsoft removed the range holding " + a + " in version " + j["removed_by"].get<std::string>() +
                     (j["grace_until"].is_null() ? std::string() : ", and its grace ended " + str(j["grace_until"])) +
                     ": EOP should no longer send from it; if it still does, add the range with smtpgatectl ranges add");
  // A stale allowlist is news only when the announced version was not
  // refused: syncing again would refuse it again.
  bool latest_refused = f.rejected && f.rejected->version == f.latest_version;
  if (f.stale() && !latest_refused && !j["in_applied"].get<bool>())
    advice.push_back("the service announces feed version " + f.latest_version + " but " +
                     (f.applied && !f.applied->version.empty() ? f.applied->version : std::string("no version")) +
                     " is applied: your allowlist is stale, run smtpgatectl feed sync");
  for (const auto& inst : j["other_instances"])
    advice.push_back(a + " is in the " + inst.get<std::string>() + " instance's port-25 set; this gate follows " +
                     (f.applied ? to_string(f.applied->instance) : std::string("another instance")) +
                     ": if mail for you comes through " + inst.get<std::string>() +
                     ", set [feed] instance or add the range with smtpgatectl ranges add");
  if (!f.last_error.empty() && j["in_rejected"].is_null())
    advice.push_back("the last feed check failed: " + f.last_error);
  return j;
}

}  // namespace

json build_explain(const Paths& paths, const Cidr& address) {
  GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
  // One address: its deciding entry and the state, never the whole allowlist.
  std::vector<DesiredRange> desired = desired_ranges(StateStore(paths.state_dir));
  GateConfig cfg = maps.config();
  json j{{"schema", kJsonSchemaVersion}, {"address", address.address_str()}, {"action", to_string(cfg.action)},
         {"ports", cfg.ports}};
  std::optional<TrieEntry> m = maps.match(address);
  bool admitted = m && m->kind == RuleKind::Admit;
  uint32_t rule_id = m ? m->rule_id : SG_RULE_DEFAULT;
  j["verdict"] = admitted ? "admit" : to_string(cfg.action);
  j["rule"] = m ? rule_json(*m, DesiredIndex(desired).find(*m)) : default_rule_json();
  if (!m) j["rule"]["note"] = "no range contains this address";
  j["rule"]["counters"] = counters_json(maps.rule_counters(rule_id));
  j["microsoft"] = FeedCover(desired).contains(address);
  if (admitted) {
    j["why"] = address.address_str() + " is inside " + m->prefix.str() + ", an admit range";
    j["eop_code"] = nullptr;
  } else {
    if (!m)
      j["why"] = address.address_str() + " is in no range the gate knows";
    else
      j["why"] = address.address_str() + " is inside " + m->prefix.str() + ", a " + to_string(m->kind) + " range";
    j["eop_code"] = eop_code_for(cfg.action);
  }
  j["last_refused"] = nullptr;
  for (const auto& s : maps.recent_refused())
    if (s.address == address) {
      j["last_refused"] = {{"count", s.count},
                           {"first_seen", monotonic_to_wall(s.first_seen_ns)},
                           {"last_seen", monotonic_to_wall(s.last_seen_ns)},
                           {"port", s.last_port},
                           {"verdict", verdict_name(s.last_verdict)},
                           {"rule_id", s.rule_id}};
      break;
    }
  // Every origin that lists the address, not only the deciding one.
  json listed = json::array();
  for (const auto& d : desired)
    if (d.cidr.contains(address))
      listed.push_back({{"range", d.cidr.str()}, {"kind", to_string(d.kind)}, {"origin", d.origin}, {"note", d.note}});
  j["listed_in"] = listed;
  json advice = json::array();
  j["feed_gap"] = feed_gap_json(read_feed_gaps(paths.state_dir), address);
  if (!j["feed_gap"].is_null() && !admitted) {
    const json& g = j["feed_gap"];
    advice.push_back(address.address_str() + " is EOP host " + g["name"].get<std::string>() +
                     " (its PTR name, confirmed forward, is under " + g["domain"].get<std::string>() + ", " +
                     g["instances"].get<std::string>() +
                     ") but the published port-25 set does not hold it: a feed gap, EOP sending from where it has "
                     "not published (such as its relay pool in 40.95.0.0/16). Its mail is queued and bounced after "
                     "24 hours: admit it now with smtpgatectl ranges add " +
                     Cidr::from_bytes(address.family(), address.bytes().data(),
                                      address.family() == Family::V4 ? 24 : 64)
                         .str() +
                     " --comment 'EOP host " + g["name"].get<std::string>() + ", not published'");
  }
  j["feed"] = feed_view(read_feed_status(paths.state_dir), read_other_instances(paths.state_dir), address, admitted,
                        j["rule"]["kind"].get<std::string>(), advice);
  if (!admitted && cfg.action == Action::Monitor)
    advice.push_back("the action is monitor: the SYN passes and is counted as would-refuse; "
                     "smtpgatectl action drop|reject enforces");
  j["advice"] = advice;
  return j;
}

json build_top(const Paths& paths, size_t limit, const std::string& origin) {
  GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
  // Each source's rule from its own address: no dump of the whole allowlist.
  RuleNamer names(maps, paths.state_dir);
  json rows = json::array();
  std::vector<std::pair<RecentSource, json>> all;
  for (const auto& s : maps.recent_refused()) {
    json rule = names.rule(s.rule_id, s.address);
    if (!origin.empty() && rule["origin"] != origin) continue;
    all.emplace_back(s, rule);
  }
  // Microsoft's sources first (a feed origin decides, or a feed lists it),
  // then by count, then by the most recent.
  std::vector<bool> ms;
  FeedGaps gaps = read_feed_gaps(paths.state_dir);
  for (const auto& [s, rule] : all)
    ms.push_back(is_feed_origin(rule["origin"]) || names.microsoft(s.address) ||
                 !feed_gap_json(gaps, s.address).is_null());
  std::vector<size_t> order(all.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (ms[a] != ms[b]) return bool(ms[a]);
    if (all[a].first.count != all[b].first.count) return all[a].first.count > all[b].first.count;
    return all[a].first.last_seen_ns > all[b].first.last_seen_ns;
  });
  for (size_t i = 0; i < order.size() && rows.size() < limit; i++) {
    const auto& [s, rule] = all[order[i]];
    rows.push_back({{"source", s.address.address_str()},
                    {"microsoft", bool(ms[order[i]])},
                    {"count", s.count},
                    {"first_seen", monotonic_to_wall(s.first_seen_ns)},
                    {"last_seen", monotonic_to_wall(s.last_seen_ns)},
                    {"port", s.last_port},
                    {"verdict", verdict_name(s.last_verdict)},
                    {"rule_id", s.rule_id},
                    {"range", rule["range"]},
                    {"kind", rule["kind"]},
                    {"origin", rule["origin"]},
                    {"note", rule["note"]},
                    {"feed_gap", feed_gap_json(gaps, s.address)}});
  }
  return {{"schema", kJsonSchemaVersion},
          {"action", to_string(maps.config().action)},
          {"origin", origin.empty() ? json(nullptr) : json(origin)},
          {"limit", limit},
          {"sources_known", all.size()},
          {"sources", rows}};
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

std::string render_feed_status(const json& j) {
  std::ostringstream o;
  auto when = [](const json& t) {
    return !t.is_number() || t.get<int64_t>() == 0 ? std::string("never") : rfc3339_utc(t.get<int64_t>());
  };
  if (j.contains("settings")) {
    const json& s = j["settings"];
    o << "settings:   " << str(s["instance"]) << " from " << str(s["url"]) << " (" << str(s["source"])
      << (s["enabled"].get<bool>() ? "" : "; the feed is off") << ")\n";
  }
  const json& a = j.value("applied", json(nullptr));
  if (a.is_null()) {
    o << "applied:    none (no feed version applied yet)\n";
  } else {
    o << "instance:   " << str(a.value("instance", json(nullptr))) << "\n";
    o << "applied:    " << (a.value("version", std::string()).empty() ? std::string("unversioned") : str(a["version"]))
      << " from " << str(a.value("source", json(nullptr))) << ", " << a.value("ranges", json::array()).size()
      << " port-25 ranges\n";
  }
  o << "latest:     " << (j.value("latest_version", std::string()).empty() ? std::string("-") : str(j["latest_version"]))
    << (j.value("stale", false) ? "  (your allowlist is stale: run smtpgatectl feed sync)" : "") << "\n";
  o << "last check: " << when(j.value("last_check", json(0))) << ", next " << when(j.value("next_check", json(0)))
    << "\n";
  std::string err = j.value("last_error", std::string());
  o << "last error: " << (err.empty() ? std::string("none") : err) << "\n";
  for (const auto& i : j.value("other_instances", json::array()))
    o << fmt::format("watched:    {} {} ({} port-25 ranges, origin feed-other; last check {}{})\n", str(i["instance"]),
                     i["version"].is_null() ? std::string("not fetched yet") : str(i["version"]),
                     i["ranges"].get<size_t>(), when(i["last_check"]),
                     i["last_error"].is_null() ? std::string() : ", error: " + str(i["last_error"]));
  return o.str();
}

std::string render_status(const json& j) {
  std::ostringstream o;
  o << "gate:       " << (j["loaded"].get<bool>() ? "loaded (maps pinned at " + str(j["pin_dir"]) + ")"
                                                   : "not loaded (nothing pinned at " + str(j["pin_dir"]) + ")")
    << "\n";
  o << "action:     " << str(j["action"]) << "\n";
  if (!j["feed"]["applied"].is_null())
    o << "feed:       " << str(j["feed"]["applied"]["instance"]) << " "
      << (j["feed"]["applied"]["version"].is_null() ? std::string("") : str(j["feed"]["applied"]["version"]) + " ")
      << "(" << str(j["feed"]["applied"]["source"]) << ")\n";
  if (!j["feed"]["last_error"].is_null()) o << "feed error: " << str(j["feed"]["last_error"]) << "\n";
  if (j.contains("ports")) {
    std::string ports;
    for (const auto& p : j["ports"]) ports += (ports.empty() ? "" : ",") + p.dump();
    o << "ports:      " << ports << "\n";
  }
  if (j["interfaces"].empty()) o << "interfaces: none attached\n";
  for (const auto& i : j["interfaces"])
    o << fmt::format("interface:  {} ({} mode, program id {}{}{})\n", str(i["name"]), str(i["mode"]),
                     i["prog_id"].get<uint32_t>(), i["dispatcher"].get<bool>() ? ", via libxdp dispatcher" : "",
                     i["uses_pinned_maps"].get<bool>() ? "" : ", NOT using the pinned maps");
  if (j.contains("unguarded_tunnels"))
    for (const auto& t : j["unguarded_tunnels"]) o << "warning:    " << str(t["advice"]) << "\n";
  const json& by = j["drops"]["recorded_by"];
  o << "drops:      "
    << (by.is_null() ? std::string("not recorded (no process reads refused SYNs; smtpgated does while it runs)")
        : str(by["command"]) == "smtpgated"
            ? "recorded by smtpgated (pid " + by["pid"].dump() + ")"
            : "read by " + str(by["command"]) + " (pid " + by["pid"].dump() + "), not by smtpgated")
    << "\n";
  o << "ranges:     " << j["ranges"]["total"].get<size_t>() << "\n";
  for (const auto& [origin, k] : j["ranges"]["by_origin"].items())
    o << fmt::format("  {:<13} admit {:>5}  deny {:>5}  watch {:>5}\n", origin, k["admit"].get<int>(),
                     k["deny"].get<int>(), k["watch"].get<int>());
  return o.str();
}

std::string render_ranges(const json& j) {
  std::ostringstream o;
  o << fmt::format("{:<6} {:<28} {:<8} {:<13} {}\n", "RULE", "RANGE", "KIND", "ORIGIN", "NOTE");
  for (const auto& r : j["ranges"])
    o << fmt::format("{:<6} {:<28} {:<8} {:<13} {}\n", str(r["rule_id"]), str(r["range"]), str(r["kind"]),
                     str(r["origin"]), str(r["note"]));
  return o.str();
}

std::string render_stats(const json& j) {
  std::ostringstream o;
  o << fmt::format("{:<13} {:>6} {:>12} {:>12}\n", "ORIGIN", "RANGES", "ADMITTED", "REFUSED");
  for (const auto& [origin, c] : j["by_origin"].items())
    o << fmt::format("{:<13} {:>6} {:>12} {:>12}\n", origin, c["ranges"].get<uint64_t>(),
                     c["admit_packets"].get<uint64_t>(), c["refuse_packets"].get<uint64_t>());
  o << "\n";
  o << fmt::format("{:<6} {:<28} {:<8} {:<13} {:>12} {:>12}\n", "RULE", "RANGE", "KIND", "ORIGIN", "ADMITTED",
                   "REFUSED");
  auto row = [&](const json& r) {
    o << fmt::format("{:<6} {:<28} {:<8} {:<13} {:>12} {:>12}\n", str(r["rule_id"]), str(r["range"]),
                     str(r["kind"]), str(r["origin"]), r["counters"]["admit_packets"].get<uint64_t>(),
                     r["counters"]["refuse_packets"].get<uint64_t>());
  };
  for (const auto& r : j["rules"]) row(r);
  row(j["default_rule"]);
  o << "\nverdicts (action " << str(j["action"]) << "):";
  for (const auto& [name, c] : j["verdicts"].items()) o << " " << name << "=" << c["packets"].get<uint64_t>();
  o << "\nreasons:";
  for (const auto& [name, c] : j["reasons"].items())
    if (c["packets"].get<uint64_t>()) o << " " << name << "=" << c["packets"].get<uint64_t>();
  o << "\n";
  return o.str();
}

std::string render_explain(const json& j) {
  std::ostringstream o;
  const json& r = j["rule"];
  o << "address:  " << str(j["address"]) << "\n";
  o << "verdict:  " << str(j["verdict"]) << " (a SYN to port";
  for (const auto& p : j["ports"]) o << " " << p.get<int>();
  o << " from this address, now)\n";
  o << "why:      " << str(j["why"]) << "\n";
  o << "rule:     " << fmt::format("{} {} {} (origin {}{}{})", str(r["rule_id"]), str(r["range"]), str(r["kind"]),
                                   str(r["origin"]), r["note"].get<std::string>().empty() ? "" : ": ",
                                   str(r["note"]))
    << "\n";
  o << "counters: " << fmt::format("admitted {} packets, refused {} packets", r["counters"]["admit_packets"].get<uint64_t>(),
                                   r["counters"]["refuse_packets"].get<uint64_t>())
    << " (whole range)\n";
  if (!j["eop_code"].is_null()) o << "sender:   EOP would report " << str(j["eop_code"]) << "\n";
  if (j["last_refused"].is_null())
    o << "refused:  not recently (not in the recently-refused table)\n";
  else
    o << fmt::format("refused:  {} times, first {}, last {} (port {}, {})\n", j["last_refused"]["count"].get<uint64_t>(),
                     str(j["last_refused"]["first_seen"]), str(j["last_refused"]["last_seen"]),
                     j["last_refused"]["port"].get<int>(), str(j["last_refused"]["verdict"]));
  for (const auto& l : j["listed_in"])
    o << fmt::format("listed:   {} {} (origin {}{}{})\n", str(l["range"]), str(l["kind"]), str(l["origin"]),
                     l["note"].get<std::string>().empty() ? "" : ": ", str(l["note"]));
  const json& f = j["feed"];
  if (!f["instance"].is_null())
    o << fmt::format("feed:     {} {} applied{}; {} in it\n", str(f["instance"]),
                     f["applied_version"].is_null() ? std::string("unversioned") : str(f["applied_version"]),
                     f["stale"].get<bool>() ? ", " + str(f["latest_version"]) + " announced" : std::string(),
                     f["in_applied"].get<bool>() ? "address" : "address not");
  if (!j.value("feed_gap", json(nullptr)).is_null())
    o << "feed gap: EOP host " << str(j["feed_gap"]["name"]) << " (PTR confirmed forward), not in the published set\n";
  for (const auto& a : j["advice"]) o << "advice:   " << str(a) << "\n";
  return o.str();
}

}  // namespace smtpgate

namespace smtpgate {

std::string render_top(const json& j) {
  std::ostringstream o;
  o << fmt::format("{:<28} {:>7} {:<20} {:<20} {:<8} {:<24} {}\n", "SOURCE", "COUNT", "FIRST SEEN", "LAST SEEN",
                   "VERDICT", "RANGE", "ORIGIN");
  for (const auto& r : j["sources"])
    o << fmt::format("{:<28} {:>7} {:<20} {:<20} {:<8} {:<24} {}{}\n", str(r["source"]) + (r["microsoft"].get<bool>() ? " *" : ""),
                     r["count"].get<uint64_t>(), str(r["first_seen"]), str(r["last_seen"]), str(r["verdict"]),
                     str(r["range"]), str(r["origin"]), r["port"].get<int>() == 25 ? "" : " (port " + r["port"].dump() + ")")
      << (r.value("feed_gap", json(nullptr)).is_null()
              ? std::string()
              : "  FEED GAP: EOP host " + str(r["feed_gap"]["name"]) + ", not in the published set\n");
  if (j["sources"].empty())
    o << "no source turned away recently" << (j["origin"].is_null() ? "" : " with origin " + str(j["origin"])) << "\n";
  else
    o << "(* Microsoft's: a feed range decides or lists it; " << j["sources"].size() << " of "
      << j["sources_known"].get<size_t>() << " sources shown)\n";
  return o.str();
}

}  // namespace smtpgate
