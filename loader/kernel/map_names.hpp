// The names of the gate's shared maps, written once: as bpf/smtpgate.bpf.c
// defines them, as they are pinned, and as the generated skeleton
// (struct smtpgate_bpf's `maps`) names its members. gate_program.cpp checks
// at compile time that the skeleton has every one.
#pragma once

/// X(name) for every map the program copies share through the pin directory.
#define SG_SHARED_MAPS(X) \
  X(gate_config)          \
  X(allow_v4)             \
  X(allow_v6)             \
  X(table_v4)             \
  X(table_v6)             \
  X(prefilter_v4)         \
  X(summary)              \
  X(rule_counters)        \
  X(packet_counters)      \
  X(recent_refused)       \
  X(events)               \
  X(cpu_state)

namespace smtpgate::mapname {

#define SG_MAP_NAME(m) inline constexpr const char* m = #m;
SG_SHARED_MAPS(SG_MAP_NAME)
#undef SG_MAP_NAME

/// Every shared map, in the order above.
#define SG_MAP_REF(m) m,
inline constexpr const char* kAll[] = {SG_SHARED_MAPS(SG_MAP_REF)};
#undef SG_MAP_REF

}  // namespace smtpgate::mapname
