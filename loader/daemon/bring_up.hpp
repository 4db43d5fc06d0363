// Setting the gate up (bring_up, declared in daemon.hpp): the maps adopted,
// pinned, or a running gate of another layout replaced beside itself,
// configured and holding the allowlist; then every interface running this
// version's program.
#pragma once

#include <cstddef>
#include <vector>

#include "ruleset.hpp"

namespace smtpgate {

/// How many of the ranges admit (a gate without one refuses all mail).
size_t count_admits(const std::vector<DesiredRange>& desired);

}  // namespace smtpgate
