#include "stride_table.hpp"

#include <algorithm>

namespace smtpgate {

namespace {

unsigned levels_of(Family f) { return f == Family::V4 ? SG_TABLE_V4_LEVELS : SG_TABLE_V6_LEVELS; }

// Bit n of a bitmap stored in chunks, as the program indexes it (the summary
// and the prefilter).
void set_bit(std::vector<sg_chunk>& bits, uint32_t n) {
  bits[n / SG_PREFILTER_BITS_PER_CHUNK].entry[(n >> 5) % SG_CHUNK_ENTRIES] |= 1u << (n & 31);
}
bool test_bit(const sg_chunk* bits, uint32_t n) {
  return bits[n / SG_PREFILTER_BITS_PER_CHUNK].entry[(n >> 5) % SG_CHUNK_ENTRIES] & (1u << (n & 31));
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

}  // namespace

uint32_t leaf_entry(RuleKind kind, uint32_t rule_id) {
  return (static_cast<uint32_t>(kind) & SG_ENTRY_KIND_MASK) << SG_ENTRY_KIND_SHIFT | (rule_id & SG_ENTRY_RULE_MASK);
}

StrideImage compile_stride_table(Family family, const std::vector<TrieEntry>& entries, uint32_t first_chunk,
                                 uint32_t max_chunks) {
  std::vector<const TrieEntry*> mine;
  for (const auto& e : entries)
    if (e.prefix.family() == family) mine.push_back(&e);
  std::stable_sort(mine.begin(), mine.end(), [](const TrieEntry* a, const TrieEntry* b) {
    return a->prefix.prefix_len() < b->prefix.prefix_len();
  });
  StrideImage img;
  img.first_chunk = first_chunk;
  Painter painter(img, max_chunks, levels_of(family));
  for (const TrieEntry* e : mine) painter.paint(e->prefix, leaf_entry(e->kind, e->rule_id));
  // Bits of the blocks some prefix overlaps: /16 blocks in the summary, and
  // for IPv4 /20 and /24 blocks in the prefilter. A block is numbered by the
  // first block_len bits of its address (block_len at most 24).
  auto mark = [](std::vector<sg_chunk>& bits, const Cidr& prefix, unsigned block_len) {
    const auto& b = prefix.bytes();
    unsigned len = std::min(prefix.prefix_len(), block_len);
    uint32_t block = (uint32_t(b[0]) << 16 | uint32_t(b[1]) << 8 | b[2]) >> (24 - block_len);
    uint32_t first = block & ~((1u << (block_len - len)) - 1);
    for (uint32_t n = first, end = first + (1u << (block_len - len)); n < end; n++) set_bit(bits, n);
  };
  if (family == Family::V4) {
    img.prefilter.assign(SG_PREFILTER_CHUNKS, sg_chunk{});
    img.prefilter_coarse.assign(SG_PREFILTER_COARSE_CHUNKS, sg_chunk{});
  }
  for (const TrieEntry* e : mine) {
    mark(img.summary, e->prefix, 16);
    if (family == Family::V4) {
      mark(img.prefilter_coarse, e->prefix, 20);
      mark(img.prefilter, e->prefix, 24);
    }
  }
  return img;
}

uint32_t stride_walk(const StrideView& t, const Cidr& address) {
  const auto& b = address.bytes();
  if (!test_bit(t.summary, uint32_t(b[0]) << 8 | b[1])) return 0;
  uint32_t block24 = uint32_t(b[0]) << 16 | uint32_t(b[1]) << 8 | b[2];
  if (t.prefilter_coarse && !test_bit(t.prefilter_coarse, block24 >> 4)) return 0;
  if (t.prefilter && !test_bit(t.prefilter, block24)) return 0;
  uint32_t e = t.root[b[0]].entry[b[1]];
  unsigned levels = levels_of(address.family());
  for (unsigned i = 0; i < levels && (e & SG_ENTRY_CHUNK); i++) {
    uint32_t n = (e & ~SG_ENTRY_CHUNK) - t.first_chunk;
    if (n >= t.n_chunks) return SG_ENTRY_TRIE;
    e = t.chunks[n].entry[b[2 + i]];
  }
  return e & SG_ENTRY_CHUNK ? SG_ENTRY_TRIE : e;
}

}  // namespace smtpgate
