// The feed as the daemon runs it: when a check is due, its network half on a
// worker thread of its own (the main loop keeps serving signals, the drops
// ring and reloads meanwhile, and SIGTERM stops the transfer), and its local
// half, under the gate lock, back on the main loop. Counts checks by outcome
// for the metrics.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "config.hpp"
#include "feed_ranges.hpp"

namespace smtpgate {

class FeedService {
 public:
  /// How long the local half waits for the gate lock before it gives up (and
  /// the check is retried): never blocks the main loop behind a stuck holder.
  static constexpr std::chrono::milliseconds kLockWait{10000};

  FeedService() = default;
  /// Stops a running check (stop(kStopWait)).
  ~FeedService();
  FeedService(const FeedService&) = delete;
  FeedService& operator=(const FeedService&) = delete;

  /// Milliseconds until a check is due with cfg (at least 1000 after the
  /// last one, at most an hour); -1 while one runs or when the feed is off.
  /// A check is never due before the next check the last one named, even if
  /// feed.json could not record it.
  int ms_until_due(const DaemonConfig& cfg) const;
  /// The operation a first check runs: Check with a last known good, else
  /// SyncNow (whatever the interval).
  static FeedOp first_op(const DaemonConfig& cfg);
  /// Starts a check with cfg's settings on the worker, unless one runs.
  void start(ConfigSnapshot cfg, FeedOp op);
  bool running() const { return job_ != nullptr; }
  /// Readable (POLLIN) once the running check's network half has ended; -1
  /// when none runs.
  int done_fd() const;
  /// After done_fd() turned readable: the local half with `current`'s
  /// settings (a check begun with another feed source is dropped, and the
  /// next one is due at once). Logs the outcome; never throws.
  void finish(const ConfigSnapshot& current);
  /// Cancels a running check and waits for its worker at most `limit`; a
  /// worker still running then is left to end on its own (the process is
  /// leaving). True when none runs any more.
  bool stop(std::chrono::milliseconds limit);
  /// The feed's metric families: checks by outcome since the start.
  std::vector<prometheus::MetricFamily> metrics() const;

 private:
  struct Job;
  void count(SyncOutcome outcome);

  std::shared_ptr<Job> job_;
  int64_t not_before_ = 0;  // unix seconds
  std::array<std::atomic<uint64_t>, 6> outcomes_{};
};

}  // namespace smtpgate
