// The stride table: the allowlist compiled into what the XDP program reads
// before it asks the trie (layout in bpf/smtpgate_abi.h, protocol in
// docs/design.md): for IPv4 the /20 directory, the /20 groups and the /24
// entries and nodes; for IPv6 a direct-indexed multibit trie. Pure
// computation: gate_maps writes the result into the maps.
#pragma once

#include <cstdint>
#include <vector>

#include "cidr.hpp"
#include "gate_types.hpp"
#include "smtpgate_abi.h"

namespace smtpgate {

/// One allowlist slot's table for one family. IPv6: 256 root chunks and the
/// chunks below them, numbered from first_chunk. IPv4: no root; the /24
/// entries and the nodes in the chunks, the directory and the groups.
struct StrideImage {
  std::vector<sg_chunk> root;    // IPv6: 65536 entries by the first two bytes
  std::vector<sg_chunk> chunks;  // chunk first_chunk + i
  uint32_t first_chunk = 0;
  /// Blocks handed to the LPM trie because the chunk pool ran out.
  size_t trie_blocks_pool = 0;
  /// IPv6 blocks handed to the LPM trie because a prefix is longer than /64;
  /// IPv4 /24 blocks with more runs than a node holds.
  size_t trie_blocks_deep = 0;
  /// IPv4 only: SG_DIR_CHUNKS chunks of sg_dir_word (empty for IPv6).
  std::vector<sg_chunk> dir;
  /// IPv4 only: SG_GROUP_CHUNKS chunks of sg_group (empty for IPv6).
  std::vector<sg_chunk> groups;
  /// IPv4 only: set /20 blocks, set /24 blocks, nodes, pool entries used.
  size_t n20 = 0, n24 = 0, nodes = 0, pool_used = 0;
  /// SG_SUMMARY_CHUNKS chunks of bits, one per /16 block that some prefix
  /// overlaps.
  std::vector<sg_chunk> summary = std::vector<sg_chunk>(SG_SUMMARY_CHUNKS);
};

/// The leaf entry for a rule.
uint32_t leaf_entry(RuleKind kind, uint32_t rule_id);

/// Compiles the entries of one family (others are skipped) into a table whose
/// chunks are numbered first_chunk .. first_chunk + max_chunks - 1. Longest
/// prefix wins, as in the trie; entries must have distinct prefixes.
StrideImage compile_stride_table(Family family, const std::vector<TrieEntry>& entries, uint32_t first_chunk,
                                 uint32_t max_chunks);

/// Where a table of one slot and family lies, as the program reads it.
struct StrideView {
  const sg_chunk* summary;  // SG_SUMMARY_CHUNKS chunks of /16 bits
  const sg_chunk* root;     // IPv6: 256 chunks
  const sg_chunk* chunks;   // n_chunks chunks numbered from first_chunk
  uint32_t first_chunk;
  size_t n_chunks;
  const sg_chunk* dir;     // IPv4: the slot's directory, or nullptr
  const sg_chunk* groups;  // IPv4: the slot's groups, or nullptr
};

/// The entry where the program's walk stops for address (a full-length Cidr):
/// a leaf, or SG_ENTRY_TRIE.
uint32_t stride_walk(const StrideView& table, const Cidr& address);
inline uint32_t stride_walk(const StrideImage& img, const Cidr& address) {
  return stride_walk(
      StrideView{img.summary.data(), img.root.data(), img.chunks.data(), img.first_chunk, img.chunks.size(),
                 img.dir.empty() ? nullptr : img.dir.data(), img.groups.empty() ? nullptr : img.groups.data()},
      address);
}

}  // namespace smtpgate
