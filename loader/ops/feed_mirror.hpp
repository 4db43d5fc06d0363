// A feed mirror for a fleet: one gateway (or any host) fetches Microsoft's
// endpoints service and writes the answers as files, a static web server
// serves them, and the other gateways point --feed-url at it. The files sit
// at the paths smtpgate requests (the query string is ignored by static
// servers): version/<Instance>, endpoints/<Instance> (the Exchange sets) and
// changes/<Instance>/<VERSION>.
#pragma once

#include <string>
#include <vector>

#include "config.hpp"

namespace smtpgate {

/// What one mirror run wrote.
struct MirrorResult {
  std::string version;                // the version now served
  size_t port25_ranges = 0;           // in the served port-25 set
  size_t change_files = 0;            // changes/<Instance>/<VERSION> files written
  std::vector<std::string> warnings;  // e.g. the change log was not available
  std::string message;                // one line for the CLI
};

/// Fetches cfg.feed's instance from cfg.feed.url and writes it under dir.
/// The endpoints answer must pass the checks a gateway applies (a port-25 set,
/// no special-purpose space, no prefix shorter than the minimum), or nothing
/// is written (InputError). Each file is replaced atomically, the version
/// last, so a client never sees a version whose endpoints are not there yet.
/// The change log is optional: without it only a warning.
MirrorResult write_feed_mirror(const DaemonConfig& cfg, const std::string& dir);

}  // namespace smtpgate
