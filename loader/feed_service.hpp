// The feed as the daemon runs it: when to check, and how an accepted feed
// version reaches the maps.
#pragma once

#include <cstdint>

#include "config.hpp"

namespace smtpgate {

class FeedService {
 public:
  explicit FeedService(const DaemonConfig& cfg);
  /// At start: nothing to do when a last-known-good feed exists; otherwise one
  /// sync attempt (errors are logged, the gate comes up with what it has).
  void start_up();
  /// Milliseconds until the next check is due (-1: never, feed disabled).
  int ms_until_next_check() const;
  /// Checks the feed if due; failures are logged and kept for status.
  void check_now_if_due();
  /// Applies a reloaded configuration.
  void reconfigure(const DaemonConfig& cfg);

 private:
  DaemonConfig cfg_;
};

}  // namespace smtpgate
