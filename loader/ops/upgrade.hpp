// Replacing a running gate whose maps have another layout (an upgrade or a
// downgrade) without a gap: this build's program and maps are loaded beside
// the running ones in a new pin generation (pin_generation.hpp), given the
// running gate's configuration, counters and recently-refused sources, and
// the allowlist; then each interface's program is swapped atomically, and
// only then does `live` move and the old pins go. Until the swap nothing of
// the running gate changes; a failure removes the new generation and leaves
// the running gate as it was. See docs/design.md, "Upgrades".
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gate_maps.hpp"
#include "gate_program.hpp"

namespace smtpgate {

/// A new generation being prepared beside the running gate. The caller holds
/// the GateLock for its whole life. Destroyed before switch_over() succeeded,
/// it unpins what it made; the running gate is untouched.
class NextGeneration {
 public:
  /// Loads this build's program and maps into a new generation under
  /// opts.pin_dir and carries over what the running gate's layout allows
  /// (configuration and publish counter, per-rule and packet counters, the
  /// recently-refused table, the ring buffer's counts), by field name.
  explicit NextGeneration(const ProgramOptions& opts);
  ~NextGeneration();
  NextGeneration(const NextGeneration&) = delete;
  NextGeneration& operator=(const NextGeneration&) = delete;

  /// The new generation's maps (for set_config and the publish).
  GateMaps open() const;
  /// The running gate's allowlist, when its tries are of a layout this build
  /// reads: the publish keeps its rule ids, so the carried per-rule counters
  /// stay with their ranges. nullopt: fresh ids, per-rule counters start at 0.
  const std::optional<std::vector<TrieEntry>>& running_allowlist() const { return running_allowlist_; }

  /// Swaps the program on every interface for this generation's, each swap
  /// atomic (the kernel's XDP_FLAGS_REPLACE, or libxdp's dispatcher), then
  /// makes this generation live and unpins the old one. When an interface
  /// refuses, those already swapped get their old program back by the same
  /// kind of swap and this throws (the running gate as it was). The
  /// allowlist must be published.
  void switch_over(const std::vector<std::string>& interfaces, XdpMode mode);

 private:
  ProgramOptions opts_;
  std::string old_dir_, new_dir_;
  std::optional<std::vector<TrieEntry>> running_allowlist_;
  bool committed_ = false;
};

}  // namespace smtpgate
