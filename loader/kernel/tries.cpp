#include "tries.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "error.hpp"

namespace smtpgate {

namespace {
template <typename Key>
Key key_of(const Cidr& c, uint32_t prefix_len) {
  Key k{};
  k.prefixlen = prefix_len;
  std::memcpy(k.addr, c.bytes().data(), sizeof(k.addr));
  return k;
}

template <typename Key>
void collect(int fd, Family fam, std::vector<TrieEntry>& out) {
  Key key{}, next{};
  void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    sg_rule_ref ref{};
    if (bpf_map_lookup_elem(fd, &next, &ref) == 0) {
      TrieEntry e;
      e.prefix = Cidr::from_bytes(fam, next.addr, next.prefixlen);
      e.rule_id = ref.rule_id;
      e.kind = static_cast<RuleKind>(ref.kind);
      out.push_back(e);
    }
    key = next;
    prev = &key;
  }
}
}  // namespace

size_t trie_key_size(Family family) { return family == Family::V4 ? sizeof(sg_lpm_v4_key) : sizeof(sg_lpm_v6_key); }

Fd create_trie(Family fam, size_t entries) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  uint32_t max = static_cast<uint32_t>(std::max<size_t>(entries, 1));
  int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, fam == Family::V4 ? "sg_allow_v4" : "sg_allow_v6", trie_key_size(fam),
                          sizeof(sg_rule_ref), max, &opts);
  if (fd < 0) throw SystemError("create allowlist trie", errno);
  return Fd(fd);
}

Fd inner_map(int outer_fd, uint32_t slot) {
  uint32_t id = 0;
  if (bpf_map_lookup_elem(outer_fd, &slot, &id) != 0) return Fd();
  return Fd(bpf_map_get_fd_by_id(id));
}

bool trie_insert(int trie_fd, const TrieEntry& e) {
  sg_rule_ref ref{e.rule_id, static_cast<uint16_t>(e.kind), static_cast<uint16_t>(e.prefix.prefix_len())};
  if (e.prefix.family() == Family::V4) {
    auto k = key_of<sg_lpm_v4_key>(e.prefix, e.prefix.prefix_len());
    return bpf_map_update_elem(trie_fd, &k, &ref, BPF_NOEXIST) == 0;
  }
  auto k = key_of<sg_lpm_v6_key>(e.prefix, e.prefix.prefix_len());
  return bpf_map_update_elem(trie_fd, &k, &ref, BPF_NOEXIST) == 0;
}

std::optional<sg_rule_ref> trie_lookup(int trie_fd, const Cidr& address, uint32_t prefix_len) {
  sg_rule_ref ref{};
  int rc;
  if (address.family() == Family::V4) {
    auto k = key_of<sg_lpm_v4_key>(address, prefix_len);
    rc = bpf_map_lookup_elem(trie_fd, &k, &ref);
  } else {
    auto k = key_of<sg_lpm_v6_key>(address, prefix_len);
    rc = bpf_map_lookup_elem(trie_fd, &k, &ref);
  }
  if (rc != 0) return std::nullopt;
  return ref;
}

void collect_trie(int trie_fd, Family family, std::vector<TrieEntry>& out) {
  if (family == Family::V4)
    collect<sg_lpm_v4_key>(trie_fd, family, out);
  else
    collect<sg_lpm_v6_key>(trie_fd, family, out);
}

}  // namespace smtpgate
