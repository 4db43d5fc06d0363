// The state directory (/var/lib/smtpgate): what the operator asked for, kept
// across restarts. Every file is written atomically; a file that does not parse
// is set aside and reported, never trusted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "gate_types.hpp"
#include "ruleset.hpp"

namespace smtpgate {

constexpr const char* kDefaultPinDir = "/sys/fs/bpf/smtpgate";
constexpr const char* kDefaultStateDir = "/var/lib/smtpgate";
constexpr const char* kDefaultConfigPath = "/etc/smtpgate/smtpgate.toml";

/// Where the gate keeps its pins and its state.
struct Paths {
  std::string pin_dir = kDefaultPinDir;
  std::string state_dir = kDefaultStateDir;
};

/// The format of the state directory this build reads and writes, recorded
/// in STATE_DIR/format.json. Format 1 is a directory without that file (every
/// release before the format was recorded). Raised only when a file changes
/// in a way an older build would misread.
constexpr int kStateFormat = 2;

/// Reads the state directory's format; an older one is migrated forward and
/// the new format recorded; one newer than kStateFormat throws InputError (an
/// older smtpgate must not rewrite what it cannot read). A directory that does
/// not exist yet is left alone.
void check_state_format(const std::string& state_dir);

/// A range the operator added (ranges add / import).
struct OperatorRange {
  Cidr cidr;
  RuleKind kind = RuleKind::Admit;  // Admit or Deny
  std::string comment;
  int64_t added_unix = 0;
  bool operator==(const OperatorRange&) const = default;
};

/// Run-time choices made with smtpgatectl that outlive a restart.
struct RuntimeSettings {
  std::optional<Action> action;
};

/// The state directory's files.
class StateStore {
 public:
  explicit StateStore(std::string state_dir);
  const std::string& dir() const { return dir_; }

  /// ranges.json; missing means none. A corrupt file is set aside and the
  /// error thrown (InputError naming the file and where it was moved).
  std::vector<OperatorRange> operator_ranges() const;
  void save_operator_ranges(const std::vector<OperatorRange>& ranges) const;

  /// runtime.json; missing or corrupt means defaults (corrupt is set aside).
  RuntimeSettings runtime() const;
  void save_runtime(const RuntimeSettings& s) const;

 private:
  std::string dir_;
};

}  // namespace smtpgate
