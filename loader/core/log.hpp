// Logging: spdlog for smtpgate's own messages (quiet by default), and the
// noise of libbpf and libxdp routed through it only with -v.
#pragma once

#include <string>

namespace smtpgate {

/// Sets up spdlog (stderr, journald-friendly: no timestamps when under
/// systemd) and the libbpf/libxdp print hooks. verbosity: 0 warnings only,
/// 1 info, 2 debug incl. libbpf/libxdp.
void init_logging(int verbosity);

/// Collects libbpf's and libxdp's messages on this thread while alive (for a
/// one-line diagnosis when the verifier refuses the program), whatever the
/// verbosity. A nested capture collects until it ends, then the outer one
/// again.
class LibbpfCapture {
 public:
  LibbpfCapture();
  ~LibbpfCapture();
  LibbpfCapture(const LibbpfCapture&) = delete;
  LibbpfCapture& operator=(const LibbpfCapture&) = delete;
  const std::string& text() const;

 private:
  std::string text_;
  std::string* outer_;
};

}  // namespace smtpgate
