// The port-25 sets of the Microsoft 365 instances the gate does not follow
// (with instance Worldwide: USGovDoD, USGovGCCHigh, China). They are never
// admitted: they become watch ranges (origin feed-other), so a SYN from, say,
// a USGovDoD EOP address is counted against that range and explained as such
// rather than as a stranger. Kept in STATE_DIR/feed-other.json; fetched with
// the feed's client and its discipline (version at most once per interval,
// endpoints only when the version moved). A failure keeps what was known and
// never touches the applied allowlist.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "feed.hpp"
#include "feed_client.hpp"
#include "ruleset.hpp"

namespace smtpgate {

/// One other instance's port-25 set, as last fetched, and its polling state.
/// Times are unix seconds, 0 meaning never.
struct OtherInstanceSet {
  Instance instance = Instance::Worldwide;
  std::string version;  // 10 digits; "" before the first fetch
  std::string source;   // URL without its query
  int64_t fetched_at = 0;
  std::vector<int> set_ids;
  std::vector<Cidr> ranges;  // sorted, de-duplicated
  int64_t last_check = 0;
  int64_t next_check = 0;
  std::string last_error;  // "" after a success
};

/// STATE_DIR/feed-other.json; missing or unreadable: none (an unreadable file
/// is set aside: these are explanations, refetched at the next check).
std::vector<OtherInstanceSet> read_other_instances(const std::string& state_dir);
void write_other_instances(const std::string& state_dir, const std::vector<OtherInstanceSet>& sets);
/// Removes feed-other.json (the option was turned off); true if it existed.
bool forget_other_instances(const std::string& state_dir);

/// What feed status -j prints for them.
nlohmann::json other_instances_json(const std::vector<OtherInstanceSet>& sets);

/// Watch ranges, origin feed-other; a prefix two instances share is one range
/// whose note names both ("USGovDoD version 2025120100, USGovGCCHigh ...").
std::vector<DesiredRange> other_desired_ranges(const std::vector<OtherInstanceSet>& sets);

/// The instances other than `own`.
std::vector<Instance> other_instances_than(Instance own);

/// What one round of checks did.
struct OtherCheckResult {
  bool changed = false;                // some instance's ranges changed: publish
  std::vector<std::string> messages;   // one line per instance that answered
  std::vector<std::string> errors;     // one line per instance that failed
  std::vector<OtherInstanceSet> sets;  // what feed-other.json holds now (when any was asked)
};

/// The instances a round of checks asked, with what they answered; not yet
/// written.
struct OtherFetch {
  std::vector<OtherInstanceSet> asked;
  std::vector<std::string> messages;
};

/// The network half of a round: every instance other than `own` whose check
/// is due at `now` (all of them when forced): the version method, then the
/// endpoints only when the version moved. A set passes the feed's prefix
/// rules (policy, without the change rules) or is kept as it was. Failures
/// are recorded per instance and never thrown (Cancelled is). Reads
/// STATE_DIR/feed-other.json, writes nothing, needs no lock.
OtherFetch fetch_other_instances(FeedClient& client, Instance own, const FeedPolicy& policy, int64_t interval_s,
                                 int64_t retry_s, int64_t now, bool forced, const std::string& state_dir);
/// The local half, under the GateLock: merges the instances asked into
/// feed-other.json as it is now.
OtherCheckResult commit_other_instances(const OtherFetch& fetched, Instance own, const std::string& state_dir);
/// Both halves, for a caller that holds the GateLock anyway.
OtherCheckResult check_other_instances(FeedClient& client, Instance own, const FeedPolicy& policy, int64_t interval_s,
                                       int64_t retry_s, int64_t now, bool forced, const std::string& state_dir);

}  // namespace smtpgate
