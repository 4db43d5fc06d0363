// GateMaps::publish: replacing the whole allowlist atomically (see
// docs/design.md for the protocol).
#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "gate_maps.hpp"
#include "gate_maps_fds.hpp"
#include "map_names.hpp"
#include "map_views.hpp"
#include "stride_table.hpp"
#include "tries.hpp"

namespace smtpgate {

namespace {

// Refuses entries the maps cannot hold (before the first map changes);
// returns the number of IPv4 and IPv6 prefixes.
std::pair<size_t, size_t> count_checked(const std::vector<TrieEntry>& entries, uint32_t max_rules) {
  std::vector<Cidr> prefixes;
  prefixes.reserve(entries.size());
  size_t n4 = 0, n6 = 0;
  for (const auto& e : entries) {
    if (e.rule_id == SG_RULE_DEFAULT || e.rule_id >= max_rules)
      throw InputError("rule id " + std::to_string(e.rule_id) + " for " + e.prefix.str() + " is outside 1.." +
                       std::to_string(max_rules - 1) + ": too many ranges for this gate's max_rules");
    prefixes.push_back(e.prefix);
    (e.prefix.family() == Family::V4 ? n4 : n6)++;
  }
  std::sort(prefixes.begin(), prefixes.end());
  if (auto twice = std::adjacent_find(prefixes.begin(), prefixes.end()); twice != prefixes.end())
    throw InputError(twice->str() + " appears twice in one allowlist");
  return {n4, n6};
}

// Room in each trie for the prefixes patches add (patch.cpp): the tries are
// not preallocated, so room costs nothing until it is used.
constexpr size_t kPatchRoom = 1024;

// New tries holding the entries, off to the side: nothing reads them yet.
std::pair<Fd, Fd> build_tries(const std::vector<TrieEntry>& entries, std::pair<size_t, size_t> counts) {
  Fd v4 = create_trie(Family::V4, counts.first + kPatchRoom);
  Fd v6 = create_trie(Family::V6, counts.second + kPatchRoom);
  trie_insert_all(v4.fd, Family::V4, entries);
  trie_insert_all(v6.fd, Family::V6, entries);
  return {std::move(v4), std::move(v6)};
}

}  // namespace

GateMaps::PublishPath GateMaps::publish(const std::vector<TrieEntry>& entries, const std::vector<TrieEntry>* current) {
  if (current && patch(entries, *current)) return PublishPath::Patch;
  auto [v4, v6] = build_tries(entries, count_checked(entries, max_rules()));

  ConfigMapping config(fds_->get(mapname::gate_config));
  int out4 = fds_->get(mapname::allow_v4), out6 = fds_->get(mapname::allow_v6);
  sg_state st = config.state();
  uint32_t old_slot = st.active_slot & 1;
  uint32_t new_slot = old_slot ^ 1;

  // Install the tries into the inactive slot. Each map-in-map update returns
  // only after an RCU grace period, so no program still reads that slot.
  if (bpf_map_update_elem(out4, &new_slot, &v4.fd, BPF_ANY) != 0) throw SystemError("install IPv4 allowlist", errno);
  if (bpf_map_update_elem(out6, &new_slot, &v6.fd, BPF_ANY) != 0) throw SystemError("install IPv6 allowlist", errno);

  write_stride_tables(new_slot, entries);

  // The publish: one store of the state (slot and generation). A packet
  // reads it once, so it sees the old set or the new one, never a mix.
  config.set_state(sg_state{new_slot, st.generation + 1});

  // Wait out programs that read the old slot index before the flip (the
  // rewrite of the same value is a map-in-map update, hence a grace period),
  // then release the old tries. The old slot's table is left as it is: the
  // next publish overwrites it only after its own grace period.
  if (bpf_map_update_elem(out4, &new_slot, &v4.fd, BPF_ANY) != 0)
    throw SystemError("wait for readers of the old allowlist", errno);
  bpf_map_delete_elem(out4, &old_slot);
  bpf_map_delete_elem(out6, &old_slot);
  return PublishPath::Full;
}

void GateMaps::write_stride_tables(uint32_t slot, const std::vector<TrieEntry>& entries) {
  // Compiled into the slot's root and its half of the chunk pool, written in
  // place through mmap.
  TableMapping prefilter(fds_->get(mapname::prefilter_v4), SG_PREFILTER_ELEMENTS);
  TableMapping summary(fds_->get(mapname::summary), SG_SUMMARY_ELEMENTS);
  for (Family fam : {Family::V4, Family::V6}) {
    TableMapping table(fds_->get(fam == Family::V4 ? mapname::table_v4 : mapname::table_v6));
    StrideImage img = compile_stride_table(fam, entries, table.first_chunk_of(slot), table.pool_per_slot());
    if (img.trie_blocks_pool)
      spdlog::warn(
          "the IPv{} stride table's chunk pool ({} per slot) is too small for this allowlist: {} "
          "block(s) are looked up in the LPM trie instead (slower); raise table_chunks",
          fam == Family::V4 ? 4 : 6, table.pool_per_slot(), img.trie_blocks_pool);
    table.write(slot, fam, img, summary, fam == Family::V4 ? &prefilter : nullptr);
  }
}

}  // namespace smtpgate
