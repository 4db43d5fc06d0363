// Removal grace: Microsoft's removals carry no deadline, and a range it
// removes may still send for a while. A removed range stays admitted for a
// grace period (feed.removal_grace_days, origin feed-grace, its hits
// counted), then is watched as feed-removed (refused, explained) until it
// is forgotten.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "feed_sync.hpp"
#include "ruleset.hpp"

namespace smtpgate {

/// True while a removed range is still admitted: its grace has not ended at
/// `now` nor been marked over (expire_grace).
bool in_grace(const RemovedRange& r, int64_t now);

/// The removed ranges as the gate should know them at `now`: admit
/// (feed-grace) in grace, watch (feed-removed) after.
std::vector<DesiredRange> removed_desired_ranges(const std::vector<RemovedRange>& removed, int64_t now);

/// Marks the grace of every range whose grace ended by `now` as over (so a
/// clock that is behind does not bring it back). True when one changed:
/// the gate must be published again.
bool expire_grace(std::vector<RemovedRange>& removed, int64_t now);

/// "2026-01-31" for a unix time.
std::string utc_day(int64_t unix_s);

}  // namespace smtpgate
