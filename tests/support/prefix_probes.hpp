// Addresses worth asking an allowlist about, and the SYN that asks the
// program, shared by the tests of the stride table and of the patch.
#pragma once

#include <random>
#include <vector>

#include "gate_types.hpp"
#include "packet_builder.hpp"

namespace sgtest {

/// Each prefix's first and last address and their neighbours, and a random
/// address near it (the prefix's /16 for IPv4, its /32 for IPv6).
std::vector<smtpgate::Cidr> probes(std::mt19937_64& rng, const std::vector<smtpgate::TrieEntry>& entries);

/// A SYN to port 25 from the address (a full-length Cidr).
Packet syn_from(const smtpgate::Cidr& address);

}  // namespace sgtest
