// GateMaps::publish: replacing the whole allowlist atomically (see
// docs/design.md for the protocol).
#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <functional>
#include <future>
#include <system_error>
#include <utility>

#include "gate_maps.hpp"
#include "gate_maps_fds.hpp"
#include "map_names.hpp"
#include "map_views.hpp"
#include "stride_table.hpp"
#include "tries.hpp"

namespace smtpgate {

namespace {

// Refuses rule ids the maps cannot hold (before the first map changes);
// returns the number of IPv4 and IPv6 prefixes.
std::pair<size_t, size_t> count_checked(const std::vector<TrieEntry>& entries, uint32_t max_rules) {
  size_t n4 = 0, n6 = 0;
  for (const auto& e : entries) {
    if (e.rule_id == SG_RULE_DEFAULT || e.rule_id >= max_rules)
      throw InputError("rule id " + std::to_string(e.rule_id) + " for " + e.prefix.str() + " is outside 1.." +
                       std::to_string(max_rules - 1) + ": too many ranges for this gate's max_rules");
    (e.prefix.family() == Family::V4 ? n4 : n6)++;
  }
  return {n4, n6};
}

// Room in each trie for the prefixes patches add (patch.cpp): the tries are
// not preallocated, so room costs nothing until it is used.
constexpr size_t kPatchRoom = 1024;

// Refuses a prefix that appears twice. Compiled rules come sorted by prefix;
// only entries that are not get sorted (a copy) to find one.
void check_distinct(const std::vector<TrieEntry>& entries) {
  auto before = [](const TrieEntry& a, const TrieEntry& b) { return a.prefix < b.prefix; };
  const Cidr* twice = nullptr;
  std::vector<Cidr> sorted;
  if (std::is_sorted(entries.begin(), entries.end(), before)) {
    auto it = std::adjacent_find(entries.begin(), entries.end(),
                                 [](const TrieEntry& a, const TrieEntry& b) { return a.prefix == b.prefix; });
    if (it != entries.end()) twice = &it->prefix;
  } else {
    sorted.reserve(entries.size());
    for (const auto& e : entries) sorted.push_back(e.prefix);
    std::sort(sorted.begin(), sorted.end());
    if (auto it = std::adjacent_find(sorted.begin(), sorted.end()); it != sorted.end()) twice = &*it;
  }
  if (twice) throw InputError(twice->str() + " appears twice in one allowlist");
}

// New tries holding the entries, off to the side: nothing reads them yet.
std::pair<Fd, Fd> build_tries(const std::vector<TrieEntry>& entries, std::pair<size_t, size_t> counts) {
  Fd v4 = create_trie(Family::V4, counts.first + kPatchRoom);
  Fd v6 = create_trie(Family::V6, counts.second + kPatchRoom);
  trie_insert_all(v4.fd, Family::V4, entries);
  trie_insert_all(v6.fd, Family::V6, entries);
  return {std::move(v4), std::move(v6)};
}

// Runs two map-in-map operations at once and returns their errnos (0: done).
// Each returns only after an RCU grace period; run together, they wait out
// the same one.
std::pair<int, int> at_once(const std::function<int()>& a, const std::function<int()>& b) {
  std::future<int> second;
  try {
    second = std::async(std::launch::async, b);
  } catch (const std::system_error&) {
    // No thread to be had: one after the other (two grace periods), never
    // an exception between the flip and the release of the old tries.
    int first = a();
    return {first, b()};
  }
  int first = a();
  return {first, second.get()};
}

int errno_of(int rc) { return rc == 0 ? 0 : errno; }

}  // namespace

GateMaps::PublishPath GateMaps::publish(const std::vector<TrieEntry>& entries, const std::vector<TrieEntry>* current) {
  if (current && patch(entries, *current)) return PublishPath::Patch;
  auto counts = count_checked(entries, max_rules());

  ConfigMapping config(fds_->get(mapname::gate_config));
  int out4 = fds_->get(mapname::allow_v4), out6 = fds_->get(mapname::allow_v6);
  sg_state st = config.state();
  uint32_t old_slot = st.active_slot & 1;
  uint32_t new_slot = old_slot ^ 1;

  // The stride tables are compiled on a second thread while the kernel fills
  // the tries: one is this process's time, the other the kernel's.
  TableMapping prefilter(fds_->get(mapname::prefilter_v4), SG_PREFILTER_ELEMENTS);
  TableMapping summary(fds_->get(mapname::summary), SG_SUMMARY_ELEMENTS);
  TableMapping table4(fds_->get(mapname::table_v4)), table6(fds_->get(mapname::table_v6));
  auto compiled = std::async(std::launch::async, [&] {
    check_distinct(entries);
    return std::array<StrideImage, 2>{
        compile_stride_table(Family::V4, entries, table4.first_chunk_of(new_slot), table4.pool_per_slot()),
        compile_stride_table(Family::V6, entries, table6.first_chunk_of(new_slot), table6.pool_per_slot())};
  });
  std::pair<Fd, Fd> tries;
  try {
    tries = build_tries(entries, counts);
  } catch (...) {
    // A prefix twice fails the trie's fill too: the InputError that names it
    // is the one to report.
    compiled.get();
    throw;
  }
  auto& [v4, v6] = tries;
  std::array<StrideImage, 2> images = compiled.get();

  // Install the tries into the inactive slot. Each map-in-map update returns
  // only after an RCU grace period, so no program still reads that slot.
  auto [err4, err6] = at_once([&] { return errno_of(bpf_map_update_elem(out4, &new_slot, &v4.fd, BPF_ANY)); },
                              [&] { return errno_of(bpf_map_update_elem(out6, &new_slot, &v6.fd, BPF_ANY)); });
  if (err4) throw SystemError("install IPv4 allowlist", err4);
  if (err6) throw SystemError("install IPv6 allowlist", err6);

  // The tables, written in place through mmap into the slot's summary,
  // IPv4 directory and groups, IPv6 root and its half of the chunk pool.
  for (Family fam : {Family::V4, Family::V6}) {
    bool is4 = fam == Family::V4;
    TableMapping& table = is4 ? table4 : table6;
    const StrideImage& img = images[is4 ? 0 : 1];
    if (img.trie_blocks_pool)
      spdlog::warn(
          "the IPv{} stride table's chunk pool ({} per slot) is too small for this allowlist: {} "
          "block(s) are looked up in the LPM trie instead (slower); raise table_chunks",
          is4 ? 4 : 6, table.pool_per_slot(), img.trie_blocks_pool);
    table.write(new_slot, fam, img, summary, is4 ? &prefilter : nullptr);
  }

  // The compiled images are freed on a second thread while the grace periods
  // below run.
  auto freed = std::async(std::launch::async, [&images] { images = {}; });

  // The publish: one store of the state (slot and generation). A packet
  // reads it once, so it sees the old set or the new one, never a mix.
  config.set_state(sg_state{new_slot, st.generation + 1});

  // Wait out programs that read the old slot index before the flip (the
  // rewrite of the same value is a map-in-map update, hence a grace period),
  // then release the old tries, both families at once. The old slot's table
  // is left as it is: the next publish overwrites it only after its own
  // grace period.
  if (bpf_map_update_elem(out4, &new_slot, &v4.fd, BPF_ANY) != 0)
    throw SystemError("wait for readers of the old allowlist", errno);
  at_once([&] { return bpf_map_delete_elem(out4, &old_slot); }, [&] { return bpf_map_delete_elem(out6, &old_slot); });
  return PublishPath::Full;
}

}  // namespace smtpgate
