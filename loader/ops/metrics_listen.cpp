#include "metrics_listen.hpp"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>

#include <charconv>

#include "error.hpp"

namespace smtpgate {

std::string ListenAddress::str() const { return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port); }

ListenAddress parse_listen_address(std::string_view text) {
  std::string shown = quote_input(text);
  auto bad = [&](const std::string& why) {
    return InputError("metrics listen address " + shown + ": " + why +
                      "; write HOST:PORT with an IP address, e.g. 127.0.0.1:9725 or [::1]:9725");
  };
  if (text.empty() || text.size() > 64) throw bad("not an address");
  if (text.find_first_not_of("0123456789abcdefABCDEF.:[]") != std::string_view::npos)
    throw bad("the host must be an IP address, not a name");
  ListenAddress a;
  std::string_view port;
  if (text.front() == '[') {
    size_t close = text.find("]:");
    if (close == std::string_view::npos) throw bad("no port after the bracketed address");
    a.host = std::string(text.substr(1, close - 1));
    port = text.substr(close + 2);
    a.v6 = true;
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) throw bad("no port");
    a.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (a.host.find(':') != std::string::npos) throw bad("an IPv6 address goes in brackets");
  }
  in6_addr buf{};
  if (inet_pton(a.v6 ? AF_INET6 : AF_INET, a.host.c_str(), &buf) != 1)
    throw bad(std::string("the host is not an IPv") + (a.v6 ? "6" : "4") + " address");
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535)
    throw bad("the port must be 1..65535");
  a.port = static_cast<uint16_t>(p);
  // Feature 8 of civetweb.h: built with IPv6 (Debian 12's civetweb is not).
  if (a.v6 && !mg_check_feature(8))
    throw InputError("metrics listen address " + shown +
                     ": this build's HTTP server (civetweb) has no IPv6; listen on an IPv4 address, "
                     "e.g. 127.0.0.1:9725");
  return a;
}

}  // namespace smtpgate
