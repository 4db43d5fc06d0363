// When to ask the feed, what to do with the answer, and what to remember:
// poll the version at most once per interval, fetch the endpoints (and the
// changes, for the log) only when it moved, validate, hand the accepted
// snapshot to an apply callback (the BPF publish), and keep the last known
// good in STATE_DIR/feed.json (feed_status.hpp). Nothing here touches BPF.
// feed_sync.cpp asks the service, feed_sync_commit.cpp decides and records.
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
#include "feed_status.hpp"

namespace smtpgate {

struct FeedSyncOptions {
  Instance instance = Instance::Worldwide;
  std::string state_dir;
  FeedPolicy policy;
  int64_t interval_s = 3600;                 // version polls; a longer Cache-Control max-age wins
  int64_t retry_s = 600;                     // next try after a failed download or apply
  bool log_changes = true;                   // call the changes method when the version moved
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
  std::string message;                              // one line for the log and the CLI
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
  /// What a fetch decides by: the applied and the refused version. A commit
  /// whose state says otherwise was overtaken by another process.
  std::string basis() const;
  /// The answer when the service is not to be asked now (not due, or
  /// waiting out a 429); nullopt when it is.
  std::optional<SyncResult> not_asking(int64_t now, bool forced) const;
  /// Asks the service for the version, and for the endpoints and changes
  /// when it moved; what fails is recorded in f.
  void ask_service(FeedFetch& f) const;
  SyncResult decide(const FeedFetch& fetched);
  /// The answer when the announced version needs no endpoints: it is the
  /// applied one, or it stays refused.
  std::optional<SyncResult> known_version(const FeedFetch& fetched);
  /// The port-25 set of the fetched endpoints, through take().
  SyncResult take_fetched(const FeedFetch& fetched);
  SyncResult take(int64_t now, FeedSnapshot next, const std::vector<ChangeRecord>* changes,
                  std::vector<std::string> warnings, const std::string& what);
  /// Records `next` as applied (after apply_ succeeded) and saves it.
  SyncResult record_applied(int64_t now, FeedSnapshot next, SyncResult r, std::vector<std::string> warnings,
                            const std::string& what);
  SyncResult fail(int64_t now, SyncOutcome outcome, const std::string& message);
  void reload();
  void save();
  /// save(); a failure becomes a warning of r.
  void save_or_warn(SyncResult& r);

  FeedSyncOptions options_;
  FeedClient* client_;
  ApplyFn apply_;
  FeedStatus status_;
};

}  // namespace smtpgate
