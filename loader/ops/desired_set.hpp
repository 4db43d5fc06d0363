// The set of ranges the gate should know: the operator's, then the feed's
// (applied, pending, grace, removed, other instances', confirmed EOP). One
// place assembles it, from the state it is made of (DesiredInputs); every
// other caller reads the state and asks here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "feed_gap.hpp"
#include "feed_other.hpp"
#include "feed_sync.hpp"
#include "ruleset.hpp"
#include "state.hpp"

namespace smtpgate {

/// The state the desired set is made of, each file of the state directory
/// read once: a change edits a copy in memory, and publishes what that copy
/// says.
struct DesiredInputs {
  std::vector<OperatorRange> operator_ranges;  // ranges.json
  FeedStatus feed;                             // feed.json
  std::vector<OtherInstanceSet> others;        // feed-other.json
  FeedGaps feed_gaps;                          // feed-gaps.json

  /// Reads them from STATE_DIR. A corrupt ranges.json throws (StateStore).
  static DesiredInputs read(const std::string& state_dir);
};

/// The ranges the gate should know at `now` (unix seconds): the operator's
/// first, then the feed's.
std::vector<DesiredRange> desired_ranges(const DesiredInputs& in, int64_t now);
/// The same, read from the state directory now.
std::vector<DesiredRange> desired_ranges(const StateStore& store);

/// The operator's part (origin operator).
std::vector<DesiredRange> operator_desired_ranges(const std::vector<OperatorRange>& ranges);
/// The part a feed status contributes: the applied version's (admit, origin
/// feed), a refused version's (watch, feed-pending), recently removed ones
/// (admit in grace, then watch).
std::vector<DesiredRange> feed_desired_ranges(const FeedStatus& status, int64_t now);
/// The feed's whole part, read from the state directory now: feed.json's,
/// the other instances' (feed-other.json) and the confirmed EOP hosts'
/// (feed-gaps.json).
std::vector<DesiredRange> feed_desired_ranges(const std::string& state_dir);

}  // namespace smtpgate
