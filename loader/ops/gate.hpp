// Changes to the gate, as smtpgatectl and smtpgated make them: each one takes
// the pin-dir lock, validates everything, reads the state once, compiles the
// new desired set in memory, writes the state directory, then publishes that
// set to the pinned maps (GateChange). Bad input changes nothing.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "desired_set.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "state.hpp"

namespace smtpgate {

/// The lock every process that changes the gate holds (flock of the pin dir,
/// created, with bpffs mounted, if needed). Refuses a state directory other
/// users could write into (check_private_dir) before anything changes. Never
/// held across network I/O.
class GateLock {
 public:
  /// wait: give up after that long (SystemError) rather than block.
  explicit GateLock(const Paths& paths, std::optional<std::chrono::milliseconds> wait = std::nullopt);

 private:
  FileLock lock_;
};

/// smtpgated's own lock, held for its whole life: one daemon per pin
/// directory and per state directory. Two flocks that smtpgatectl never
/// takes, so a running daemon blocks no change: PIN_DIR/daemon_lock (a
/// directory: bpffs holds no regular files; it follows the pins whatever
/// path or mount reaches them) and STATE_DIR/daemon.lock.
class DaemonLock {
 public:
  /// Takes both without waiting; throws InputError naming the daemon that
  /// holds either (its pid) and what to do.
  explicit DaemonLock(const Paths& paths);

 private:
  FileLock pins_, state_;
};

/// What a publish left in the maps.
struct PublishResult {
  size_t entries = 0;
  uint32_t generation = 0;
};

/// Compiles desired ranges against what the maps hold now (or, when given,
/// `current`: the allowlist of the gate these maps replace, whose rule ids
/// are kept) and publishes them (fresh rule ids get zeroed counters first).
/// The caller holds the GateLock.
PublishResult publish_desired(GateMaps& maps, const std::vector<DesiredRange>& desired,
                              const std::optional<std::vector<TrieEntry>>& current = std::nullopt);

/// One change to the gate, made under the caller's GateLock: the state read
/// once (before()), the pinned maps opened once (when a gate is pinned). The
/// caller edits a copy of before() in memory and commits it: its desired
/// set is compiled once, the state files are written, and that same
/// compiled set is published.
class GateChange {
 public:
  explicit GateChange(const Paths& paths);

  /// The state as read when the change began.
  const DesiredInputs& before() const { return before_; }
  /// True when a gate is pinned (the change reaches its maps).
  bool pinned() const { return maps_.has_value(); }

  /// Compiles next's desired set (refused, e.g. too many ranges for
  /// max_rules: nothing written), runs write, publishes the compiled set;
  /// when the publish throws, runs restore (the state files as they were)
  /// and rethrows. Without a pinned gate only write runs.
  void commit(const DesiredInputs& next, const std::function<void()>& write, const std::function<void()>& restore);
  /// Publishes next's desired set (compiled once) without writing anything.
  /// No-op without a pinned gate, or when this change already published the
  /// same ranges and kinds (all the maps hold of them).
  void publish(const DesiredInputs& next);

 private:
  std::vector<DesiredRange> desired(const DesiredInputs& next) const;
  std::optional<CompiledRules> compile(const std::vector<DesiredRange>& desired);
  void publish_compiled(const CompiledRules& compiled, std::vector<DesiredRange> desired);

  DesiredInputs before_;
  std::optional<GateMaps> maps_;
  std::optional<std::vector<DesiredRange>> published_;  // what this change last published
  std::vector<TrieEntry> compiled_against_;             // the maps' allowlist compile() read
};

/// Re-publishes the state directory's ranges if a gate is pinned. Returns
/// false when no gate is pinned (the state alone was the change). Caller holds
/// the lock.
bool republish_if_pinned(const Paths& paths);

/// ranges add: admit (or deny) a range. Refuses special-purpose space unless
/// allow_reserved; re-adding an existing range updates its comment.
void add_range(const Paths& paths, const OperatorRange& range, bool allow_reserved);
/// ranges del: removes an operator range. Throws InputError naming the range
/// when it is not an operator range (feed ranges change through the feed).
void del_range(const Paths& paths, const Cidr& cidr);
/// ranges import: adds every range of a file (one CIDR per line, '#'
/// comments). All or nothing: one bad line and nothing changes. Returns how
/// many ranges were new.
size_t import_ranges(const Paths& paths, const std::string& file, RuleKind kind, bool allow_reserved);
/// action: sets the verdict for refused sources now and for later starts.
void set_action(const Paths& paths, Action action);

}  // namespace smtpgate
