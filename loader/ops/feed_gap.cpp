#include "feed_gap.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <set>

#include "drop_log.hpp"
#include "eop_admit.hpp"
#include "fsutil.hpp"
#include "gate.hpp"
#include "gate_maps.hpp"
#include "text.hpp"

namespace smtpgate {

namespace {
using nlohmann::json;

std::string gaps_path(const std::string& state_dir) { return state_dir + "/feed-gaps.json"; }

Fcrdns::Status status_from(const std::string& s) {
  for (auto st : {Fcrdns::Status::Confirmed, Fcrdns::Status::NotConfirmed, Fcrdns::Status::NoName})
    if (to_string(st) == s) return st;
  return Fcrdns::Status::Failed;
}
}  // namespace

const EopOutboundDomain* eop_outbound_domain(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string lower = smtpgate::lower(name.substr(0, kMaxDnsName + 1));
  for (const auto& d : kEopOutboundDomains) {
    std::string_view dom(d.domain);
    if (lower.size() > dom.size() && lower.ends_with(dom) && lower[lower.size() - dom.size() - 1] == '.') return &d;
  }
  return nullptr;
}

FeedGaps read_feed_gaps(const std::string& state_dir) {
  FeedGaps out;
  std::string path = gaps_path(state_dir);
  if (!file_exists(path)) return out;
  try {
    json j = json::parse(read_file(path));
    for (const auto& e : j.at("sources")) {
      FeedGapEntry g;
      g.address = Cidr::parse_address(e.at("address").get<std::string>());
      g.status = status_from(e.at("status").get<std::string>());
      g.name = e.value("name", std::string()).substr(0, kMaxDnsName);
      const EopOutboundDomain* d = eop_outbound_domain(g.name);
      g.domain = d ? d->domain : "";
      g.checked_at = e.value("checked_at", int64_t{0});
      g.last_seen = e.value("last_seen", int64_t{0});
      g.admitted = e.value("admitted", std::string());
      if (!g.admitted.empty()) g.admitted = Cidr::parse(g.admitted).str();  // never trusted unchecked
      g.admitted_until = e.value("admitted_until", int64_t{0});
      g.admitted_syns = e.value("admitted_syns", uint64_t{0});
      out[g.address] = g;
      if (out.size() >= kMaxFeedGapEntries) break;
    }
  } catch (const std::exception& e) {
    spdlog::debug("{} not read ({}); feed gaps are looked up again", path, e.what());
    return {};
  }
  return out;
}

void write_feed_gaps(const std::string& state_dir, const FeedGaps& gaps) {
  json j{{"version", 1}, {"sources", json::array()}};
  for (const auto& [a, g] : gaps)
    j["sources"].push_back({{"address", a.address_str()},
                            {"status", to_string(g.status)},
                            {"name", g.name},
                            {"checked_at", g.checked_at},
                            {"last_seen", g.last_seen},
                            {"admitted", g.admitted},
                            {"admitted_until", g.admitted_until},
                            {"admitted_syns", g.admitted_syns}});
  write_file_atomic(gaps_path(state_dir), j.dump(1) + "\n");
}

json feed_gap_json(const FeedGaps& gaps, const Cidr& address) {
  auto it = gaps.find(address);
  if (it == gaps.end() || !it->second.gap()) return nullptr;
  const EopOutboundDomain* d = eop_outbound_domain(it->second.name);
  return {{"name", it->second.name},
          {"domain", it->second.domain},
          {"instances", d ? d->instances : ""},
          {"checked_at", it->second.checked_at}};
}

void mark_feed_gap(json& record, const FeedGaps& gaps) {
  record["feed_gap"] = nullptr;
  if (gaps.empty() || !record.contains("source") || !record["source"].is_string()) return;
  try {
    record["feed_gap"] = feed_gap_json(gaps, Cidr::parse_address(record["source"].get<std::string>()));
  } catch (const std::exception&) {
  }
}

size_t recent_feed_gaps(const FeedGaps& gaps, int64_t now) {
  return std::count_if(gaps.begin(), gaps.end(),
                       [&](const auto& kv) { return kv.second.gap() && kv.second.last_seen + 24 * 3600 >= now; });
}

std::vector<Cidr> logged_sources(const std::vector<nlohmann::json>& records) {
  std::set<Cidr> seen;
  for (const auto& r : records) {
    if (seen.size() >= kMaxFeedGapEntries) break;
    if (!r.is_object() || !r.contains("source") || !r["source"].is_string()) continue;
    try {
      seen.insert(Cidr::parse_address(r["source"].get<std::string>()));
    } catch (const std::exception&) {
      // a line the daemon did not write: skipped, as the drop log's readers do
    }
  }
  return {seen.begin(), seen.end()};
}

size_t scan_feed_gaps(const Paths& paths, FcrdnsResolver& resolver, int64_t now, size_t budget,
                      const std::atomic<bool>* stop, const FeedGapConfig& policy, const std::vector<Cidr>& logged) {
  if (!GateMaps::pinned_at(paths.pin_dir)) return 0;
  std::set<Cidr> sources(logged.begin(), logged.end());
  for (const auto& s : GateMaps::open_pinned(paths.pin_dir).recent_refused()) sources.insert(s.address);
  FeedGaps gaps = read_feed_gaps(paths.state_dir);
  size_t lookups = 0;
  bool changed = false;
  for (const Cidr& address : sources) {
    if (stop && stop->load()) break;
    FeedGapEntry& g = gaps[address];
    g.address = address;
    // Written again when an hour of sightings would otherwise be lost.
    if (g.last_seen + 3600 <= now) changed = true;
    g.last_seen = now;
    int64_t ttl = g.status == Fcrdns::Status::Failed ? kFeedGapFailureTtl : kFeedGapAnswerTtl;
    if (g.checked_at && g.checked_at + ttl > now) continue;
    if (lookups >= budget) continue;
    lookups++;
    changed = true;
    Fcrdns f = resolver.confirm(address, stop);
    if (stop && stop->load()) break;  // an answer cut short is not recorded
    bool was_gap = g.gap();
    g.status = f.status;
    g.name = f.name;
    const EopOutboundDomain* d = f.status == Fcrdns::Status::Confirmed ? eop_outbound_domain(f.name) : nullptr;
    g.domain = d ? d->domain : "";
    g.checked_at = now;
    if (g.gap() && !was_gap)
      spdlog::warn(
          "feed gap: {} is EOP host {} (PTR confirmed forward) but no published range holds it; "
          "'smtpgatectl explain {}' says what to do",
          address.address_str(), f.name, address.address_str());
    else if (f.status == Fcrdns::Status::NotConfirmed && eop_outbound_domain(f.name))
      spdlog::info("{}: PTR {} does not confirm forward; not trusted", address.address_str(), f.name);
  }
  bool admissions = update_eop_admissions(gaps, paths, policy, now);
  changed = changed || admissions;
  // Bounded: the sources seen longest ago leave first.
  while (gaps.size() > kMaxFeedGapEntries) {
    changed = true;
    auto oldest = std::min_element(
        gaps.begin(), gaps.end(), [](const auto& a, const auto& b) { return a.second.last_seen < b.second.last_seen; });
    gaps.erase(oldest);
  }
  if (std::erase_if(gaps, [&](const auto& kv) {
        return kv.second.admitted.empty() && kv.second.last_seen + 7 * 24 * 3600 < now;
      }))
    changed = true;
  if (!changed) return lookups;
  if (!admissions) {
    write_feed_gaps(paths.state_dir, gaps);
    return lookups;
  }
  // An admission began or ended: recorded and published under the gate
  // lock, waited for a bounded time (the lookups are over); a publish that
  // fails puts the record back.
  GateLock lock(paths, std::chrono::milliseconds(10000));
  GateChange change(paths);
  DesiredInputs next = change.before();
  next.feed_gaps = gaps;
  change.commit(
      next, [&] { write_feed_gaps(paths.state_dir, gaps); },
      [&] { write_feed_gaps(paths.state_dir, change.before().feed_gaps); });
  return lookups;
}

FeedGapWatcher::FeedGapWatcher(const CurrentConfig& config) : config_(config), thread_([this] { loop(); }) {}

FeedGapWatcher::~FeedGapWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  thread_.join();
}

void FeedGapWatcher::loop() {
  // The event stream, as the drop log keeps it: each scan reads only what
  // was appended since the last (from this worker's start on).
  std::unique_ptr<DropLogTail> tail;
  std::string tail_dir;
  while (true) {
    ConfigSnapshot cfg = config_.get();
    if (cfg->feed_gaps.enabled) {
      try {
        if (!tail || tail_dir != cfg->paths.state_dir) {
          tail_dir = cfg->paths.state_dir;
          tail = std::make_unique<DropLogTail>(tail_dir, int64_t(::time(nullptr)) * 1000000000);
        }
        std::vector<Cidr> logged = logged_sources(tail->next(0));
        FcrdnsResolver resolver(cfg->feed_gaps.resolver, std::chrono::milliseconds(cfg->feed_gaps.deadline_ms));
        scan_feed_gaps(cfg->paths, resolver, ::time(nullptr), cfg->feed_gaps.lookups_per_minute, &stop_, cfg->feed_gaps,
                       logged);
      } catch (const std::exception& e) {
        spdlog::error("feed gaps: {}", e.what());
      }
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::seconds(cfg->feed_gaps.interval_s), [this] { return stop_.load(); })) return;
  }
}

}  // namespace smtpgate
