#include "feed_ranges.hpp"

#include <spdlog/spdlog.h>

#include <ctime>
#include <functional>

#include "eop_admit.hpp"
#include "feed_client.hpp"
#include "feed_other.hpp"
#include "gate.hpp"
#include "grace.hpp"

namespace smtpgate {

std::vector<DesiredRange> feed_desired_ranges(const FeedStatus& s) {
  std::vector<DesiredRange> out;
  if (s.applied) {
    const FeedSnapshot& a = s.applied.value();
    std::string note = to_string(a.instance) + (a.version.empty() ? "" : " version " + a.version);
    for (const auto& c : a.ranges) {
      auto eff = a.effective_dates.find(c);
      out.push_back(DesiredRange{c, RuleKind::Admit, origin::kFeed,
                                 note + (eff == a.effective_dates.end() ? "" : ", effective " + eff->second)});
    }
  }
  if (s.rejected && s.rejected->watched)
    for (const auto& c : s.rejected->ranges)
      out.push_back(DesiredRange{c, RuleKind::Watch, origin::kFeedPending,
                                 "published in version " + (s.rejected->version.empty() ? "?" : s.rejected->version) +
                                     ", not applied: " + s.rejected->reason});
  for (auto& d : removed_desired_ranges(s.recently_removed, ::time(nullptr))) out.push_back(std::move(d));
  return out;
}

std::vector<DesiredRange> feed_desired_ranges(const std::string& state_dir) {
  std::vector<DesiredRange> out = feed_desired_ranges(read_feed_status(state_dir));
  for (auto& d : other_desired_ranges(read_other_instances(state_dir))) out.push_back(std::move(d));
  for (auto& d : eop_admitted_ranges(read_feed_gaps(state_dir), ::time(nullptr))) out.push_back(std::move(d));
  return out;
}

FeedSyncOptions feed_sync_options(const DaemonConfig& cfg) {
  FeedSyncOptions o;
  o.instance = parse_instance(cfg.feed.instance);
  o.state_dir = cfg.paths.state_dir;
  o.policy.min_prefix_v4 = cfg.feed.min_prefix_v4;
  o.policy.min_prefix_v6 = cfg.feed.min_prefix_v6;
  o.policy.max_removal_share = cfg.feed.max_removal_share;
  o.policy.max_added_ranges = cfg.feed.max_added_ranges;
  o.policy.max_growth_share = cfg.feed.max_growth_share;
  o.policy.force = cfg.feed.force;
  o.interval_s = cfg.feed.interval_s;
  o.removal_grace_s = int64_t{cfg.feed.removal_grace_days} * 24 * 3600;
  return o;
}

FeedClientOptions feed_client_options(const DaemonConfig& cfg) {
  FeedClientOptions o;
  o.base_url = cfg.feed.url;
  o.state_dir = cfg.paths.state_dir;
  o.ipv6 = cfg.feed.ipv6;
  if (!cfg.feed.proxy.empty()) o.http.proxy = cfg.feed.proxy;
  o.http.allow_http = cfg.feed.allow_http;
  o.http.ca_file = cfg.feed.ca_file;
  return o;
}

namespace {
// Under the GateLock: marks the removed ranges whose grace ended by `now`,
// so that the next publish refuses them. True when one was marked.
bool end_grace(const std::string& state_dir, int64_t now) {
  FeedStatus st = read_feed_status(state_dir);
  std::vector<RemovedRange> before = st.recently_removed;
  if (!expire_grace(st.recently_removed, now)) return false;
  for (size_t i = 0; i < before.size(); i++)
    if (!before[i].grace_over && st.recently_removed[i].grace_over)
      spdlog::warn("feed: the grace of {} (removed by version {}) ended {}: it is refused from now on",
                   before[i].cidr.str(), before[i].version.empty() ? "?" : before[i].version,
                   utc_day(before[i].grace_until));
  write_feed_status(state_dir, st);
  return true;
}

// Under the GateLock: runs `step` with a FeedSync whose accepted snapshot
// reaches the maps (when a gate is pinned) with the operator's ranges and the
// feed's watch ranges, then publishes what changed without a new version.
SyncResult under_lock(const DaemonConfig& cfg, int64_t now, const std::optional<OtherFetch>& others,
                      const std::function<SyncResult(FeedSync&)>& step, std::optional<std::chrono::milliseconds> wait) {
  GateLock lock(cfg.paths, wait);
  StateStore store(cfg.paths.state_dir);
  make_dirs(cfg.paths.state_dir, 0755);
  // FeedSync records the snapshot only if this does not throw.
  auto apply = [&](const FeedSnapshot& snap) {
    if (!GateMaps::pinned_at(cfg.paths.pin_dir)) return;
    FeedStatus next = read_feed_status(cfg.paths.state_dir);
    // What this version removes enters its grace in this very publish (it
    // is recorded in feed.json only after): no moment without it.
    if (next.applied && next.applied->instance == snap.instance)
      for (const auto& c : diff(next.applied->ranges, snap.ranges).removed)
        next.recently_removed.push_back(
            RemovedRange{c, snap.version, now, now + feed_sync_options(cfg).removal_grace_s, false});
    next.applied = snap;
    std::vector<DesiredRange> desired;
    for (const auto& r : store.operator_ranges())
      desired.push_back(DesiredRange{r.cidr, r.kind, origin::kOperator, r.comment});
    for (auto& d : feed_desired_ranges(next)) desired.push_back(std::move(d));
    for (auto& d : other_desired_ranges(read_other_instances(cfg.paths.state_dir))) desired.push_back(std::move(d));
    for (auto& d : eop_admitted_ranges(read_feed_gaps(cfg.paths.state_dir), ::time(nullptr)))
      desired.push_back(std::move(d));
    GateMaps maps = GateMaps::open_pinned(cfg.paths.pin_dir);
    publish_desired(maps, desired);
  };
  FeedSync sync(feed_sync_options(cfg), nullptr, apply);
  SyncResult r = step(sync);
  // Watch ranges (a refused version's, removed ones, other instances') change
  // without a new applied version: publish them too. A failure after apply()
  // (feed.json not writable) puts back what the state holds.
  bool republish = r.outcome == SyncOutcome::Rejected || r.outcome == SyncOutcome::Applied ||
                   r.outcome == SyncOutcome::Failed;
  if (others) {
    OtherCheckResult o = commit_other_instances(*others, parse_instance(cfg.feed.instance), cfg.paths.state_dir);
    for (const auto& m : o.messages) spdlog::info("feed: {}", m);
    r.warnings.insert(r.warnings.end(), o.errors.begin(), o.errors.end());
    republish = republish || o.changed;
  } else if (!cfg.feed.watch_other_instances && forget_other_instances(cfg.paths.state_dir)) {
    republish = true;  // turned off: their watch ranges leave the gate
  }
  if (end_grace(cfg.paths.state_dir, now)) republish = true;
  if (republish) republish_if_pinned(cfg.paths);
  return r;
}
}  // namespace

FeedFetched fetch_feed(const DaemonConfig& cfg, FeedOp op, int64_t now, std::shared_ptr<Cancellation> cancel) {
  if (op == FeedOp::Import) throw std::logic_error("fetch_feed: an import has nothing to fetch");
  FeedClientOptions co = feed_client_options(cfg);
  co.http.cancel = std::move(cancel);
  FeedClient client(co);
  FeedSyncOptions so = feed_sync_options(cfg);
  so.holds_lock = false;
  FeedFetched f;
  f.feed = FeedSync(so, &client, nullptr).fetch(now, op == FeedOp::SyncNow);
  if (cfg.feed.watch_other_instances)
    f.others = fetch_other_instances(client, so.instance, so.policy, so.interval_s, so.retry_s, now,
                                     op == FeedOp::SyncNow, cfg.paths.state_dir);
  return f;
}

SyncResult commit_feed(const DaemonConfig& cfg, const FeedFetched& fetched,
                       std::optional<std::chrono::milliseconds> lock_wait) {
  return under_lock(cfg, fetched.feed.now, fetched.others, [&](FeedSync& sync) { return sync.commit(fetched.feed); },
                    lock_wait);
}

SyncResult run_feed(const DaemonConfig& cfg, FeedOp op, int64_t now, const std::string& file,
                    const std::string& version) {
  if (op == FeedOp::Import)
    return under_lock(cfg, now, std::nullopt, [&](FeedSync& sync) { return sync.import_file(file, now, version); },
                      std::nullopt);
  return commit_feed(cfg, fetch_feed(cfg, op, now));
}

}  // namespace smtpgate
