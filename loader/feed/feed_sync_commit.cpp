// The feed sync's local half: commit() and import_file() decide on an
// answer, validate it, apply it and record it in feed.json (feed_sync.hpp).
#include "feed_sync.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>

#include "error.hpp"
#include "fsutil.hpp"

namespace smtpgate {

namespace {
constexpr int64_t kRemovedRetention = 30 * 24 * 3600;
constexpr int64_t kMinRateLimitWait = 60;  // a Retry-After of 0 must not become a busy loop

bool listed(const std::vector<Cidr>& sorted, const Cidr& c) {
  return std::binary_search(sorted.begin(), sorted.end(), c);
}

// Effective dates of next's ranges: kept from prev for ranges still listed,
// new ones from the changes this version brought to the selected sets.
void carry_effective_dates(FeedSnapshot& next, const FeedSnapshot* prev, const std::vector<ChangeRecord>* changes) {
  if (prev)
    for (const auto& [c, d] : prev->effective_dates)
      if (listed(next.ranges, c)) next.effective_dates[c] = d;
  if (!changes) return;
  for (const auto& rec : *changes) {
    if (std::find(next.set_ids.begin(), next.set_ids.end(), rec.endpoint_set_id) == next.set_ids.end()) continue;
    if (prev && is_feed_version(prev->version) && rec.version <= prev->version) continue;
    if (!next.version.empty() && rec.version > next.version) continue;
    if (rec.effective_date.empty()) continue;
    for (const auto& ip : rec.added_ips)
      if (listed(next.ranges, ip)) next.effective_dates[ip] = rec.effective_date;
  }
}
}  // namespace

SyncResult FeedSync::fail(int64_t now, SyncOutcome outcome, const std::string& message) {
  SyncResult r;
  r.outcome = outcome;
  status_.last_error = message;
  if (outcome == SyncOutcome::Failed) {
    status_.next_check = now + options_.retry_s;
    r.message = message + "; the running allowlist is kept; next try at " + time_or_never(status_.next_check);
  } else {
    r.message = message;
  }
  save_or_warn(r);
  return r;
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
  if (basis() != f.basis)
    return SyncResult{SyncOutcome::NotDue,
                      "another process applied or refused a feed version while the service was asked; this "
                      "answer is dropped, next check at " +
                          time_or_never(status_.next_check),
                      {},
                      {},
                      {},
                      status_.next_check};

  status_.instance = to_string(f.instance);
  status_.last_check = now;
  if (f.version) status_.latest_version = f.version->latest;  // announced, even if its endpoints failed
  if (f.failure == SyncOutcome::RateLimited) {
    int64_t wait = std::max<int64_t>(f.wait_s, kMinRateLimitWait);
    status_.rate_limited_until = now + wait;
    status_.next_check = now + wait;
    return fail(now, SyncOutcome::RateLimited,
                f.error + "; the running allowlist is kept; next try at " + time_or_never(now + wait));
  }
  if (f.failure == SyncOutcome::Failed || !f.version) return fail(now, SyncOutcome::Failed, f.error);

  const VersionAnswer& v = *f.version;
  status_.next_check = now + std::max<int64_t>(options_.interval_s, v.max_age ? v.max_age->count() : 0);
  if (auto known = known_version(f)) return *known;
  return take_fetched(f);
}

std::optional<SyncResult> FeedSync::known_version(const FeedFetch& f) {
  const std::string& latest = f.version->latest;
  const std::string what = "feed version " + latest;
  if (status_.applied && status_.applied->instance == f.instance && status_.applied->version == latest) {
    status_.last_success = f.now;
    status_.last_error.clear();
    SyncResult r{SyncOutcome::Unchanged,
                 what + " is applied and still the latest; next check at " + time_or_never(status_.next_check),
                 {},
                 {},
                 {}};
    save_or_warn(r);
    return r;
  }
  if (!f.forced && status_.rejected && status_.rejected->version == latest) {
    status_.last_error = status_.rejected->reason;
    SyncResult r{SyncOutcome::Rejected,
                 what + " is still the latest and stays refused: " + status_.rejected->reason,
                 {},
                 {},
                 {}};
    save_or_warn(r);
    return r;
  }
  return std::nullopt;
}

SyncResult FeedSync::take_fetched(const FeedFetch& f) {
  // The basis is the one fetch() saw, so it asked for these.
  if (!f.endpoints) throw std::logic_error("FeedSync: a moved version without its endpoints");
  const int64_t now = f.now;
  const std::string& latest = f.version->latest;
  const std::string what = "feed version " + latest;

  std::vector<std::string> warnings = f.warnings;
  if (status_.applied && status_.applied->instance == f.instance && is_feed_version(status_.applied->version) &&
      latest < status_.applied->version)
    warnings.push_back("the service announces " + what + ", older than the applied " + status_.applied->version);

  const EndpointsAnswer& ep = *f.endpoints;
  FeedSnapshot next;
  next.instance = f.instance;
  next.version = latest;
  next.source = ep.source;
  next.fetched_at = now;
  try {
    Port25Selection sel = select_port25(ep.sets, f.instance, ep.source);
    next.set_ids = sel.set_ids;
    next.ranges = sel.ranges;
    for (auto& w : sel.warnings) warnings.push_back(std::move(w));
  } catch (const InputError& e) {
    status_.rejected = RejectedVersion{latest, what + " is refused: " + e.what(), now, ep.source, {}, {}, false};
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

  carry_effective_dates(next, prev, changes);

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

  return record_applied(now, std::move(next), std::move(r), std::move(warnings), what);
}

SyncResult FeedSync::record_applied(int64_t now, FeedSnapshot next, SyncResult r, std::vector<std::string> warnings,
                                    const std::string& what) {
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
  if (status_.rejected &&
      (status_.rejected->version.empty() || next.version.empty() || status_.rejected->version <= next.version))
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
                 {},
                 {},
                 std::move(r.warnings)};
    return f;
  }
  spdlog::info("{}", r.message);
  return r;
}

}  // namespace smtpgate
