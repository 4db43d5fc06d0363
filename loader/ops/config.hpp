// smtpgated's configuration: /etc/smtpgate/smtpgate.toml, overridden by flags.
// Unknown keys and wrong types are errors that name the key and the file.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "feed_client.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "state.hpp"

namespace smtpgate {

struct FeedConfig {
  bool enabled = true;
  std::string instance = "Worldwide";
  std::string url = kDefaultFeedUrl;
  uint32_t interval_s = 3600;
  std::string proxy;  // empty: libcurl's environment (https_proxy, no_proxy)
  bool ipv6 = true;
  // The guards a version passes (feed.hpp's FeedPolicy holds the defaults).
  unsigned min_prefix_v4 = FeedPolicy{}.min_prefix_v4;
  unsigned min_prefix_v6 = FeedPolicy{}.min_prefix_v6;
  double max_removal_share = FeedPolicy{}.max_removal_share;
  uint32_t max_added_ranges = FeedPolicy{}.max_added_ranges;
  double max_growth_share = FeedPolicy{}.max_growth_share;
  bool force = false;
  /// Plain http:// to a host other than loopback (warned at every fetch).
  bool allow_http = false;
  /// CA certificates (PEM) for the feed's server, e.g. a mirror behind an
  /// internal CA; empty: the system store.
  std::string ca_file;
  /// Watch the other instances' port-25 sets (origin feed-other).
  bool watch_other_instances = false;
  /// Days a range Microsoft removed stays admitted (origin feed-grace).
  uint32_t removal_grace_days = 30;
};

/// Feed-gap detection (feed_gap.hpp): PTR lookups of turned-away sources.
struct FeedGapConfig {
  bool enabled = true;
  std::string resolver;              // "" : /etc/resolv.conf; else "IP[:PORT],..."
  uint32_t lookups_per_minute = 30;  // per scan
  uint32_t interval_s = 60;          // between scans
  uint32_t deadline_ms = 1500;       // one source's PTR and forward lookups together
  /// Admit a confirmed EOP host (eop_admit.hpp): "off", "address" or "24"
  /// (its /24; an IPv6 host's /64).
  std::string admit_confirmed_eop = "off";
  uint32_t admit_days = 7;  // unless SYNs are admitted from it again meanwhile
};

struct MetricsConfig {
  std::string listen = "127.0.0.1:9725";  // empty: no HTTP endpoint
  std::string textfile;                   // node_exporter textfile path; empty: none
};

struct DaemonConfig {
  std::vector<std::string> interfaces;
  XdpMode mode = XdpMode::Native;
  std::optional<Action> action;  // unset: keep the last one chosen (runtime.json), else drop
  std::vector<uint16_t> ports{25};
  Paths paths;
  bool allow_empty = false;
  /// Maps pinned by another loader (bpfman): publish, sync and serve metrics
  /// only; no load, no attach, no detach.
  bool no_attach = false;
  uint32_t max_rules = SG_DEFAULT_MAX_RULES;
  uint32_t recent_sources = SG_DEFAULT_RECENT_SOURCES;
  uint32_t table_chunks = SG_DEFAULT_TABLE_CHUNKS;
  uint32_t events_per_sec = 100;
  FeedConfig feed;
  FeedGapConfig feed_gaps;
  MetricsConfig metrics;
};

/// The daemon's configuration as one immutable value: threads share it by
/// pointer, a reload builds a new one and swaps it in (CurrentConfig), and a
/// reader keeps the whole snapshot it took for as long as it needs it.
using ConfigSnapshot = std::shared_ptr<const DaemonConfig>;

/// The snapshot in force; get() and set() may be called from any thread.
class CurrentConfig {
 public:
  explicit CurrentConfig(ConfigSnapshot cfg) : cfg_(std::move(cfg)) {}
  ConfigSnapshot get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return cfg_;
  }
  void set(ConfigSnapshot cfg) {
    std::lock_guard<std::mutex> lock(mu_);
    cfg_ = std::move(cfg);
  }

 private:
  mutable std::mutex mu_;
  ConfigSnapshot cfg_;
};

/// Reads a TOML file into cfg (keys present override cfg's values). Throws
/// InputError "FILE: key 'x': ..." on unknown keys, wrong types, bad values.
void load_config_file(const std::string& path, DaemonConfig& cfg);

/// Checks cross-field rules (ports, interfaces, shares); throws InputError.
void validate_config(const DaemonConfig& cfg);

/// The memory a configuration implies: its maps in the kernel and smtpgated
/// itself, against what this machine has.
struct MemoryBudget {
  std::vector<MapMemory> maps;  // map by map (gate_program.hpp)
  unsigned cpus = 0;            // possible CPUs: per-CPU maps hold one copy each
  uint64_t maps_loaded = 0;     // allocated when the program loads
  uint64_t maps_grow = 0;       // the allowlist's tries, at max_rules prefixes
  uint64_t daemon = 0;          // smtpgated, at max_rules ranges
  /// The three keys that size the gate, and how much of total() each sizes.
  std::vector<std::pair<std::string, uint64_t>> by_key;
  uint64_t machine = 0;  // physical memory
  uint64_t total() const { return maps_loaded + maps_grow + daemon; }
  /// What the gate may take: half the machine's memory; the rest is the
  /// mail server's and the system's.
  uint64_t limit() const { return machine / 2; }
};
MemoryBudget memory_budget(const DaemonConfig& cfg);
/// Two lines for --check-config: the totals, then the maps.
std::string describe(const MemoryBudget& b);
/// "1.5 MiB".
std::string human_bytes(uint64_t n);

/// What a reload (SIGHUP) cannot change: the pin and state directories the
/// daemon holds its locks on. Throws InputError naming the key.
void check_reload(const DaemonConfig& running, const DaemonConfig& next);

XdpMode parse_mode(std::string_view word);
std::string to_string(XdpMode m);

}  // namespace smtpgate
