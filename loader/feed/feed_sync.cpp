#include "feed_sync.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "error.hpp"
#include "fsutil.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {
constexpr int64_t kRemovedRetention = 30 * 24 * 3600;
constexpr int64_t kMinRateLimitWait = 60;  // a Retry-After of 0 must not become a busy loop

std::string when(int64_t t) { return t <= 0 ? "never" : rfc3339_utc(t); }

std::string path_of(const std::string& dir) { return dir + "/feed.json"; }

json cidrs_json(const std::vector<Cidr>& v) {
  json a = json::array();
  for (const auto& c : v) a.push_back(c.str());
  return a;
}

std::vector<Cidr> cidrs_from(const json& a) {
  std::vector<Cidr> out;
  for (const auto& c : a) out.push_back(Cidr::parse(c.get<std::string>()));
  return out;
}

std::string checked_version(const json& j, const char* key) {
  std::string v = j.value(key, std::string());
  if (!v.empty() && !is_feed_version(v)) throw InputError(std::string(key) + " '" + v + "' is not 10 digits");
  return v;
}

json snapshot_json(const FeedSnapshot& s) {
  json dates = json::object();
  for (const auto& [c, d] : s.effective_dates) dates[c.str()] = d;
  // Keys shared with the first feed.json layout (feed import), so either
  // reader understands either writer.
  return {{"instance", to_string(s.instance)}, {"version", s.version},  {"source", s.source},
          {"fetched", s.fetched_at},           {"set_ids", s.set_ids},  {"ranges", cidrs_json(s.ranges)},
          {"effective_dates", dates}};
}

FeedSnapshot snapshot_from(const json& j) {
  FeedSnapshot s;
  s.instance = parse_instance(j.at("instance").get<std::string>());
  s.version = checked_version(j, "version");
  s.source = j.value("source", std::string());
  s.fetched_at = j.value("fetched", int64_t{0});
  s.set_ids = j.value("set_ids", std::vector<int>{});
  s.ranges = cidrs_from(j.at("ranges"));
  std::sort(s.ranges.begin(), s.ranges.end());
  s.ranges.erase(std::unique(s.ranges.begin(), s.ranges.end()), s.ranges.end());
  if (j.contains("effective_dates"))
    for (const auto& [k, v] : j.at("effective_dates").items()) {
      std::string d = v.get<std::string>();
      if (!is_feed_date(d)) throw InputError("effective date '" + d + "' is not 8 digits");
      s.effective_dates[Cidr::parse(k)] = d;
    }
  return s;
}

bool listed(const std::vector<Cidr>& sorted, const Cidr& c) {
  return std::binary_search(sorted.begin(), sorted.end(), c);
}

// What a fetch decided by: the applied and the refused version. A commit
// whose state says otherwise was overtaken by another process.
std::string basis_of(const FeedStatus& s) {
  std::string b = "applied:";
  if (s.applied)
    b += to_string(s.applied->instance) + "/" + s.applied->version + "@" + std::to_string(s.applied->fetched_at);
  b += " refused:";
  if (s.rejected) b += s.rejected->version + "@" + std::to_string(s.rejected->at);
  return b;
}
}  // namespace

std::string rfc3339_utc(int64_t unix_s) {
  time_t tt = static_cast<time_t>(unix_s);
  struct tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool FeedStatus::stale() const {
  return !latest_version.empty() && (!applied || applied->version != latest_version);
}

json to_json(const FeedStatus& s) {
  json j{{"version", 1},
         {"instance", s.instance},
         {"applied", s.applied ? snapshot_json(*s.applied) : json(nullptr)},
         {"latest_version", s.latest_version},
         {"stale", s.stale()},
         {"last_check", s.last_check},
         {"last_success", s.last_success},
         {"next_check", s.next_check},
         {"rate_limited_until", s.rate_limited_until},
         {"last_error", s.last_error},
         {"rejected", nullptr},
         {"recently_removed", json::array()}};
  if (s.rejected)
    j["rejected"] = {{"version", s.rejected->version}, {"reason", s.rejected->reason},
                     {"at", s.rejected->at},           {"source", s.rejected->source},
                     {"set_ids", s.rejected->set_ids}, {"ranges", cidrs_json(s.rejected->ranges)},
                     {"watched", s.rejected->watched}};
  for (const auto& r : s.recently_removed)
    j["recently_removed"].push_back({{"range", r.cidr.str()},
                                     {"version", r.version},
                                     {"removed_at", r.removed_at},
                                     {"grace_until", r.grace_until},
                                     {"grace_over", r.grace_over}});
  return j;
}

FeedStatus feed_status_from_json(const json& j) {
  if (!j.is_object()) throw InputError("not a JSON object");
  FeedStatus s;
  s.instance = j.value("instance", std::string());
  if (j.contains("applied") && !j.at("applied").is_null()) s.applied = snapshot_from(j.at("applied"));
  s.latest_version = checked_version(j, "latest_version");
  s.last_check = j.value("last_check", int64_t{0});
  s.last_success = j.value("last_success", int64_t{0});
  s.next_check = j.value("next_check", int64_t{0});
  s.rate_limited_until = j.value("rate_limited_until", int64_t{0});
  s.last_error = j.value("last_error", std::string());
  if (j.contains("rejected") && !j.at("rejected").is_null()) {
    const json& r = j.at("rejected");
    RejectedVersion rv;
    rv.version = checked_version(r, "version");
    rv.reason = r.value("reason", std::string());
    rv.at = r.value("at", int64_t{0});
    rv.source = r.value("source", std::string());
    rv.set_ids = r.value("set_ids", std::vector<int>{});
    rv.ranges = cidrs_from(r.at("ranges"));
    rv.watched = r.value("watched", true);
    s.rejected = rv;
  }
  if (j.contains("recently_removed"))
    for (const auto& r : j.at("recently_removed"))
      s.recently_removed.push_back(RemovedRange{Cidr::parse(r.at("range").get<std::string>()),
                                                r.value("version", std::string()), r.value("removed_at", int64_t{0}),
                                                r.value("grace_until", int64_t{0}), r.value("grace_over", false)});
  return s;
}

FeedStatus read_feed_status(const std::string& state_dir, bool set_aside_corrupt) {
  std::string path = path_of(state_dir);
  if (!file_exists(path)) return FeedStatus{};
  std::string text = read_file(path);
  try {
    return feed_status_from_json(json::parse(text));
  } catch (const std::exception& e) {
    FeedStatus s;
    s.last_error = path + " is corrupt (" + std::string(e.what()).substr(0, 160) + ")";
    if (!set_aside_corrupt) return s;
    std::string aside = set_aside(path);
    s.last_error = path + " was corrupt (" + std::string(e.what()).substr(0, 160) + "); moved to " + aside +
                   "; the feed is fetched again (or run 'smtpgatectl feed import FILE')";
    spdlog::error("{}", s.last_error);
    return s;
  }
}

void write_feed_status(const std::string& state_dir, const FeedStatus& s) {
  make_dirs(state_dir, 0755);
  // Messages are made valid UTF-8 where they are made (feed.cpp's preview);
  // should one slip through, a replaced byte beats a check that is never
  // recorded (and so never backed off).
  write_file_atomic(path_of(state_dir), to_json(s).dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

std::string to_string(SyncOutcome o) {
  switch (o) {
    case SyncOutcome::NotDue: return "not-due";
    case SyncOutcome::Unchanged: return "unchanged";
    case SyncOutcome::Applied: return "applied";
    case SyncOutcome::Rejected: return "rejected";
    case SyncOutcome::Failed: return "failed";
    case SyncOutcome::RateLimited: return "rate-limited";
  }
  return "";
}

FeedSync::FeedSync(FeedSyncOptions options, FeedClient* client, ApplyFn apply)
    : options_(std::move(options)), client_(client), apply_(std::move(apply)) {
  reload();
}

void FeedSync::reload() {
  if (!options_.state_dir.empty()) status_ = read_feed_status(options_.state_dir, options_.holds_lock);
}

void FeedSync::save() {
  if (!options_.state_dir.empty()) write_feed_status(options_.state_dir, status_);
}

SyncResult FeedSync::check(int64_t now) { return commit(fetch(now, false)); }
SyncResult FeedSync::sync_now(int64_t now) { return commit(fetch(now, true)); }

SyncResult FeedSync::fail(int64_t now, SyncOutcome outcome, const std::string& message) {
  SyncResult r;
  r.outcome = outcome;
  status_.last_error = message;
  if (outcome == SyncOutcome::Failed) {
    status_.next_check = now + options_.retry_s;
    r.message = message + "; the running allowlist is kept; next try at " + when(status_.next_check);
  } else {
    r.message = message;
  }
  // Reported by the caller (the daemon's log, the command's one line).
  try {
    save();
  } catch (const std::exception& e) {
    r.warnings.push_back(std::string("feed status not saved: ") + e.what());
  }
  return r;
}

FeedFetch FeedSync::fetch(int64_t now, bool forced) {
  reload();
  if (!client_) throw std::logic_error("FeedSync: a check needs a FeedClient");
  FeedFetch f;
  f.now = now;
  f.forced = forced;
  f.instance = options_.instance;
  f.basis = basis_of(status_);
  auto early = [&](SyncOutcome o, std::string message) {
    f.early = SyncResult{o, std::move(message), {}, {}, {}, status_.next_check};
    return f;
  };
  if (now < status_.rate_limited_until) {
    if (!forced) return early(SyncOutcome::NotDue, "next check at " + when(status_.next_check));
    return early(SyncOutcome::RateLimited, "the service asked smtpgate to wait until " +
                                               when(status_.rate_limited_until) + " (HTTP 429); try again then");
  }
  if (!forced && now < status_.next_check) return early(SyncOutcome::NotDue, "next check at " + when(status_.next_check));

  // The service's failures are kept for commit(); a cancel is the caller's.
  auto failed = [&](const std::exception& e, const std::string& context) {
    if (const auto* limited = dynamic_cast<const RateLimited*>(&e)) {
      f.failure = SyncOutcome::RateLimited;
      f.error = e.what();
      f.wait_s = limited->wait().count();
    } else {
      f.failure = SyncOutcome::Failed;
      f.error = context + e.what();
    }
    return f;
  };
  try {
    f.version = client_->version(f.instance);
  } catch (const Cancelled&) {
    throw;
  } catch (const std::exception& e) {
    return failed(e, "feed check failed: ");
  }
  const std::string latest = f.version->latest;
  const bool same_instance = status_.applied && status_.applied->instance == f.instance;
  if (same_instance && status_.applied->version == latest) return f;
  // The endpoints of a version validation refused are not fetched again until
  // the service publishes another one (or the operator asks: feed sync).
  if (!forced && status_.rejected && status_.rejected->version == latest) return f;
  try {
    f.endpoints = client_->endpoints(f.instance);
  } catch (const Cancelled&) {
    throw;
  } catch (const std::exception& e) {
    return failed(e, "feed version " + latest + " could not be fetched: ");
  }
  if (options_.log_changes && same_instance && is_feed_version(status_.applied->version)) {
    try {
      f.changes = client_->changes(f.instance, status_.applied->version);
    } catch (const Cancelled&) {
      throw;
    } catch (const std::exception& e) {
      f.warnings.push_back("changes since " + status_.applied->version + " not available (" + e.what() +
                           "); added ranges are logged without effective dates");
    }
  }
  return f;
}

SyncResult FeedSync::commit(const FeedFetch& f) {
  SyncResult r = decide(f);
  if (r.next_check == 0) r.next_check = status_.next_check;
  return r;
}

SyncResult FeedSync::decide(const FeedFetch& f) {
  reload();
  if (f.early) return *f.early;
  const int64_t now = f.now;
  if (basis_of(status_) != f.basis)
    return SyncResult{SyncOutcome::NotDue,
                      "another process applied or refused a feed version while the service was asked; this "
                      "answer is dropped, next check at " + when(status_.next_check),
                      {}, {}, {}, status_.next_check};

  const Instance instance = f.instance;
  status_.instance = to_string(instance);
  status_.last_check = now;
  if (f.version) status_.latest_version = f.version->latest;  // announced, even if its endpoints failed
  if (f.failure == SyncOutcome::RateLimited) {
    int64_t wait = std::max<int64_t>(f.wait_s, kMinRateLimitWait);
    status_.rate_limited_until = now + wait;
    status_.next_check = now + wait;
    return fail(now, SyncOutcome::RateLimited,
                f.error + "; the running allowlist is kept; next try at " + when(now + wait));
  }
  if (f.failure == SyncOutcome::Failed || !f.version) return fail(now, SyncOutcome::Failed, f.error);

  const VersionAnswer& v = *f.version;
  status_.latest_version = v.latest;
  status_.next_check = now + std::max<int64_t>(options_.interval_s, v.max_age ? v.max_age->count() : 0);
  const std::string what = "feed version " + v.latest;
  const bool same_instance = status_.applied && status_.applied->instance == instance;

  if (same_instance && status_.applied->version == v.latest) {
    status_.last_success = now;
    status_.last_error.clear();
    SyncResult r{SyncOutcome::Unchanged, what + " is applied and still the latest; next check at " +
                                             when(status_.next_check), {}, {}, {}};
    try {
      save();
    } catch (const std::exception& e) {
      r.warnings.push_back(std::string("feed status not saved: ") + e.what());
    }
    return r;
  }
  if (!f.forced && status_.rejected && status_.rejected->version == v.latest) {
    status_.last_error = status_.rejected->reason;
    SyncResult r{SyncOutcome::Rejected, what + " is still the latest and stays refused: " + status_.rejected->reason,
                 {}, {}, {}};
    try {
      save();
    } catch (const std::exception& e) {
      r.warnings.push_back(std::string("feed status not saved: ") + e.what());
    }
    return r;
  }
  // The basis is the one fetch() saw, so it asked for these.
  if (!f.endpoints) throw std::logic_error("FeedSync: a moved version without its endpoints");

  std::vector<std::string> warnings = f.warnings;
  if (same_instance && is_feed_version(status_.applied->version) && v.latest < status_.applied->version)
    warnings.push_back("the service announces " + what + ", older than the applied " + status_.applied->version);

  const EndpointsAnswer& ep = *f.endpoints;
  FeedSnapshot next;
  next.instance = instance;
  next.version = v.latest;
  next.source = ep.source;
  next.fetched_at = now;
  try {
    Port25Selection sel = select_port25(ep.sets, instance, ep.source);
    next.set_ids = sel.set_ids;
    next.ranges = sel.ranges;
    for (auto& w : sel.warnings) warnings.push_back(std::move(w));
  } catch (const InputError& e) {
    status_.rejected = RejectedVersion{v.latest, what + " is refused: " + e.what(), now, ep.source, {}, {}, false};
    SyncResult r = fail(now, SyncOutcome::Rejected, status_.rejected->reason);
    r.warnings.insert(r.warnings.begin(), warnings.begin(), warnings.end());
    return r;
  }
  return take(now, std::move(next), f.changes ? &*f.changes : nullptr, std::move(warnings), what);
}

SyncResult FeedSync::import_file(const std::string& path, int64_t now, const std::string& version) {
  reload();
  if (!version.empty() && !is_feed_version(version))
    return fail(now, SyncOutcome::Rejected,
                "feed import of " + path + ": version '" + version + "' is not 10 digits (YYYYMMDDNN)");
  FeedSnapshot next;
  next.instance = options_.instance;
  next.version = version;
  next.source = "import " + path;
  next.fetched_at = now;
  std::vector<std::string> warnings;
  std::string what = "the feed in " + path;
  try {
    std::string text = read_file(path);
    Port25Selection sel = select_port25(parse_endpoints(text, path), options_.instance, path);
    next.set_ids = sel.set_ids;
    next.ranges = sel.ranges;
    warnings = std::move(sel.warnings);
  } catch (const std::exception& e) {
    return fail(now, SyncOutcome::Rejected, std::string("feed import refused: ") + e.what());
  }
  return take(now, std::move(next), nullptr, std::move(warnings), what);
}

SyncResult FeedSync::take(int64_t now, FeedSnapshot next, const std::vector<ChangeRecord>* changes,
                          std::vector<std::string> warnings, const std::string& what) {
  const FeedSnapshot* prev =
      status_.applied && status_.applied->instance == next.instance ? &*status_.applied : nullptr;
  if (status_.applied && !prev)
    warnings.push_back("instance changed from " + to_string(status_.applied->instance) + " to " +
                       to_string(next.instance) + ": its ranges replace the old ones without the removal check");
  std::vector<Cidr> current = prev ? prev->ranges : std::vector<Cidr>{};

  // Effective dates: kept for ranges still listed, new ones from the changes
  // this version brought to the selected sets.
  if (prev)
    for (const auto& [c, d] : prev->effective_dates)
      if (listed(next.ranges, c)) next.effective_dates[c] = d;
  if (changes)
    for (const auto& rec : *changes) {
      if (std::find(next.set_ids.begin(), next.set_ids.end(), rec.endpoint_set_id) == next.set_ids.end()) continue;
      if (prev && is_feed_version(prev->version) && rec.version <= prev->version) continue;
      if (!next.version.empty() && rec.version > next.version) continue;
      if (rec.effective_date.empty()) continue;
      for (const auto& ip : rec.added_ips)
        if (listed(next.ranges, ip)) next.effective_dates[ip] = rec.effective_date;
    }

  SyncResult r;
  CidrDiff d = diff(current, next.ranges);
  for (const auto& c : d.added) {
    auto it = next.effective_dates.find(c);
    r.added.emplace_back(c, it == next.effective_dates.end() ? "" : it->second);
  }
  r.removed = d.removed;
  // Warnings travel in the result: the caller reports each once (the
  // daemon's log, or the command's stderr).

  try {
    validate_feed_update(current, next.ranges, options_.policy, what);
  } catch (const FeedRefusal& e) {
    status_.rejected =
        RejectedVersion{next.version, e.what(), now, next.source, next.set_ids, next.ranges, e.ranges_trusted()};
    SyncResult f = fail(now, SyncOutcome::Rejected, e.what());
    f.added = std::move(r.added);
    f.removed = std::move(r.removed);
    f.warnings.insert(f.warnings.begin(), warnings.begin(), warnings.end());
    return f;
  }
  try {
    apply_(next);
  } catch (const std::exception& e) {
    SyncResult f = fail(now, SyncOutcome::Failed, what + " passed validation but was not applied: " + e.what());
    f.warnings.insert(f.warnings.begin(), warnings.begin(), warnings.end());
    return f;
  }

  const FeedStatus recorded = status_;
  // Additions are admitted now, before their effective date: the point of
  // publishing them early.
  for (const auto& [c, date] : r.added)
    spdlog::info("{}: adds {}{}", what, c.str(), date.empty() ? "" : " (effective " + date + ")");
  for (const auto& c : r.removed) spdlog::info("{}: removes {}", what, c.str());

  for (const auto& c : r.removed)
    status_.recently_removed.push_back(RemovedRange{c, next.version, now, now + options_.removal_grace_s, false});
  std::erase_if(status_.recently_removed, [&](const RemovedRange& x) {
    return std::max(x.removed_at, x.grace_until) + kRemovedRetention < now || listed(next.ranges, x.cidr);
  });
  if (status_.rejected && (status_.rejected->version.empty() || next.version.empty() ||
                           status_.rejected->version <= next.version))
    status_.rejected.reset();
  status_.applied = next;
  status_.last_error.clear();
  if (!next.source.starts_with("import ")) status_.last_success = now;

  r.outcome = SyncOutcome::Applied;
  r.message = what + " applied: " + std::to_string(next.ranges.size()) + " port-25 ranges (" +
              std::to_string(r.added.size()) + " added, " + std::to_string(r.removed.size()) + " removed)";
  r.warnings = std::move(warnings);
  try {
    save();
  } catch (const std::exception& e) {
    // What is not recorded is not applied: the caller publishes the recorded
    // state again (run_feed), so the gate and feed.json stay one version.
    status_ = recorded;
    SyncResult f{SyncOutcome::Failed,
                 what + " not applied: its status cannot be saved (" + e.what() +
                     "); the running allowlist is kept; free space or fix the state directory",
                 {}, {}, std::move(r.warnings)};
    return f;
  }
  spdlog::info("{}", r.message);
  return r;
}

}  // namespace smtpgate
