// GateMaps: the run-time configuration in gate_config (action, guarded
// ports, event budget), read and written without touching the publish state.
#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>

#include "bpf_info.hpp"
#include "gate_maps.hpp"
#include "gate_maps_fds.hpp"
#include "map_names.hpp"
#include "map_views.hpp"

namespace smtpgate {

GateConfig GateMaps::config() const {
  uint32_t zero = 0;
  auto owned = std::make_unique<sg_config>();
  sg_config& raw = *owned;
  if (bpf_map_lookup_elem(fds_->get(mapname::gate_config), &zero, &raw) != 0)
    throw SystemError(std::string("read ") + mapname::gate_config, errno);
  GateConfig c;
  c.action = static_cast<Action>(raw.action);
  c.ports.assign(raw.ports, raw.ports + std::min<uint32_t>(raw.nports, SG_MAX_PORTS));
  c.events_per_sec = raw.events_per_sec;
  return c;
}

void GateMaps::set_config(const GateConfig& c) {
  if (static_cast<uint32_t>(c.action) >= SG_ACTION_MAX) throw InputError("unknown action");
  if (c.ports.empty() || c.ports.size() > SG_MAX_PORTS)
    throw InputError("guarded ports: give 1 to " + std::to_string(SG_MAX_PORTS) + " ports, got " +
                     std::to_string(c.ports.size()));
  auto owned = std::make_unique<sg_config>();  // 8 KiB of port bits: not on the stack
  sg_config& raw = *owned;
  raw.action = static_cast<uint32_t>(c.action);
  raw.nports = static_cast<uint32_t>(c.ports.size());
  for (size_t i = 0; i < c.ports.size(); i++) {
    if (c.ports[i] == 0) throw InputError("guarded port 0 is not a port: use 1..65535");
    raw.ports[i] = c.ports[i];
    raw.port_bits[c.ports[i] >> 5] |= 1u << (c.ports[i] & 31);
  }
  raw.events_per_sec = c.events_per_sec;
  raw.recent_sets = map_info(fds_->get(mapname::recent_refused), mapname::recent_refused).max_entries;
  // Every field but the state (the first), which belongs to the publish.
  static_assert(offsetof(sg_config, state) == 0 && offsetof(sg_config, action) == sizeof(sg_state));
  ConfigMapping config(fds_->get(mapname::gate_config));
  std::memcpy(reinterpret_cast<char*>(config.get()) + sizeof(sg_state),
              reinterpret_cast<const char*>(&raw) + sizeof(sg_state), sizeof(sg_config) - sizeof(sg_state));
}

}  // namespace smtpgate
