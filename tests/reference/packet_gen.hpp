// Seeded generator for the differential test: allowlists with nested prefixes
// of every length, gate settings, and packets built to reach every branch of
// the packet path (stacks of 0 to 10 VLAN tags, ethertypes that only look like
// tags, group MACs, special-purpose addresses, IPv4 options, IPv6 extension chains past the
// walk limit, fragments, odd flags, other protocols and ports), then mutated
// (truncated, bytes flipped, padded). Same seed, same sequence.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "reference_gate.hpp"

namespace sgref {

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}
  /// A fresh gate setup: refusal, 1..8 guarded ports, a few clusters of
  /// nested prefixes per family (/0 to /32, /0 to /128) of random kinds.
  GateSetup setup();
  /// One frame (at least an Ethernet header long, as BPF_PROG_TEST_RUN
  /// requires), sources mostly in, at the edges of, or just outside the
  /// setup's prefixes.
  std::vector<uint8_t> packet(const GateSetup& s);

 private:
  uint64_t below(uint64_t n) { return n ? rng_() % n : 0; }
  bool chance(unsigned percent) { return below(100) < percent; }
  std::array<uint8_t, 16> source(const GateSetup& s, int family);
  std::vector<uint8_t> tcp_segment(const GateSetup& s, unsigned ip_payload_cut);
  std::vector<uint8_t> l4(const GateSetup& s, uint8_t proto);

  std::mt19937_64 rng_;
};

}  // namespace sgref
