// The feed's state in the state directory (feed.json): the last version
// applied (the last known good), and what the last check found. Its ranges are
// the feed's contribution to the allowlist.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "feed.hpp"
#include "ruleset.hpp"
#include "state.hpp"

namespace smtpgate {

/// One applied feed version.
struct FeedRecord {
  std::string instance;
  std::string version;      // 10-digit version, or "" for an imported file
  std::string source;       // URL, or "import FILE"
  int64_t fetched_unix = 0;
  std::vector<int> set_ids;
  std::vector<Cidr> ranges;
};

struct FeedState {
  std::optional<FeedRecord> applied;  // the last known good
  int64_t last_check_unix = 0;
  std::string last_error;             // empty after a success
  std::string latest_version;         // newest version the service announced
};

/// Reads feed.json; missing means empty. A corrupt file is set aside and
/// InputError thrown (never trusted).
FeedState load_feed_state(const std::string& state_dir);
void save_feed_state(const std::string& state_dir, const FeedState& s);

/// Ranges the feed state contributes; empty when no feed was ever applied.
std::vector<DesiredRange> feed_desired_ranges(const std::string& state_dir);

/// feed import: applies a saved endpoints response (air-gapped gateways)
/// through the same selection and validation as a download. A refusal is
/// recorded (feed status shows it) and thrown; nothing else changes.
FeedRecord import_feed(const Paths& paths, const std::string& file, Instance instance, const FeedPolicy& policy);

}  // namespace smtpgate
