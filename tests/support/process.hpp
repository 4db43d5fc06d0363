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

}  // namespace sgtest
