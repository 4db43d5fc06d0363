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

bool trie_insert(int trie_fd, const TrieEntry& e, uint64_t flags) {
  sg_rule_ref ref{e.rule_id, static_cast<uint16_t>(e.kind), static_cast<uint16_t>(e.prefix.prefix_len())};
  if (e.prefix.family() == Family::V4) {
    auto k = key_of<sg_lpm_v4_key>(e.prefix, e.prefix.prefix_len());
    return bpf_map_update_elem(trie_fd, &k, &ref, flags) == 0;
  }
  auto k = key_of<sg_lpm_v6_key>(e.prefix, e.prefix.prefix_len());
  return bpf_map_update_elem(trie_fd, &k, &ref, flags) == 0;
}

bool trie_delete(int trie_fd, const Cidr& prefix) {
  if (prefix.family() == Family::V4) {
    auto k = key_of<sg_lpm_v4_key>(prefix, prefix.prefix_len());
    return bpf_map_delete_elem(trie_fd, &k) == 0;
  }
  auto k = key_of<sg_lpm_v6_key>(prefix, prefix.prefix_len());
  return bpf_map_delete_elem(trie_fd, &k) == 0;
}

namespace {
template <typename Key>
void insert_all(int fd, Family fam, const std::vector<TrieEntry>& entries) {
  constexpr size_t kBatch = 4096;
  std::vector<Key> keys;
  std::vector<sg_rule_ref> values;
  std::vector<const TrieEntry*> pending;
  auto flush = [&] {
    uint32_t count = uint32_t(keys.size());
    // BPF_ANY: batches take no other flag; the trie is new and the entries
    // distinct (publish checked).
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    if (count && bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts) != 0) {
      int err = errno;
      // Kernels without batches for tries: one element at a time.
      if (err == EOPNOTSUPP || err == 524 /* ENOTSUPP */) {
        for (const TrieEntry* e : pending)
          if (!trie_insert(fd, *e)) throw SystemError("insert " + e->prefix.str() + " into the new allowlist", errno);
      } else {
        const TrieEntry* bad = pending[std::min<size_t>(count, pending.size() - 1)];
        throw SystemError("insert " + bad->prefix.str() + " into the new allowlist", err);
      }
    }
    keys.clear();
    values.clear();
    pending.clear();
  };
  for (const auto& e : entries) {
    if (e.prefix.family() != fam) continue;
    keys.push_back(key_of<Key>(e.prefix, e.prefix.prefix_len()));
    values.push_back(
        sg_rule_ref{e.rule_id, static_cast<uint16_t>(e.kind), static_cast<uint16_t>(e.prefix.prefix_len())});
    pending.push_back(&e);
    if (keys.size() == kBatch) flush();
  }
  flush();
}
}  // namespace

void trie_insert_all(int trie_fd, Family family, const std::vector<TrieEntry>& entries) {
  if (family == Family::V4)
    insert_all<sg_lpm_v4_key>(trie_fd, family, entries);
  else
    insert_all<sg_lpm_v6_key>(trie_fd, family, entries);
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
