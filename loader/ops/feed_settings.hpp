// One source of truth for the feed: smtpgated writes the feed settings it
// runs with (its configuration file and flags, merged) into the state
// directory at its start and at every reload, and smtpgatectl's feed
// commands take them from there while it runs, so "feed sync" asks the
// server the daemon asks, with the daemon's guards.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "config.hpp"

namespace smtpgate {

/// STATE_DIR/feed-settings.json: the running daemon's effective [feed].
constexpr const char* kFeedSettingsFile = "feed-settings.json";

/// The feed settings a daemon wrote.
struct DaemonFeedSettings {
  int pid = 0;
  int64_t written_at = 0;   // unix seconds
  std::string config_file;  // "" when it runs on flags and defaults alone
  FeedConfig feed;
  bool running = false;  // that daemon still holds the state directory
};

/// Writes cfg's feed settings (mode 0600: a proxy URL may hold a password).
void write_daemon_feed_settings(const DaemonConfig& cfg, const std::string& config_file);

/// What the daemon wrote, if any; `running` says whether it still runs.
/// Throws InputError naming the file and the fix when it does not parse.
std::optional<DaemonFeedSettings> read_daemon_feed_settings(const Paths& paths);

/// Where a feed command's settings came from, for feed status and -v.
struct FeedSettingsChoice {
  FeedConfig feed;
  std::string source;  // "smtpgated (pid N)", "FILE", or "defaults"
};

/// The feed settings a command uses: those of the smtpgated running on
/// paths, unless a configuration file is named (explicit_config); else the
/// configuration file (default_config when it exists); else the defaults.
/// The caller applies its own flags on top.
FeedSettingsChoice choose_feed_settings(const Paths& paths, const std::string& explicit_config,
                                        const std::string& default_config);

/// {"source", "url", "instance", "interval_s", "enabled"} for feed status.
nlohmann::json feed_settings_json(const FeedSettingsChoice& c);

}  // namespace smtpgate
