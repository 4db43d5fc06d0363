#include "feed_ranges.hpp"

#include <spdlog/spdlog.h>

#include <ctime>
#include <functional>

#include "feed_client.hpp"
#include "feed_other.hpp"
#include "gate.hpp"
#include "grace.hpp"

namespace smtpgate {

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
// Marks the removed ranges whose grace ended by `now`, so that the next
// publish refuses them. True when one was marked.
bool end_grace(FeedStatus& st, int64_t now) {
  std::vector<RemovedRange> before = st.recently_removed;
  if (!expire_grace(st.recently_removed, now)) return false;
  for (size_t i = 0; i < before.size(); i++)
    if (!before[i].grace_over && st.recently_removed[i].grace_over)
      spdlog::warn("feed: the grace of {} (removed by version {}) ended {}: it is refused from now on",
                   before[i].cidr.str(), before[i].version.empty() ? "?" : before[i].version,
                   utc_day(before[i].grace_until));
  return true;
}

// Under the GateLock: the state read once, the maps opened once (GateChange).
// `step` runs with a FeedSync whose accepted snapshot is published (when a
// gate is pinned) with the rest of that state, before FeedSync records it
// (FeedSync's order: what is not applied is not recorded). Then what changed
// without a new applied version (a refused version's watch ranges, the other
// instances', ended graces) is written and published in one more publish;
// if that publish fails, the files it wrote are put back.
SyncResult under_lock(const DaemonConfig& cfg, int64_t now, const std::optional<OtherFetch>& others,
                      const std::function<SyncResult(FeedSync&)>& step, std::optional<std::chrono::milliseconds> wait) {
  GateLock lock(cfg.paths, wait);
  make_dirs(cfg.paths.state_dir, 0755);
  GateChange change(cfg.paths);
  const std::string& dir = cfg.paths.state_dir;
  bool published = false;  // the maps hold something other than before()
  // FeedSync records the snapshot only if this does not throw.
  auto apply = [&](const FeedSnapshot& snap) {
    DesiredInputs next = change.before();
    // What this version removes enters its grace in this very publish (it
    // is recorded in feed.json only after): no moment without it.
    if (next.feed.applied && next.feed.applied->instance == snap.instance)
      for (const auto& c : diff(next.feed.applied->ranges, snap.ranges).removed)
        next.feed.recently_removed.push_back(
            RemovedRange{c, snap.version, now, now + feed_sync_options(cfg).removal_grace_s, false});
    next.feed.applied = snap;
    change.publish(next);
    published = change.pinned();
  };
  FeedSync sync(feed_sync_options(cfg), nullptr, apply);
  SyncResult r = step(sync);

  // What feed.json holds now, and what this step adds to it.
  DesiredInputs recorded = change.before();
  recorded.feed = sync.status();
  DesiredInputs next = recorded;
  // A refused version's watch ranges change without a new applied version;
  // a failure after apply() (feed.json not writable) puts back what the
  // state holds.
  bool republish = published || r.outcome == SyncOutcome::Rejected || r.outcome == SyncOutcome::Applied ||
                   r.outcome == SyncOutcome::Failed;
  bool others_written = false;
  if (others) {
    OtherCheckResult o = commit_other_instances(*others, parse_instance(cfg.feed.instance), dir);
    for (const auto& m : o.messages) spdlog::info("feed: {}", m);
    r.warnings.insert(r.warnings.end(), o.errors.begin(), o.errors.end());
    others_written = !others->asked.empty();
    if (others_written) next.others = o.sets;
    republish = republish || o.changed;
  } else if (!cfg.feed.watch_other_instances && forget_other_instances(dir)) {
    next.others.clear();
    others_written = true;
    republish = true;  // turned off: their watch ranges leave the gate
  }
  bool grace_ended = end_grace(next.feed, now);
  if (grace_ended) write_feed_status(dir, next.feed);
  if (!republish && !grace_ended) return r;
  try {
    change.publish(next);
  } catch (...) {
    if (grace_ended) write_feed_status(dir, recorded.feed);
    if (others_written) write_other_instances(dir, recorded.others);
    throw;
  }
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
  return under_lock(
      cfg, fetched.feed.now, fetched.others, [&](FeedSync& sync) { return sync.commit(fetched.feed); }, lock_wait);
}

SyncResult run_feed(const DaemonConfig& cfg, FeedOp op, int64_t now, const std::string& file,
                    const std::string& version) {
  if (op == FeedOp::Import)
    return under_lock(
        cfg, now, std::nullopt, [&](FeedSync& sync) { return sync.import_file(file, now, version); }, std::nullopt);
  return commit_feed(cfg, fetch_feed(cfg, op, now));
}

}  // namespace smtpgate
