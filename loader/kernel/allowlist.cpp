// GateMaps: reading the allowlist the program reads (the active slot's
// tries and stride tables) and its publish state.
#include <bpf/bpf.h>

#include <algorithm>

#include "bpf_info.hpp"
#include "gate_maps.hpp"
#include "gate_maps_fds.hpp"
#include "map_names.hpp"
#include "map_views.hpp"
#include "tries.hpp"

namespace smtpgate {

namespace {
const char* outer_of(Family fam) { return fam == Family::V4 ? mapname::allow_v4 : mapname::allow_v6; }

void sort_by_prefix(std::vector<TrieEntry>& entries) {
  std::sort(entries.begin(), entries.end(), [](const TrieEntry& a, const TrieEntry& b) { return a.prefix < b.prefix; });
}
}  // namespace

std::optional<std::vector<TrieEntry>> GateMaps::allowlist_at(const std::string& maps_dir, uint32_t slot) {
  std::vector<TrieEntry> out;
  for (Family fam : {Family::V4, Family::V6}) {
    Fd outer(bpf_obj_get((maps_dir + "/" + outer_of(fam)).c_str()));
    if (outer.fd < 0) return std::nullopt;
    Fd trie = inner_map(outer.fd, slot & 1);
    if (trie.fd < 0) continue;
    auto info = try_map_info(trie.fd);
    if (!info || info->type != BPF_MAP_TYPE_LPM_TRIE || info->key_size != trie_key_size(fam) ||
        info->value_size != sizeof(sg_rule_ref))
      return std::nullopt;
    collect_trie(trie.fd, fam, out);
  }
  sort_by_prefix(out);
  return out;
}

bool GateMaps::has_allowlist() const { return read_state(fds_->get(mapname::gate_config)).generation != 0; }

uint32_t GateMaps::generation() const { return read_state(fds_->get(mapname::gate_config)).generation; }

uint32_t GateMaps::active_slot() const { return read_state(fds_->get(mapname::gate_config)).active_slot & 1; }

std::vector<TrieEntry> GateMaps::active_entries() const {
  uint32_t slot = active_slot();
  std::vector<TrieEntry> out;
  for (Family fam : {Family::V4, Family::V6})
    if (Fd trie = inner_map(fds_->get(outer_of(fam)), slot); trie.fd >= 0) collect_trie(trie.fd, fam, out);
  sort_by_prefix(out);
  return out;
}

std::optional<TrieEntry> GateMaps::match(const Cidr& address) const {
  std::vector<TrieEntry> holding = containing(address);
  if (holding.empty()) return std::nullopt;
  return holding.front();
}

std::vector<TrieEntry> GateMaps::containing(const Cidr& address, uint32_t* generation) const {
  sg_state st = read_state(fds_->get(mapname::gate_config));
  if (generation) *generation = st.generation;
  std::vector<TrieEntry> out;
  Fd trie = inner_map(fds_->get(outer_of(address.family())), st.active_slot & 1);
  if (trie.fd < 0) return out;
  // A lookup key's prefix length caps the match: asking again one bit
  // shorter than the last answer finds the next enclosing prefix.
  int len = int(address.max_len());
  while (len >= 0) {
    std::optional<sg_rule_ref> ref = trie_lookup(trie.fd, address, uint32_t(len));
    if (!ref || int(ref->prefixlen) > len) break;
    out.push_back(TrieEntry{Cidr::from_bytes(address.family(), address.bytes().data(), ref->prefixlen), ref->rule_id,
                            static_cast<RuleKind>(ref->kind)});
    len = int(ref->prefixlen) - 1;
  }
  return out;
}

uint32_t GateMaps::table_entry(const Cidr& address) const {
  uint32_t slot = active_slot();
  bool v4 = address.family() == Family::V4;
  TableMapping table(fds_->get(v4 ? mapname::table_v4 : mapname::table_v6));
  TableMapping summary(fds_->get(mapname::summary), SG_SUMMARY_ELEMENTS);
  if (!v4) return table.walk(slot, address, summary, nullptr);
  TableMapping prefilter(fds_->get(mapname::prefilter_v4), SG_PREFILTER_ELEMENTS);
  return table.walk(slot, address, summary, &prefilter);
}

}  // namespace smtpgate
