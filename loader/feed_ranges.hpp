// The feed's contribution to the allowlist, read from the feed state in the
// state directory: applied ranges (admitted) and the ranges the gate watches
// (pending, recently removed, other instances).
#pragma once

#include <string>
#include <vector>

#include "ruleset.hpp"

namespace smtpgate {

/// Ranges the feed state contributes; empty when no feed was ever applied.
std::vector<DesiredRange> feed_desired_ranges(const std::string& state_dir);

}  // namespace smtpgate
