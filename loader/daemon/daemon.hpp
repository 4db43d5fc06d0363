// smtpgated's life: set the gate up (adopting a running one), keep it equal to
// the state directory and the feed, and leave it filtering when stopped.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "config.hpp"

namespace smtpgate {

/// Brings the gate up per cfg and runs until SIGTERM/SIGINT. SIGHUP re-reads
/// config_path (when not empty) and applies it. Returns the exit code.
int run_daemon(DaemonConfig cfg, const std::string& config_path);

/// Sets the gate up (maps pinned, config written, allowlist published,
/// interfaces attached or adopted) and returns; the piece of run_daemon that
/// does not loop. lock_wait: how long to wait for the gate lock (unset: as
/// long as it takes).
void bring_up(const DaemonConfig& cfg, std::optional<std::chrono::milliseconds> lock_wait = std::nullopt);

}  // namespace smtpgate
