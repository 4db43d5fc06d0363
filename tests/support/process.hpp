// Processes run by the tests in the test's own network namespace: run one to
// its end, or keep one running and read its output line by line (drops
// --follow). Children are killed and reaped on destruction.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "netns.hpp"

namespace sgtest {

/// Runs argv here and waits for it.
ProcResult run_here(const std::vector<std::string>& argv);

/// A running process whose stdout is read line by line. SIGTERM (then
/// SIGKILL) and reaped on destruction.
class LineReader {
 public:
  explicit LineReader(const std::vector<std::string>& argv);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  /// The next whole line (without '\n'), or "" after timeout_ms or at EOF.
  std::string line(int timeout_ms);

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
};

/// A system user of the test's own (no home, no login shell), made now and
/// removed on destruction: a local user who is not root, attacking what the
/// gate keeps on disk.
class ThrowawayUser {
 public:
  ThrowawayUser();
  ~ThrowawayUser();
  ThrowawayUser(const ThrowawayUser&) = delete;
  ThrowawayUser& operator=(const ThrowawayUser&) = delete;
  const std::string& name() const { return name_; }
  uid_t uid() const { return uid_; }
  /// argv run as this user: its uid and gid, no other group, no capability.
  std::vector<std::string> as(const std::vector<std::string>& argv) const;

 private:
  std::string name_;
  uid_t uid_ = 0;
};

}  // namespace sgtest
