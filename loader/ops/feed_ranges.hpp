// The feed operations smtpgatectl and smtpgated run: the network half
// without any lock, then the rest under the gate lock, with an accepted
// version published to the maps. What the feed contributes to the allowlist
// is desired_set.hpp's.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "desired_set.hpp"
#include "feed_other.hpp"
#include "feed_sync.hpp"
#include "ruleset.hpp"
#include "state.hpp"

namespace smtpgate {

/// FeedSync's options from the daemon's configuration.
FeedSyncOptions feed_sync_options(const DaemonConfig& cfg);
FeedClientOptions feed_client_options(const DaemonConfig& cfg);

/// What a feed operation should do.
enum class FeedOp { Check, SyncNow, Import };

/// What a Check or SyncNow brought back from the network.
struct FeedFetched {
  FeedFetch feed;
  std::optional<OtherFetch> others;  // with feed.watch_other_instances
};

/// The network half of a Check or SyncNow: the feed, and the other instances
/// when feed.watch_other_instances is on. Takes no lock, writes nothing but
/// the ClientRequestId the first time. `cancel` (may be null) lets another
/// thread stop it: it then throws Cancelled.
FeedFetched fetch_feed(const DaemonConfig& cfg, FeedOp op, int64_t now, std::shared_ptr<Cancellation> cancel = nullptr);
/// The local half, under the GateLock (waiting at most lock_wait when
/// given): records what was fetched, publishes an accepted version at once
/// (when a gate is pinned) together with the operator's ranges, and the other
/// instances' watch ranges (forgotten when the option is off). A refused or
/// failed check leaves the allowlist and the applied state as they were; the
/// result says why, and feed status keeps it.
SyncResult commit_feed(const DaemonConfig& cfg, const FeedFetched& fetched,
                       std::optional<std::chrono::milliseconds> lock_wait = std::nullopt);

/// One feed operation from start to end: fetch_feed then commit_feed, or an
/// import (a local file: all of it under the GateLock).
SyncResult run_feed(const DaemonConfig& cfg, FeedOp op, int64_t now, const std::string& file = "",
                    const std::string& version = "");

}  // namespace smtpgate
