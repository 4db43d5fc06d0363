// When to ask the feed, what to do with the answer, and what to remember:
// poll the version at most once per interval, fetch the endpoints (and the
// changes, for the log) only when it moved, validate, hand the accepted
// snapshot to an apply callback (the BPF publish), and keep the last known
// good in STATE_DIR/feed.json. Nothing here touches BPF.
//
// A check is two steps, so that no lock is held across the network: fetch()
// asks the service and writes nothing; commit() records and applies what it
// brought. The caller serialises every process that changes the gate
// (GateLock) around commit() and import_file() only. Each step reads
// feed.json first, and commit() drops a fetch whose basis another process
// changed meanwhile, so such a change is never overwritten.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cidr.hpp"
#include "feed.hpp"
#include "feed_client.hpp"

namespace smtpgate {

/// Unix seconds as RFC 3339 UTC ("2026-11-22T16:29:00Z").
std::string rfc3339_utc(int64_t unix_s);

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
  std::string instance;  // the instance last checked
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

struct FeedSyncOptions {
  Instance instance = Instance::Worldwide;
  std::string state_dir;
  FeedPolicy policy;
  int64_t interval_s = 3600;  // version polls; a longer Cache-Control max-age wins
  int64_t retry_s = 600;      // next try after a failed download or apply
  bool log_changes = true;    // call the changes method when the version moved
  int64_t removal_grace_s = 30 * 24 * 3600;  // how long a removed range stays admitted
  /// The caller holds the GateLock: a corrupt feed.json may be set aside.
  /// false for a fetch(), which reads and never moves it.
  bool holds_lock = true;
};

enum class SyncOutcome {
  NotDue,       // nothing asked: the next check is later
  Unchanged,    // the latest version is the applied one
  Applied,      // a new version passed validation and apply()
  Rejected,     // validation refused the latest version; the allowlist is kept
  Failed,       // download, parse or apply failed; retried after retry_s
  RateLimited,  // HTTP 429; retried when the service said (or in an hour)
};
std::string to_string(SyncOutcome o);

/// What one check did.
struct SyncResult {
  SyncOutcome outcome = SyncOutcome::NotDue;
  std::string message;  // one line for the log and the CLI
  std::vector<std::pair<Cidr, std::string>> added;  // with effective date ("" unknown)
  std::vector<Cidr> removed;
  std::vector<std::string> warnings;
  /// When the service may be asked again (unix seconds; 0: unknown). Also
  /// meant when feed.json could not be written: the daemon keeps it.
  int64_t next_check = 0;
};

/// What fetch() brought back from the service, for commit(): the answers,
/// or why there are none. Made without a lock; holds no state of its own.
struct FeedFetch {
  int64_t now = 0;
  bool forced = false;
  Instance instance = Instance::Worldwide;
  std::optional<SyncResult> early;  // decided without asking (not due, rate-limited)
  std::string basis;                // the applied and refused versions the fetch assumed
  std::optional<VersionAnswer> version;
  std::optional<EndpointsAnswer> endpoints;  // only when the version moved
  std::optional<std::vector<ChangeRecord>> changes;
  std::vector<std::string> warnings;
  SyncOutcome failure = SyncOutcome::NotDue;  // Failed or RateLimited when the service gave no answer
  std::string error;
  int64_t wait_s = 0;  // RateLimited: what the service asked
};

class FeedSync {
 public:
  /// Publishes an accepted snapshot; throwing means it was not applied.
  using ApplyFn = std::function<void(const FeedSnapshot&)>;

  /// client may be null when only import_file() is used. Loads feed.json.
  FeedSync(FeedSyncOptions options, FeedClient* client, ApplyFn apply);

  /// Checks the feed if the next check is due at `now` (unix seconds):
  /// commit(fetch(now, false)).
  SyncResult check(int64_t now);
  /// Checks now whatever the interval (smtpgatectl feed sync); still waits
  /// out a 429.
  SyncResult sync_now(int64_t now);

  /// The network half of a check: whether it is due (forced: whatever the
  /// interval), the version, and the endpoints and changes when it moved.
  /// Writes nothing; needs no lock. Throws only Cancelled (the caller stops
  /// it) and logic errors; the service's failures are in the result.
  FeedFetch fetch(int64_t now, bool forced);
  /// The local half, under the caller's GateLock: reloads feed.json; if the
  /// applied or refused version changed since the fetch, drops it (NotDue,
  /// the next check decides); otherwise records, validates and applies it.
  SyncResult commit(const FeedFetch& fetched);
  /// Applies a saved endpoints response (air-gapped gateways) through the
  /// same selection and validation; `version` (10 digits) if known.
  SyncResult import_file(const std::string& path, int64_t now, const std::string& version = "");

  /// The state after the last call (or as loaded).
  const FeedStatus& status() const { return status_; }
  /// The applied snapshot from feed.json: what to publish at start, offline.
  const std::optional<FeedSnapshot>& last_known_good() const { return status_.applied; }
  /// When check() will next ask the service.
  int64_t next_check() const { return status_.next_check; }

 private:
  SyncResult decide(const FeedFetch& fetched);
  SyncResult take(int64_t now, FeedSnapshot next, const std::vector<ChangeRecord>* changes,
                  std::vector<std::string> warnings, const std::string& what);
  SyncResult fail(int64_t now, SyncOutcome outcome, const std::string& message);
  void reload();
  void save();

  FeedSyncOptions options_;
  FeedClient* client_;
  ApplyFn apply_;
  FeedStatus status_;
};

}  // namespace smtpgate
