// GateMaps::patch: a small change to the allowlist made in place in the
// active slot, without a flip and without waiting for a grace period (see
// docs/design.md, "Patching the allowlist").
//
// The tables of the active slot send every address a changed prefix covers to
// the LPM trie, which then changes by one element update (atomic for the
// program). The changed prefixes are disjoint, so every address is affected by
// at most one change, and every packet sees its source's old rule or its new
// one. What is handed to the trie stays there until the next full publish.
#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

#include "error.hpp"
#include "gate_maps.hpp"
#include "gate_maps_fds.hpp"
#include "map_names.hpp"
#include "map_views.hpp"
#include "tries.hpp"

namespace smtpgate {

namespace {

// A patch changes at most this many entries, none shorter than these lengths
// (an IPv4 prefix overlaps at most 64 directory words, an IPv6 one a single
// root entry) ...
constexpr size_t kMaxChanges = 64;
constexpr unsigned kMinLenV4 = 8;
constexpr unsigned kMinLenV6 = 16;
// ... and leaves at most this many directory words (IPv4) and root entries
// (IPv6) of the active slot answered by the trie; past that, the full publish
// rebuilds the tables.
constexpr size_t kMaxMarkedV4 = 256;
constexpr size_t kMaxMarkedV6 = 256;

static_assert(SG_DIR_TRIE + 63u > SG_DIR_TRIE, "a marked word's rank plus its bits does not wrap");
static_assert(SG_DIR_TRIE >= SG_GROUPS * SG_GROUP_MASKS, "a marked word's rank is past the groups");

// One change: added (before null), removed (after null) or the same prefix
// with another rule id or kind.
struct Change {
  const TrieEntry* before = nullptr;
  const TrieEntry* after = nullptr;
  const TrieEntry& any() const { return after ? *after : *before; }
};

bool by_prefix(const TrieEntry* a, const TrieEntry* b) { return a->prefix < b->prefix; }

// The changes from current to entries in prefix order; nullopt when they are
// not a patch: none, too many, a prefix too short, one containing another, a
// prefix twice in entries, or a rule id out of range (the full publish
// refuses those).
std::optional<std::vector<Change>> small_change(const std::vector<TrieEntry>& entries,
                                                const std::vector<TrieEntry>& current, uint32_t max_rules) {
  // Both in prefix order: what differs lies between a common head and tail.
  size_t ne = entries.size(), nc = current.size(), head = 0, tail = 0;
  while (head < ne && head < nc && entries[head] == current[head]) head++;
  while (tail < ne - head && tail < nc - head && entries[ne - 1 - tail] == current[nc - 1 - tail]) tail++;
  if ((ne - head - tail) + (nc - head - tail) > 2 * kMaxChanges) return std::nullopt;
  std::vector<const TrieEntry*> after, before;
  for (size_t i = head; i < ne - tail; i++) after.push_back(&entries[i]);
  for (size_t i = head; i < nc - tail; i++) before.push_back(&current[i]);
  std::sort(after.begin(), after.end(), by_prefix);
  std::sort(before.begin(), before.end(), by_prefix);
  // The new entries' prefixes strictly ordered, the head's and tail's around them.
  if (!after.empty()) {
    if (head > 0 && !(entries[head - 1].prefix < after.front()->prefix)) return std::nullopt;
    if (tail > 0 && !(after.back()->prefix < entries[ne - tail].prefix)) return std::nullopt;
  }
  for (size_t i = 1; i < after.size(); i++)
    if (!(after[i - 1]->prefix < after[i]->prefix)) return std::nullopt;

  std::vector<Change> out;
  size_t a = 0, b = 0;
  while (a < after.size() || b < before.size()) {
    if (b == before.size() || (a < after.size() && after[a]->prefix < before[b]->prefix)) {
      out.push_back({nullptr, after[a++]});
    } else if (a == after.size() || before[b]->prefix < after[a]->prefix) {
      out.push_back({before[b++], nullptr});
    } else {
      if (!(*after[a] == *before[b])) out.push_back({before[b], after[a]});
      a++, b++;
    }
  }
  if (out.empty() || out.size() > kMaxChanges) return std::nullopt;
  for (size_t i = 0; i < out.size(); i++) {
    const Cidr& p = out[i].any().prefix;
    if (p.prefix_len() < (p.family() == Family::V4 ? kMinLenV4 : kMinLenV6)) return std::nullopt;
    if (out[i].after && (out[i].after->rule_id == SG_RULE_DEFAULT || out[i].after->rule_id >= max_rules))
      return std::nullopt;
    // In prefix order a prefix that contains another comes right before one
    // it contains.
    if (i > 0 && out[i - 1].any().prefix.family() == p.family() && out[i - 1].any().prefix.contains(p))
      return std::nullopt;
  }
  return out;
}

// Aligned stores seen by the program in the order they are made: x86 keeps
// stores in order (TSO), and the program does not load a word's rank before
// its bits (see SG_DIR_TRIE). Release order keeps the compiler to it too.
template <typename T>
void store(T* where, T value) {
  __atomic_store_n(where, value, __ATOMIC_RELEASE);
}

// The active slot's tables, where a patch hands prefixes to the trie.
class ActiveTables {
 public:
  ActiveTables(int prefilter_fd, int summary_fd, int table6_fd, uint32_t slot)
      : prefilter_(prefilter_fd, SG_PREFILTER_ELEMENTS, SG_DIR_INDEX(slot), SG_DIR_CHUNKS),
        summary_(summary_fd, SG_SUMMARY_ELEMENTS),
        table6_(table6_fd, SG_SLOTS * 256 + 2, slot * 256, 256),
        dir_(reinterpret_cast<sg_dir_word*>(prefilter_.element(SG_DIR_INDEX(slot)))),
        sum4_(summary_.element(SG_SUMMARY_INDEX(slot, 4))->entry),
        sum6_(summary_.element(SG_SUMMARY_INDEX(slot, 6))->entry),
        root6_(table6_.element(slot * 256)->entry) {}

  // Directory words and root entries already handed to the trie.
  size_t marked_v4() const {
    size_t n = 0;
    for (uint32_t w = 0; w < SG_DIR_WORDS; w++) n += dir_[w].rank == SG_DIR_TRIE;
    return n;
  }
  size_t marked_v6() const { return size_t(std::count(root6_, root6_ + 65536, SG_ENTRY_TRIE_PATCHED)); }

  // The directory words (IPv4) or root entries (IPv6) a prefix overlaps.
  static std::pair<uint32_t, uint32_t> words_of(const Cidr& p) {
    if (p.family() == Family::V6) {
      uint32_t r = uint32_t(p.bytes()[0]) << 8 | p.bytes()[1];
      return {r, r};
    }
    auto [first, count] = blocks(p, 20);
    return {first >> 6, (first + count - 1) >> 6};
  }
  bool marked(Family fam, uint32_t word) const {
    return fam == Family::V4 ? dir_[word].rank == SG_DIR_TRIE : root6_[word] == SG_ENTRY_TRIE_PATCHED;
  }

  // Hands every address of p to the trie: IPv4, per directory word its rank,
  // then its bits; IPv6 its root entry; then the /16 bits of the summary,
  // which the program reads first.
  void mark(const Cidr& p) {
    if (p.family() == Family::V6) {
      uint32_t r = uint32_t(p.bytes()[0]) << 8 | p.bytes()[1];
      if (root6_[r] != SG_ENTRY_TRIE_PATCHED) store(&root6_[r], SG_ENTRY_TRIE_PATCHED);
      set_bits(sum6_, r, 1);
      return;
    }
    auto [first, count] = blocks(p, 20);
    for (uint32_t w = first >> 6; w <= (first + count - 1) >> 6; w++) {
      sg_dir_word& d = dir_[w];
      if (d.rank != SG_DIR_TRIE) store(&d.rank, SG_DIR_TRIE);
      uint32_t lo = std::max(first, w * 64) - w * 64, hi = std::min(first + count, w * 64 + 64) - w * 64;
      uint64_t bits = hi - lo == 64 ? ~uint64_t(0) : ((uint64_t(1) << (hi - lo)) - 1) << lo;
      if ((d.bits & bits) != bits) store<__u64>(&d.bits, d.bits | bits);
    }
    auto [first16, count16] = blocks(p, 16);
    set_bits(sum4_, first16, count16);
  }

 private:
  // The first block of `level` bits (/20 or /16) an IPv4 prefix overlaps, and
  // how many.
  static std::pair<uint32_t, uint32_t> blocks(const Cidr& p, unsigned level) {
    unsigned len = p.prefix_len();
    return {p.v4_value() >> (32 - level), len >= level ? 1u : 1u << (level - len)};
  }
  static void set_bits(uint32_t* words, uint32_t first, uint32_t count) {
    for (uint32_t n = first; n < first + count; n++)
      if (!(words[n >> 5] & (1u << (n & 31)))) store(&words[n >> 5], words[n >> 5] | (1u << (n & 31)));
  }

  TableMapping prefilter_, summary_, table6_;
  sg_dir_word* dir_;
  uint32_t* sum4_;
  uint32_t* sum6_;
  uint32_t* root6_;
};

// True when the trie holds exactly `want` under its prefix (or, want null,
// nothing of exactly that prefix).
bool trie_holds(int trie_fd, const Cidr& prefix, const TrieEntry* want) {
  std::optional<sg_rule_ref> ref = trie_lookup(trie_fd, prefix, prefix.prefix_len());
  bool there = ref && ref->prefixlen == prefix.prefix_len();
  if (!want) return !there;
  return there && ref->rule_id == want->rule_id && ref->kind == uint16_t(want->kind);
}

}  // namespace

bool GateMaps::patch(const std::vector<TrieEntry>& entries, const std::vector<TrieEntry>& current) {
#if !defined(__x86_64__) && !defined(__i386__)
  // The order of the stores below is what the program sees only where stores
  // are not reordered (x86); elsewhere every change is a full publish.
  (void)entries;
  (void)current;
  return false;
#endif
  std::optional<std::vector<Change>> changes = small_change(entries, current, max_rules());
  if (!changes) {
    spdlog::debug("allowlist: not a small disjoint change: full publish");
    return false;
  }
  ConfigMapping config(fds_->get(mapname::gate_config));
  sg_state st = config.state();
  uint32_t slot = st.active_slot & 1;
  Fd trie4 = inner_map(fds_->get(mapname::allow_v4), slot), trie6 = inner_map(fds_->get(mapname::allow_v6), slot);
  if (st.generation == 0 || trie4.fd < 0 || trie6.fd < 0) return false;
  auto trie_of = [&](const Cidr& p) { return p.family() == Family::V4 ? trie4.fd : trie6.fd; };
  // `current` must be what the trie holds where the change is.
  for (const Change& c : *changes)
    if (!trie_holds(trie_of(c.any().prefix), c.any().prefix, c.before)) {
      spdlog::debug("allowlist: the active trie does not hold what the patch expects at {}: full publish",
                    c.any().prefix.str());
      return false;
    }

  ActiveTables tables(fds_->get(mapname::prefilter_v4), fds_->get(mapname::summary), fds_->get(mapname::table_v6),
                      slot);
  std::set<std::pair<Family, uint32_t>> fresh;
  for (const Change& c : *changes) {
    Family fam = c.any().prefix.family();
    auto [lo, hi] = ActiveTables::words_of(c.any().prefix);
    for (uint32_t w = lo; w <= hi; w++)
      if (!tables.marked(fam, w)) fresh.insert({fam, w});
  }
  size_t fresh4 = size_t(std::count_if(fresh.begin(), fresh.end(), [](auto& f) { return f.first == Family::V4; }));
  size_t marked4 = tables.marked_v4() + fresh4, marked6 = tables.marked_v6() + fresh.size() - fresh4;
  if (marked4 > kMaxMarkedV4 || marked6 > kMaxMarkedV6) {
    spdlog::debug("allowlist: {} IPv4 words and {} IPv6 roots would ask the trie: full publish", marked4, marked6);
    return false;
  }

  // Every changed prefix is handed to the trie first: the trie still holds
  // the old set, so each mark is exact, and a process killed part-way leaves
  // marks and whole trie changes, never a table that answers for a range the
  // trie has changed. Then the trie: removed first (their room serves the
  // added), then changed, then added.
  for (const Change& c : *changes) tables.mark(c.any().prefix);
  // A kernel refusal part-way undoes the trie changes already made, newest
  // first, so that the running allowlist stays the one the caller's state
  // says (the caller then tries the full publish); the marks stay, exact.
  std::vector<const Change*> done;
  auto failed = [&](const char* what, const Cidr& p) {
    int err = errno;
    bool undone = true;
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      const Change& c = **it;
      int fd = trie_of(c.any().prefix);
      undone &=
          !c.before ? trie_delete(fd, c.after->prefix) : trie_insert(fd, *c.before, c.after ? BPF_EXIST : BPF_NOEXIST);
    }
    if (!undone) {
      // What the trie holds is neither set: a new generation, so that no
      // reader trusts what it cached of the old one.
      config.set_state(sg_state{slot, st.generation + 1});
      spdlog::error("allowlist: {} {} in place failed ({}) and the changes made could not all be undone: full publish",
                    what, p.str(), std::strerror(err));
    } else {
      spdlog::info("allowlist: {} {} in place failed ({}): undone, full publish", what, p.str(), std::strerror(err));
    }
    return false;
  };
  for (const Change& c : *changes)
    if (!c.after) {
      if (!trie_delete(trie_of(c.before->prefix), c.before->prefix)) return failed("removing", c.before->prefix);
      done.push_back(&c);
    }
  for (const Change& c : *changes)
    if (c.after && c.before) {
      if (!trie_insert(trie_of(c.after->prefix), *c.after, BPF_EXIST)) return failed("changing", c.after->prefix);
      done.push_back(&c);
    }
  for (const Change& c : *changes)
    if (!c.before) {
      if (!trie_insert(trie_of(c.after->prefix), *c.after, BPF_NOEXIST)) return failed("adding", c.after->prefix);
      done.push_back(&c);
    }
  // The same slot, the next generation: one store.
  config.set_state(sg_state{slot, st.generation + 1});
  spdlog::debug(
      "allowlist: {} change(s) patched into slot {} (generation {}); {} IPv4 words, {} IPv6 roots ask the trie",
      changes->size(), slot, st.generation + 1, marked4, marked6);
  return true;
}

}  // namespace smtpgate
