#include "clock.hpp"

#include <time.h>

#include <fmt/format.h>

#include "feed_sync.hpp"

namespace smtpgate {

int64_t monotonic_offset_ns() {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  return (int64_t(real.tv_sec) - int64_t(mono.tv_sec)) * 1000000000 + (real.tv_nsec - mono.tv_nsec);
}

int64_t monotonic_to_unix_ns(uint64_t mono_ns) { return int64_t(mono_ns) + monotonic_offset_ns(); }

std::string monotonic_to_wall(uint64_t mono_ns) { return rfc3339_utc(monotonic_to_unix_ns(mono_ns) / 1000000000); }

std::string rfc3339_ms(int64_t unix_ns) {
  std::string seconds = rfc3339_utc(unix_ns / 1000000000);
  seconds.pop_back();  // the 'Z', which follows the milliseconds
  return fmt::format("{}.{:03d}Z", seconds, int((unix_ns / 1000000) % 1000));
}

}  // namespace smtpgate
