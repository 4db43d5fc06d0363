// Errors smtpgate reports. Two kinds, because they call for different fixes:
// InputError is the operator's input (a CIDR, a file, a flag): its message names
// the input and the fix. SystemError is the machine (a syscall, a map, a file
// system): its message names the operation and the errno text.
#pragma once

#include <stdexcept>
#include <string>

namespace smtpgate {

/// Bad input from the operator or a feed; message is one actionable line.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A failure of the system underneath (syscall, BPF, file system).
class SystemError : public std::runtime_error {
 public:
  /// Builds "WHAT: strerror(err)".
  SystemError(const std::string& what, int err);
  int error_code() const { return err_; }

 private:
  int err_;
};

}  // namespace smtpgate
