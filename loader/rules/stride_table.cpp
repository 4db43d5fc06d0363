#include "stride_table.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace smtpgate {

namespace {

unsigned levels_of(Family) { return SG_TABLE_V6_LEVELS; }

// Bit n of a bitmap stored in chunks, as the program indexes it (the summary).
void set_bit(std::vector<sg_chunk>& bits, uint32_t n) {
  bits[n / SG_SUMMARY_BITS_PER_CHUNK].entry[(n >> 5) % SG_CHUNK_ENTRIES] |= 1u << (n & 31);
}
bool test_bit(const sg_chunk* bits, uint32_t n) {
  return bits[n / SG_SUMMARY_BITS_PER_CHUNK].entry[(n >> 5) % SG_CHUNK_ENTRIES] & (1u << (n & 31));
}

// Record i of 16-byte records (sg_dir_word, sg_group) laid out 64 to a chunk.
template <typename Record>
Record get_record(const sg_chunk* chunks, uint32_t i) {
  static_assert(sizeof(Record) * 64 == sizeof(sg_chunk));
  Record r;
  std::memcpy(&r, reinterpret_cast<const unsigned char*>(&chunks[i / 64]) + (i % 64) * sizeof(Record), sizeof(r));
  return r;
}
template <typename Record>
void put_record(std::vector<sg_chunk>& chunks, uint32_t i, const Record& r) {
  std::memcpy(reinterpret_cast<unsigned char*>(&chunks[i / 64]) + (i % 64) * sizeof(Record), &r, sizeof(r));
}

// Paints prefixes in order of length, so a longer prefix overwrites the
// shorter ones it lies in, and a chunk made for it starts as a copy of the
// leaf it splits.
class Painter {
 public:
  Painter(StrideImage& img, uint32_t max_chunks, unsigned levels)
      : img_(img), max_chunks_(max_chunks), levels_(levels) {
    img_.chunks.reserve(max_chunks);
  }

  void paint(const Cidr& prefix, uint32_t value) {
    const auto& b = prefix.bytes();
    unsigned len = prefix.prefix_len();
    if (len <= 16) {
      // The root is one run of 65536 entries; the prefix is aligned to its span.
      uint32_t* root = &img_.root[0].entry[0];
      std::fill_n(root + (uint32_t(b[0]) << 8 | b[1]), 1u << (16 - len), value);
      return;
    }
    uint32_t* cell = &img_.root[b[0]].entry[b[1]];
    for (unsigned level = 0; level < levels_; level++) {
      if (*cell & SG_ENTRY_TRIE) return;  // this block is the trie's already
      if (!(*cell & SG_ENTRY_CHUNK) && !split(cell)) return;
      sg_chunk& c = chunk(*cell);
      unsigned depth = 16 + 8 * (level + 1);  // prefix length this level's entries resolve
      if (len <= depth) {
        unsigned span = 1u << (depth - len);
        std::fill_n(&c.entry[b[2 + level] & ~(span - 1)], span, value);
        return;
      }
      cell = &c.entry[b[2 + level]];
    }
    // Longer than the table resolves (IPv6 beyond /64): the trie decides
    // for this whole block.
    if (!(*cell & SG_ENTRY_TRIE)) img_.trie_blocks_deep++;
    *cell = SG_ENTRY_TRIE;
  }

 private:
  sg_chunk& chunk(uint32_t e) { return img_.chunks[(e & ~SG_ENTRY_CHUNK) - img_.first_chunk]; }

  // Replaces a leaf by a chunk of 256 copies of it; when the pool is empty,
  // hands the block to the trie instead.
  bool split(uint32_t* cell) {
    if (img_.chunks.size() >= max_chunks_) {
      *cell = SG_ENTRY_TRIE;
      img_.trie_blocks_pool++;
      return false;
    }
    uint32_t leaf = *cell;
    uint32_t number = img_.first_chunk + uint32_t(img_.chunks.size());
    img_.chunks.emplace_back();  // never reallocates: reserved, so cell stays valid
    std::fill(std::begin(img_.chunks.back().entry), std::end(img_.chunks.back().entry), leaf);
    *cell = SG_ENTRY_CHUNK | number;
    return true;
  }

  StrideImage& img_;
  uint32_t max_chunks_;
  unsigned levels_;
};

// A run of addresses [start, end) whose longest match is one rule (value:
// its leaf entry, never 0).
struct Run {
  uint64_t start, end;
  uint32_t value;
};

// An IPv4 prefix as the runs are made of it: its address and length in one
// key (address first), its leaf entry.
struct V4Prefix {
  uint64_t key;
  uint32_t value;
};

// The IPv4 prefixes as the disjoint runs of their longest matches, in order;
// adjacent runs of one leaf are merged.
std::vector<Run> runs_of(std::vector<V4Prefix> prefixes) {
  std::sort(prefixes.begin(), prefixes.end(), [](const V4Prefix& a, const V4Prefix& b) { return a.key < b.key; });
  std::vector<Run> out;
  out.reserve(prefixes.size() * 2 + 1);
  struct Open {
    uint64_t end;
    uint32_t value;
  };
  std::vector<Open> open;  // the prefixes containing pos, innermost last
  uint64_t pos = 0;
  auto emit = [&](uint64_t a, uint64_t b, uint32_t v) {
    if (a >= b) return;
    if (!out.empty() && out.back().end == a && out.back().value == v)
      out.back().end = b;
    else
      out.push_back(Run{a, b, v});
  };
  auto advance = [&](uint64_t to) {
    while (!open.empty() && open.back().end <= to) {
      emit(pos, open.back().end, open.back().value);
      pos = open.back().end;
      open.pop_back();
    }
    if (!open.empty()) emit(pos, to, open.back().value);
    pos = to;
  };
  for (const V4Prefix& p : prefixes) {
    uint64_t start = p.key >> 6;
    advance(start);
    open.push_back(Open{start + (uint64_t(1) << (32 - (p.key & 63))), p.value});
  }
  advance(uint64_t(1) << 32);
  return out;
}

// Compiles IPv4: the runs cut at /24 boundaries give each /24 block some
// prefix overlaps its entry (a leaf, or a node of its runs); the directory
// and the groups then number the blocks (see smtpgate_abi.h).
class V4Compiler {
 public:
  V4Compiler(StrideImage& img, uint32_t max_chunks)
      : img_(img),
        capacity_(uint64_t(max_chunks) * SG_CHUNK_ENTRIES),
        base_(uint64_t(img.first_chunk) * SG_CHUNK_ENTRIES) {}

  void compile(const std::vector<Run>& runs) {
    std::vector<uint16_t> piece_start;
    std::vector<uint32_t> piece_value;
    size_t i = 0;
    uint64_t next = 0;  // the first /24 block not yet given an entry
    while (i < runs.size()) {
      uint64_t b = std::max(runs[i].start >> 8, next);
      uint64_t s = b << 8, e = s + 256;
      if (runs[i].start <= s && runs[i].end >= e) {  // whole blocks in one run
        uint64_t last = runs[i].end >> 8;
        for (uint64_t x = b; x < last; x++) add_block(uint32_t(x), runs[i].value);
        next = last;
        if (runs[i].end == last << 8) i++;
        continue;
      }
      // A block cut by run edges: its pieces, the gaps (the default rule)
      // included.
      piece_start.clear();
      piece_value.clear();
      auto piece = [&](uint64_t at, uint32_t value) {
        if (!piece_value.empty() && piece_value.back() == value) return;
        piece_start.push_back(uint16_t(at - s));
        piece_value.push_back(value);
      };
      uint64_t pos = s;
      size_t j = i;
      while (j < runs.size() && runs[j].start < e) {
        if (runs[j].start > pos) piece(pos, 0);
        piece(std::max(runs[j].start, pos), runs[j].value);
        pos = std::min(runs[j].end, e);
        if (runs[j].end > e) break;  // runs on into the next block
        j++;
      }
      if (pos < e) piece(pos, 0);
      add_block(uint32_t(b), node(piece_start, piece_value));
      i = j;
      next = b + 1;
    }
    finish();
  }

 private:
  void add_block(uint32_t b24, uint32_t entry) {
    if (blocks_.empty() || blocks_.back().first != b24 >> 4) blocks_.push_back({b24 >> 4, 0});
    blocks_.back().second |= uint16_t(1u << (b24 & 15));
    if (img_.n24 < capacity_) entries_.push_back(entry);
    img_.n24++;
  }

  // The entry of a block cut into pieces: a leaf when it is one piece, else
  // a node (numbered within nodes_ for now; finish() adds where they start).
  uint32_t node(const std::vector<uint16_t>& start, const std::vector<uint32_t>& value) {
    size_t n = value.size();
    if (n == 1) return value[0];
    if (n > SG_NODE_MAX_LEAVES) {
      img_.trie_blocks_deep++;
      return SG_ENTRY_TRIE;
    }
    bool small = n <= SG_NODE_SMALL_RUNS;
    size_t size = small ? 1 + n : SG_NODE_BITMAP_WORDS + n;
    size_t at = nodes_.size();
    if (!small) at = (at + 7) & ~size_t(7);  // a multiple of 8, as the program reads it
    if (at % SG_CHUNK_ENTRIES + size > SG_CHUNK_ENTRIES)
      at = (at / SG_CHUNK_ENTRIES + 1) * SG_CHUNK_ENTRIES;  // within a chunk
    nodes_.resize(at + size, 0);
    uint32_t* p = &nodes_[at];
    if (small) {
      uint32_t header = 0;
      for (size_t k = 0; k < SG_NODE_SMALL_RUNS - 1; k++)
        header |= (k + 1 < n ? uint32_t(start[k + 1]) : SG_NODE_NO_BOUNDARY) << (9 * k);
      p[0] = header;
      std::copy(value.begin(), value.end(), p + 1);
    } else {
      uint64_t bits[4] = {};
      for (uint16_t b : start) bits[b >> 6] |= uint64_t(1) << (b & 63);
      std::memcpy(p, bits, sizeof(bits));
      std::copy(value.begin(), value.end(), p + SG_NODE_BITMAP_WORDS);
    }
    img_.nodes++;
    return SG_ENTRY_CHUNK | (small ? 0 : SG_ENTRY_NODE_BITMAP) | uint32_t(at);
  }

  void finish() {
    // The pool: the /24 entries, then from the next chunk the nodes.
    uint64_t nodes_at = (uint64_t(entries_.size()) + SG_CHUNK_ENTRIES - 1) / SG_CHUNK_ENTRIES * SG_CHUNK_ENTRIES;
    bool nodes_fit = img_.n24 <= capacity_ && nodes_at + nodes_.size() <= capacity_ &&
                     base_ + nodes_at + nodes_.size() <= SG_ENTRY_NODE_MASK;
    for (uint32_t& e : entries_) {
      if (!(e & SG_ENTRY_CHUNK)) continue;
      if (nodes_fit) {
        e += uint32_t(base_ + nodes_at);
      } else {
        e = SG_ENTRY_TRIE;
        img_.trie_blocks_pool++;
      }
    }
    if (img_.n24 > capacity_) img_.trie_blocks_pool += img_.n24 - capacity_;
    uint64_t used = nodes_at + (nodes_fit ? nodes_.size() : 0);
    img_.pool_used = size_t(used);
    img_.chunks.assign((used + SG_CHUNK_ENTRIES - 1) / SG_CHUNK_ENTRIES, sg_chunk{});
    uint32_t* pool = img_.chunks.empty() ? nullptr : &img_.chunks[0].entry[0];
    std::copy(entries_.begin(), entries_.end(), pool);
    if (nodes_fit) std::copy(nodes_.begin(), nodes_.end(), pool + nodes_at);

    // The directory and the groups number the set /20 and /24 blocks.
    img_.dir.assign(SG_DIR_CHUNKS, sg_chunk{});
    img_.groups.assign(SG_GROUP_CHUNKS, sg_chunk{});
    img_.n20 = blocks_.size();
    std::vector<uint64_t> bits(SG_DIR_WORDS);
    for (const auto& [b20, mask] : blocks_) bits[b20 >> 6] |= uint64_t(1) << (b20 & 63);
    uint32_t rank = 0;
    for (uint32_t w = 0; w < SG_DIR_WORDS; w++) {
      put_record(img_.dir, w, sg_dir_word{bits[w], rank, 0});
      rank += uint32_t(std::popcount(bits[w]));
    }
    uint64_t n24 = 0;
    sg_group group{};
    for (uint32_t i = 0; i < blocks_.size(); i++) {
      uint32_t j = i % SG_GROUP_MASKS;
      uint16_t mask = blocks_[i].second;
      if (j == 0) group = sg_group{0, 0, uint32_t(n24)};
      if (j < 4)
        group.masks |= uint64_t(mask) << (16 * j);
      else
        group.masks_hi |= uint32_t(mask) << (16 * (j - 4));
      n24 += uint32_t(std::popcount(mask));
      if (j == SG_GROUP_MASKS - 1 || i + 1 == blocks_.size()) {
        // A group with a block past the pool asks the trie for all its blocks.
        bool fits = n24 <= capacity_ && base_ + n24 < SG_GROUP_TRIE;
        group.base = fits ? uint32_t(base_ + group.base) : SG_GROUP_TRIE;
        put_record(img_.groups, i / SG_GROUP_MASKS, group);
      }
    }
  }

  StrideImage& img_;
  uint64_t capacity_;                                  // pool entries this slot may use
  uint64_t base_;                                      // number of the slot's first pool entry
  std::vector<std::pair<uint32_t, uint16_t>> blocks_;  // set /20 blocks: number, mask of set /24s
  std::vector<uint32_t> entries_;                      // /24 entries, in order
  std::vector<uint32_t> nodes_;                        // nodes, numbered from 0
};

uint32_t v4_walk(const StrideView& t, const Cidr& address) {
  const auto& b = address.bytes();
  uint32_t b20 = uint32_t(b[0]) << 12 | uint32_t(b[1]) << 4 | b[2] >> 4;
  auto d = get_record<sg_dir_word>(t.dir, b20 >> 6);
  unsigned pos = b20 & 63;
  if (!(d.bits >> pos & 1)) return 0;
  uint32_t i20 = d.rank + uint32_t(std::popcount(d.bits & ((uint64_t(1) << pos) - 1)));
  if (i20 / SG_GROUP_MASKS >= SG_GROUPS) return SG_ENTRY_TRIE;
  auto g = get_record<sg_group>(t.groups, i20 / SG_GROUP_MASKS);
  unsigned p = (i20 % SG_GROUP_MASKS) * 16 + (b[2] & 15);
  if (!((p < 64 ? g.masks >> p : g.masks_hi >> (p - 64)) & 1)) return 0;
  if (g.base == SG_GROUP_TRIE) return SG_ENTRY_TRIE;
  uint64_t below = p >= 64 ? ~uint64_t(0) : (uint64_t(1) << p) - 1;
  uint32_t below_hi = p >= 64 ? (1u << (p - 64)) - 1 : 0;
  uint64_t n = uint64_t(g.base) + std::popcount(g.masks & below) + std::popcount(g.masks_hi & below_hi);
  auto chunk_of = [&](uint64_t entry) -> const uint32_t* {
    uint64_t c = entry / SG_CHUNK_ENTRIES;
    if (c < t.first_chunk || c - t.first_chunk >= t.n_chunks) return nullptr;
    return t.chunks[c - t.first_chunk].entry;
  };
  const uint32_t* c = chunk_of(n);
  if (!c) return SG_ENTRY_TRIE;
  uint32_t e = c[n % SG_CHUNK_ENTRIES];
  if (!(e & SG_ENTRY_CHUNK)) return e;
  uint32_t node = e & SG_ENTRY_NODE_MASK;
  if (!(c = chunk_of(node))) return SG_ENTRY_TRIE;
  uint32_t o = node % SG_CHUNK_ENTRIES, x = b[3];
  if (e & SG_ENTRY_NODE_BITMAP) {
    uint32_t count = 0;
    for (uint32_t k = 0; k < 4; k++) {
      uint64_t w;
      std::memcpy(&w, &c[(o + 2 * k) % SG_CHUNK_ENTRIES], sizeof(w));
      uint64_t upto = k < x / 64 ? ~uint64_t(0) : k == x / 64 ? (uint64_t(2) << (x & 63)) - 1 : 0;
      count += uint32_t(std::popcount(w & upto));
    }
    return c[(o + SG_NODE_BITMAP_WORDS - 1 + count) % SG_CHUNK_ENTRIES];
  }
  uint32_t h = c[o];
  uint32_t k = (x >= (h & 0x1ff)) + (x >= (h >> 9 & 0x1ff)) + (x >= (h >> 18 & 0x1ff));
  return c[(o + 1 + k) % SG_CHUNK_ENTRIES];
}

}  // namespace

uint32_t leaf_entry(RuleKind kind, uint32_t rule_id) {
  return (static_cast<uint32_t>(kind) & SG_ENTRY_KIND_MASK) << SG_ENTRY_KIND_SHIFT | (rule_id & SG_ENTRY_RULE_MASK);
}

StrideImage compile_stride_table(Family family, const std::vector<TrieEntry>& entries, uint32_t first_chunk,
                                 uint32_t max_chunks) {
  std::vector<const TrieEntry*> mine;
  for (const auto& e : entries)
    if (e.prefix.family() == family) mine.push_back(&e);
  StrideImage img;
  img.first_chunk = first_chunk;
  // Bits of the /16 blocks some prefix overlaps, in the summary.
  for (const TrieEntry* e : mine) {
    const auto& b = e->prefix.bytes();
    unsigned len = std::min(e->prefix.prefix_len(), 16u);
    uint32_t first = (uint32_t(b[0]) << 8 | b[1]) & ~((1u << (16 - len)) - 1);
    for (uint32_t n = first, end = first + (1u << (16 - len)); n < end; n++) set_bit(img.summary, n);
  }
  if (family == Family::V4) {
    std::vector<V4Prefix> prefixes;
    prefixes.reserve(mine.size());
    for (const TrieEntry* e : mine)
      prefixes.push_back(
          {uint64_t(e->prefix.v4_value()) << 6 | e->prefix.prefix_len(), leaf_entry(e->kind, e->rule_id)});
    V4Compiler(img, max_chunks).compile(runs_of(std::move(prefixes)));
    return img;
  }
  std::stable_sort(mine.begin(), mine.end(), [](const TrieEntry* a, const TrieEntry* b) {
    return a->prefix.prefix_len() < b->prefix.prefix_len();
  });
  img.root.assign(256, sg_chunk{});
  Painter painter(img, max_chunks, levels_of(family));
  for (const TrieEntry* e : mine) painter.paint(e->prefix, leaf_entry(e->kind, e->rule_id));
  return img;
}

uint32_t stride_walk(const StrideView& t, const Cidr& address) {
  const auto& b = address.bytes();
  if (!test_bit(t.summary, uint32_t(b[0]) << 8 | b[1])) return 0;
  if (address.family() == Family::V4) return t.dir && t.groups ? v4_walk(t, address) : SG_ENTRY_TRIE;
  uint32_t e = t.root[b[0]].entry[b[1]];
  unsigned levels = levels_of(address.family());
  for (unsigned i = 0; i < levels && (e & SG_ENTRY_CHUNK); i++) {
    uint32_t n = (e & ~SG_ENTRY_CHUNK) - t.first_chunk;
    if (n >= t.n_chunks) return SG_ENTRY_TRIE;
    e = t.chunks[n].entry[b[2 + i]];
  }
  // SG_ENTRY_TRIE_PATCHED asks the trie as SG_ENTRY_TRIE does.
  return e & (SG_ENTRY_CHUNK | SG_ENTRY_TRIE) ? SG_ENTRY_TRIE : e;
}

}  // namespace smtpgate
