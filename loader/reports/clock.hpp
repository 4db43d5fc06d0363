// The program's timestamps as wall-clock time. It stamps with
// bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC at tick resolution.
#pragma once

#include <cstdint>
#include <string>

namespace smtpgate {

/// What to add to a CLOCK_MONOTONIC time (ns) to get Unix time (ns) now.
/// The coarse stamps are the same clock as the fine one read here; reading
/// the fine clocks keeps the offset steady.
int64_t monotonic_offset_ns();
/// A program timestamp (ns) as Unix time in ns, and as RFC 3339 UTC.
int64_t monotonic_to_unix_ns(uint64_t mono_ns);
std::string monotonic_to_wall(uint64_t mono_ns);

/// Unix time (ns) as RFC 3339 UTC with milliseconds, for events stamped
/// closer together than a second.
std::string rfc3339_ms(int64_t unix_ns);

}  // namespace smtpgate
