// GateMaps' open maps, shared by the files that define its methods
// (gate_maps.cpp, gate_config.cpp, allowlist.cpp, publish.cpp, counters.cpp).
#pragma once

#include <cerrno>
#include <cstdint>
#include <map>
#include <string>

#include "error.hpp"
#include "fd.hpp"
#include "gate_maps.hpp"

namespace smtpgate {

struct GateMaps::Fds {
  std::map<std::string, Fd> by_name;
  uint32_t max_rules = 0;
  /// The fd of the map `name` (mapname::...). Throws SystemError when it is not open.
  int get(const char* name) const {
    auto it = by_name.find(name);
    if (it == by_name.end() || it->second.fd < 0) throw SystemError(std::string("map ") + name + " is not open", EBADF);
    return it->second.fd;
  }
};

}  // namespace smtpgate
