// admit_confirmed_eop: an opt-in policy for feed gaps. A source whose PTR
// name, confirmed forward, is an EOP outbound host is admitted (the address,
// or its /24; an IPv6 host's /64) under its own origin, eop-confirmed, for
// feed_gaps.admit_days, renewed while SYNs from it are admitted. Every
// admission and expiry is logged; ranges list and explain show them.
#pragma once

#include <cstdint>
#include <vector>

#include "config.hpp"
#include "feed_gap.hpp"
#include "ruleset.hpp"

namespace smtpgate {

/// The range a policy admits for a confirmed host ("address": the host, "24":
/// its /24 or, for IPv6, /64).
Cidr eop_admission_range(const Cidr& host, const std::string& policy);

/// Admits new feed gaps, renews admissions whose rule admitted SYNs since
/// the last look, ends those past admitted_until. True when an admission
/// began or ended (the gate must be published again).
bool update_eop_admissions(FeedGaps& gaps, const Paths& paths, const FeedGapConfig& policy, int64_t now);

/// The admissions in force, as the gate should know them.
std::vector<DesiredRange> eop_admitted_ranges(const FeedGaps& gaps, int64_t now);

}  // namespace smtpgate
