// STATE_DIR/feed.json: what the feed sync (feed_sync.hpp) applied, refused
// and last saw of the service, kept across restarts and shown by
// `smtpgatectl feed status`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cidr.hpp"
#include "feed.hpp"

namespace smtpgate {

/// Unix seconds as RFC 3339 UTC ("2026-11-22T16:29:00Z").
std::string rfc3339_utc(int64_t unix_s);
/// rfc3339_utc, or "never" for 0.
std::string time_or_never(int64_t unix_s);

/// One feed version's port-25 ranges, as applied (or refused).
struct FeedSnapshot {
  Instance instance = Instance::Worldwide;
  std::string version;  // 10 digits; "" for a file imported without one
  std::string source;   // URL without its query, or "import FILE"
  int64_t fetched_at = 0;
  std::vector<int> set_ids;
  std::vector<Cidr> ranges;                     // sorted, de-duplicated
  std::map<Cidr, std::string> effective_dates;  // YYYYMMDD, where the changes method gave one
};

/// A version validation refused. When it was refused for what it drops, its
/// ranges are "pending": believed to be Microsoft's, not admitted (watch
/// ranges). When it was refused for what it would admit (too wide, too much,
/// special-purpose space), they are kept for explain only: a forged answer
/// must not get its ranges into the maps, not even as watch ranges.
struct RejectedVersion {
  std::string version;  // "" for an unversioned import
  std::string reason;   // the one-line refusal
  int64_t at = 0;
  std::string source;
  std::vector<int> set_ids;
  std::vector<Cidr> ranges;
  bool watched = true;  // its ranges are published as watch ranges (feed-pending)
};

/// A range a newer applied version no longer lists: admitted until
/// grace_until (grace.hpp), then refused; forgotten 30 days later.
struct RemovedRange {
  Cidr cidr;
  std::string version;  // the version that removed it
  int64_t removed_at = 0;
  int64_t grace_until = 0;  // unix seconds; removed_at (or 0) when it had none
  bool grace_over = false;  // its grace ended (marked when seen ended)
};

/// Everything feed.json holds; what `smtpgatectl feed status` shows. Times
/// are unix seconds, 0 meaning never.
struct FeedStatus {
  std::string instance;                 // the instance last checked
  std::optional<FeedSnapshot> applied;  // the last known good
  std::string latest_version;           // newest version the service announced
  int64_t last_check = 0;
  int64_t last_success = 0;  // last check that ended with the latest version applied
  int64_t next_check = 0;
  int64_t rate_limited_until = 0;
  std::string last_error;  // "" after a success
  std::optional<RejectedVersion> rejected;
  std::vector<RemovedRange> recently_removed;

  /// True when the service announced a version other than the applied one.
  bool stale() const;
};

/// The document written to feed.json (and printed by feed status -j).
nlohmann::json to_json(const FeedStatus& s);
/// Reads that document; throws on anything malformed.
FeedStatus feed_status_from_json(const nlohmann::json& j);
/// STATE_DIR/feed.json; missing: an empty status. A file that does not parse
/// is never trusted: the returned status says so in last_error, and it is
/// set aside (feed.json.corrupt-TIME) unless set_aside_corrupt is false (a
/// reader without the gate lock, which must not move a file a writer may
/// just have replaced).
FeedStatus read_feed_status(const std::string& state_dir, bool set_aside_corrupt = true);
/// Writes STATE_DIR/feed.json atomically.
void write_feed_status(const std::string& state_dir, const FeedStatus& s);

}  // namespace smtpgate
