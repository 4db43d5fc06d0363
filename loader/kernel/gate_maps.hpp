// GateMaps, userspace's view of the gate's maps (layout: bpf/smtpgate_abi.h):
// publish an allowlist atomically, read and write the run-time config, read the
// counters and the recently-refused table. See docs/design.md for the protocol.
// Its methods are defined by job: gate_maps.cpp (opening, layout checks),
// gate_config.cpp, allowlist.cpp (reads), publish.cpp, patch.cpp, counters.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "gate_types.hpp"
#include "map_names.hpp"
#include "smtpgate_abi.h"

struct bpf_object;

namespace smtpgate {

/// The gate's configuration map: its pin is the mark by which a pin
/// directory, or a program, is a gate's.
inline constexpr const char* kConfigMapName = mapname::gate_config;

/// A recently refused source, from the recently-refused table (merged over CPUs).
struct RecentSource {
  Cidr address;
  uint64_t count = 0;
  uint64_t first_seen_ns = 0;  // CLOCK_MONOTONIC, coarse
  uint64_t last_seen_ns = 0;
  uint32_t rule_id = 0;
  uint16_t last_port = 0;
  uint32_t last_verdict = 0;
};

/// File descriptors of smtpgate's maps (owned, closed on destruction).
/// Not copyable; movable.
class GateMaps {
 public:
  /// Borrows the maps of a loaded object (fds are duplicated).
  static GateMaps from_object(bpf_object* obj);
  /// Opens the maps pinned under pin_dir. Throws SystemError when no gate is
  /// pinned there, InputError when another version of smtpgate pinned it.
  static GateMaps open_pinned(const std::string& pin_dir);
  /// Opens the maps pinned in one generation directory of pin_dir (see
  /// pin_generation.hpp), with open_pinned's checks.
  static GateMaps open_generation(const std::string& maps_dir, const std::string& pin_dir);
  /// The names of the gate's maps, as pinned.
  static std::vector<std::string> map_names();
  /// The allowlist in one slot of the maps pinned in maps_dir, read without
  /// the other maps' layout checks; nullopt when maps_dir has no allow_v4 or
  /// allow_v6 pinned, or their tries are of another layout than this build's.
  static std::optional<std::vector<TrieEntry>> allowlist_at(const std::string& maps_dir, uint32_t slot);
  /// The way out of pins another version of smtpgate left in pin_dir (one
  /// clause, for the end of an error message).
  static std::string other_version_fix(const std::string& pin_dir);
  /// True when pin_dir holds smtpgate's pinned maps.
  static bool pinned_at(const std::string& pin_dir);

  GateMaps(GateMaps&&) noexcept;
  GateMaps& operator=(GateMaps&&) noexcept;
  GateMaps(const GateMaps&) = delete;
  GateMaps& operator=(const GateMaps&) = delete;
  ~GateMaps();

  /// How publish changed the allowlist.
  enum class PublishPath { Full, Patch };
  /// Replaces the whole allowlist atomically: builds fresh tries and stride
  /// tables in the inactive slot, flips the active slot with one store of the
  /// state word (through mmap), waits until no program still reads the old
  /// slot, then releases its tries. Entries must have distinct prefixes and
  /// rule ids 1..max_rules()-1; throws InputError before anything changes if
  /// they do not.
  /// With `current` (the allowlist the active slot holds, which the entries
  /// were compiled against; both in prefix order), a small change is patched
  /// into the active slot instead, each packet seeing its source's old rule
  /// or its new one (patch.cpp; docs/design.md, "Patching the allowlist").
  PublishPath publish(const std::vector<TrieEntry>& entries, const std::vector<TrieEntry>* current = nullptr);
  /// The allowlist the program reads now, sorted by prefix.
  std::vector<TrieEntry> active_entries() const;
  /// Longest-prefix match of an address in the active allowlist, as the program
  /// does it.
  std::optional<TrieEntry> match(const Cidr& address) const;
  /// Every prefix of the active allowlist that holds the address, longest
  /// first: at most one trie lookup per prefix length, never a walk of the
  /// whole allowlist. All read from one slot; `generation`, when given, is
  /// set to that slot's publish counter.
  std::vector<TrieEntry> containing(const Cidr& address, uint32_t* generation = nullptr) const;
  /// The stride table's answer for an address (full-length Cidr) in the
  /// active slot: a leaf entry (see leaf_entry) or SG_ENTRY_TRIE.
  uint32_t table_entry(const Cidr& address) const;
  /// True once an allowlist has been published.
  bool has_allowlist() const;
  /// Publish counter (bumped by every publish).
  uint32_t generation() const;
  /// The allowlist slot the program reads (0 or 1).
  uint32_t active_slot() const;

  GateConfig config() const;
  /// Validates (ports 1..65535, at most SG_MAX_PORTS, action known) and writes.
  void set_config(const GateConfig& cfg);

  uint32_t max_rules() const;
  /// Per-rule counters summed over CPUs.
  sg_rule_counters rule_counters(uint32_t rule_id) const;
  /// Zeroes one rule's counters (before a freed id is reused).
  void reset_rule_counters(uint32_t rule_id);
  std::array<sg_counter, SG_VERDICT_MAX> verdict_counters() const;
  std::array<sg_counter, SG_REASON_MAX> reason_counters() const;
  /// The recently-refused table, most recent first.
  std::vector<RecentSource> recent_refused() const;
  /// Events the ring buffer's rate limit held back, summed over CPUs.
  uint64_t events_suppressed() const;
  /// Default-rule refusals not recorded in the recently-refused table (its
  /// per-CPU budget for them was spent: a scan), summed over CPUs.
  uint64_t recent_skipped() const;
  /// The same for range refusals (deny, watch): their own per-CPU budget
  /// was spent, as under a flood spoofed from a range.
  uint64_t range_skipped() const;
  /// The ring buffer's fd, for ring_buffer__new.
  int events_fd() const;

 private:
  GateMaps() = default;
  /// publish's small path: true when the change from current to entries was
  /// patched into the active slot, false when the full publish must do it.
  bool patch(const std::vector<TrieEntry>& entries, const std::vector<TrieEntry>& current);
  struct Fds;  // gate_maps_fds.hpp
  Fds* fds_ = nullptr;
};

}  // namespace smtpgate
