// The JSON documents of the read commands (docs/json-schema.md); each is
// rendered as text from that same JSON (render_text.hpp), so the two views
// cannot disagree.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "cidr.hpp"
#include "feed_settings.hpp"
#include "state.hpp"

namespace smtpgate {

/// status: interfaces, action, ports, feed, drop recording, ranges per origin.
nlohmann::json build_status(const Paths& paths);
/// ranges list: every range the gate knows, with kind, origin, rule id.
nlohmann::json build_ranges(const Paths& paths);
/// feed status: instance, applied version and source, last check, last error,
/// the other instances watched.
nlohmann::json build_feed_status(const Paths& paths, const FeedSettingsChoice& settings);

/// stats: per-range counters, the default rule, totals per verdict and reason.
nlohmann::json build_stats(const Paths& paths);

/// top: the most turned-away sources of the recently-refused table,
/// Microsoft's first; at most `limit`, only those whose deciding rule has
/// `origin` when given.
nlohmann::json build_top(const Paths& paths, size_t limit, const std::string& origin);

/// explain: the verdict a SYN from address would get now, and why.
nlohmann::json build_explain(const Paths& paths, const Cidr& address);

}  // namespace smtpgate
