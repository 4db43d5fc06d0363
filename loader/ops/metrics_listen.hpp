// The address the metrics are served on, as the configuration names it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace smtpgate {

/// Where metrics are served: an IP address literal and a port.
struct ListenAddress {
  std::string host;  // "127.0.0.1", "::1"
  uint16_t port = 0;
  bool v6 = false;
  /// "127.0.0.1:9725", "[::1]:9725".
  std::string str() const;
};

/// Parses HOST:PORT or [V6]:PORT strictly: the host an IP address literal
/// (never a name), the port 1..65535 in plain digits. Throws InputError
/// naming the text and the fix; also when this build's HTTP server cannot
/// serve the address family.
ListenAddress parse_listen_address(std::string_view text);

}  // namespace smtpgate
