// Errors smtpgate reports. Two kinds, because they call for different fixes:
// InputError is the operator's input (a CIDR, a file, a flag): its message names
// the input and the fix. SystemError is the machine (a syscall, a map, a file
// system): its message names the operation and the errno text.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

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

/// Outside input as a message shows it: in quotes, bytes other than printable
/// ASCII as \xNN, and cut after kShownInputBytes bytes (saying how long it
/// was), so that an error is one short line whatever the input.
constexpr size_t kShownInputBytes = 80;
std::string quote_input(std::string_view text);

/// Where text stops being one line of UTF-8 text: the offset of its first
/// control character (tab allowed), NUL, or byte that is not part of valid
/// UTF-8 (overlong forms and surrogates included); npos when there is none.
size_t bad_text_offset(std::string_view text);

}  // namespace smtpgate
