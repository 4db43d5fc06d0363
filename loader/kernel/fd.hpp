// An owned file descriptor.
#pragma once

#include <unistd.h>

#include <utility>

namespace smtpgate {

/// A file descriptor closed when the Fd goes; -1 holds none. Movable, not
/// copyable.
struct Fd {
  int fd = -1;

  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd = std::exchange(o.fd, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

}  // namespace smtpgate
