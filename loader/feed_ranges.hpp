// The feed inside the gate: what feed.json (FeedSync's state) contributes to
// the allowlist, and the feed operations smtpgatectl and smtpgated run under
// the gate lock, with an accepted version published to the maps.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"
#include "feed_sync.hpp"
#include "ruleset.hpp"
#include "state.hpp"

namespace smtpgate {

/// Ranges a feed status contributes: the applied version's (admit, origin
/// feed), a refused version's (watch, feed-pending), recently removed ones
/// (watch, feed-removed).
std::vector<DesiredRange> feed_desired_ranges(const FeedStatus& status);
/// The same, read from STATE_DIR/feed.json (empty when there is none).
std::vector<DesiredRange> feed_desired_ranges(const std::string& state_dir);

/// FeedSync's options from the daemon's configuration.
FeedSyncOptions feed_sync_options(const DaemonConfig& cfg);
FeedClientOptions feed_client_options(const DaemonConfig& cfg);

/// What a feed operation should do.
enum class FeedOp { Check, SyncNow, Import };

/// Runs one feed operation under the GateLock; an accepted version is
/// published at once (when a gate is pinned) together with the operator's
/// ranges. Check and SyncNow also check the other instances when
/// feed.watch_other_instances is on (and forget them when it is off). A refused or failed one leaves the allowlist and the applied state
/// as they were; the result says why, and feed status keeps it.
SyncResult run_feed(const DaemonConfig& cfg, FeedOp op, int64_t now, const std::string& file = "",
                    const std::string& version = "");

}  // namespace smtpgate
