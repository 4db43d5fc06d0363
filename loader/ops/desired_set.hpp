// The set of ranges the gate should know: the operator's, then the feed's
// (applied, pending, grace, removed, other instances', confirmed EOP).
#pragma once

#include <vector>

#include "ruleset.hpp"
#include "state.hpp"

namespace smtpgate {

/// Every range the gate should know now, from the state directory.
std::vector<DesiredRange> desired_ranges(const StateStore& store);

}  // namespace smtpgate
