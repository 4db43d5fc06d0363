// The drop log, STATE_DIR/drops.log: one JSON object per turned-away SYN, as
// `smtpgatectl drops -j` prints it, appended by the one consumer of the
// program's events ring buffer (reports/drops.hpp) and rotated to drops.log.1
// at its size cap. This file reads and follows it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace smtpgate {

/// Size at which drops.log is rotated (one older generation is kept).
constexpr size_t kDefaultDropLogBytes = 8u << 20;

/// Path of the drop log in a state directory.
std::string drop_log_path(const std::string& state_dir);
/// Path of the consumer lock in a state directory.
std::string drops_lock_path(const std::string& state_dir);

/// The records of the drop log (its rotated generation first) at or after
/// since_unix_ns, oldest first. Lines that do not parse are skipped.
std::vector<nlohmann::json> read_drop_log(const std::string& state_dir, int64_t since_unix_ns);

/// Follows the drop log across rotations. The first next() also returns the
/// records already logged at or after from_unix_ns (rotated generation
/// first); later ones return what was appended since.
class DropLogTail {
 public:
  DropLogTail(std::string state_dir, int64_t from_unix_ns);
  ~DropLogTail();
  DropLogTail(const DropLogTail&) = delete;
  DropLogTail& operator=(const DropLogTail&) = delete;
  /// Records not returned before (waits up to timeout_ms for some).
  std::vector<nlohmann::json> next(int timeout_ms);

 private:
  std::string path_;
  int64_t from_ = 0;
  int fd_ = -1;
  std::string partial_;
  std::vector<nlohmann::json> backlog_;
  void reopen_if_rotated();
};

}  // namespace smtpgate
