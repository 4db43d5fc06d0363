// The allowlist's LPM tries: one per family in each slot of the outer maps
// allow_v4 and allow_v6 (arrays of maps). Used by GateMaps only.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "cidr.hpp"
#include "fd.hpp"
#include "gate_types.hpp"
#include "smtpgate_abi.h"

namespace smtpgate {

/// A new, empty LPM trie of the inner maps' layout for `entries` prefixes.
Fd create_trie(Family family, size_t entries);

/// The trie in slot `slot` of the outer map `outer_fd`; none when the slot is empty.
Fd inner_map(int outer_fd, uint32_t slot);

/// The key size of a family's trie.
size_t trie_key_size(Family family);

/// Adds one entry to a trie (flags: BPF_NOEXIST, or BPF_EXIST to replace the
/// entry of the same prefix); false (errno set) when the kernel refuses.
bool trie_insert(int trie_fd, const TrieEntry& entry, uint64_t flags = BPF_NOEXIST);
/// Removes the entry of exactly this prefix; false (errno set) when there is none.
bool trie_delete(int trie_fd, const Cidr& prefix);
/// Inserts the entries of one family (others are skipped) in batches of
/// system calls; throws SystemError naming the first prefix not inserted.
void trie_insert_all(int trie_fd, Family family, const std::vector<TrieEntry>& entries);

/// The trie's longest match for `address` cut to `prefix_len` bits; nullopt
/// when nothing matches.
std::optional<sg_rule_ref> trie_lookup(int trie_fd, const Cidr& address, uint32_t prefix_len);

/// Every entry of a family's trie, appended to out.
void collect_trie(int trie_fd, Family family, std::vector<TrieEntry>& out);

}  // namespace smtpgate
