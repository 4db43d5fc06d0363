// Carrying map values between two layouts (loader/kernel/map_carry): real per-CPU
// arrays in the kernel, each with the BTF of its value type, as two versions
// of smtpgate would have them. Fields move by name to wherever the other
// layout put them, through nested structs and arrays; a layout with an extra
// field gets it zeroed; keys whose meaning depends on the map's size are not
// carried when the size changed.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "map_carry.hpp"

using smtpgate::carry_map;
using smtpgate::KeyMeaning;

namespace {

// Version 1's value: struct way { u64 count; u64 last; } ways[2]; u32 rule;
struct V1Way {
  uint64_t count, last;
};
struct V1 {
  V1Way ways[2];
  uint32_t rule;
  uint32_t pad_;
};
// Version 2's: a new field first, the ways' fields swapped and one way more.
struct V2Way {
  uint64_t last, count;
};
struct V2 {
  uint64_t added;
  uint32_t rule;
  uint32_t pad_;
  V2Way ways[3];
};

class Btf {
 public:
  // Builds and loads the BTF of V1 (v2 = false) or V2.
  explicit Btf(bool v2) : b_(btf__new_empty()) {
    u32_ = btf__add_int(b_, "unsigned int", 4, 0);
    int u64 = btf__add_int(b_, "unsigned long long", 8, 0);
    int way = btf__add_struct(b_, "way", 16);
    btf__add_field(b_, v2 ? "last" : "count", u64, 0, 0);
    btf__add_field(b_, v2 ? "count" : "last", u64, 64, 0);
    int idx = btf__add_int(b_, "int", 4, BTF_INT_SIGNED);
    int ways = btf__add_array(b_, idx, way, v2 ? 3 : 2);
    value_ = btf__add_struct(b_, "value", v2 ? sizeof(V2) : sizeof(V1));
    if (v2) {
      btf__add_field(b_, "added", u64, 0, 0);
      btf__add_field(b_, "rule", u32_, 64, 0);
      btf__add_field(b_, "ways", ways, 128, 0);
    } else {
      btf__add_field(b_, "ways", ways, 0, 0);
      btf__add_field(b_, "rule", u32_, 256, 0);
    }
    if (btf__load_into_kernel(b_) != 0) ADD_FAILURE() << "BTF refused: " << std::strerror(errno);
  }
  ~Btf() { btf__free(b_); }
  // A per-CPU array of this value type.
  int map(uint32_t entries, bool with_btf = true) const {
    LIBBPF_OPTS(bpf_map_create_opts, o);
    if (with_btf) {
      o.btf_fd = btf__fd(b_);
      o.btf_key_type_id = u32_;
      o.btf_value_type_id = value_;
    }
    uint32_t size = btf__resolve_size(b_, value_);
    int fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "sgt_carry", 4, size, entries, &o);
    if (fd < 0) ADD_FAILURE() << "map create: " << std::strerror(errno);
    return fd;
  }

 private:
  btf* b_;
  int u32_ = 0, value_ = 0;
};

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

unsigned cpus() { return unsigned(libbpf_num_possible_cpus()); }

// Fills key k of a V1 map: on CPU c, way w holds count k*100+c*10+w, last 7+w.
void fill_v1(int fd, uint32_t entries) {
  for (uint32_t k = 0; k < entries; k++) {
    std::vector<V1> v(cpus());
    for (unsigned c = 0; c < cpus(); c++) {
      for (unsigned w = 0; w < 2; w++) v[c].ways[w] = {k * 100 + c * 10 + w, 7 + w};
      v[c].rule = 1000 + k;
    }
    ASSERT_EQ(bpf_map_update_elem(fd, &k, v.data(), BPF_ANY), 0);
  }
}

std::vector<V2> read_v2(int fd, uint32_t key) {
  std::vector<V2> v(cpus());
  EXPECT_EQ(bpf_map_lookup_elem(fd, &key, v.data()), 0);
  return v;
}

TEST(MapCarry, FieldsMoveByNameThroughNestedStructsAndArrays) {
  Btf v1(false), v2(true);
  Fd from{v1.map(4)}, to{v2.map(4)};
  fill_v1(from.fd, 4);
  auto r = carry_map(from.fd, to.fd, KeyMeaning::Index);
  ASSERT_TRUE(r.carried) << r.skipped;
  EXPECT_EQ(r.keys, 4u);
  EXPECT_EQ(r.fields, 5u);  // rule, and count and last of two ways
  for (uint32_t k = 0; k < 4; k++) {
    auto v = read_v2(to.fd, k);
    for (unsigned c = 0; c < cpus(); c++) {
      SCOPED_TRACE("key " + std::to_string(k) + " cpu " + std::to_string(c));
      EXPECT_EQ(v[c].added, 0u);  // the field version 1 lacks
      EXPECT_EQ(v[c].rule, 1000 + k);
      for (unsigned w = 0; w < 2; w++) {
        EXPECT_EQ(v[c].ways[w].count, k * 100 + c * 10 + w);
        EXPECT_EQ(v[c].ways[w].last, 7 + w);
      }
      EXPECT_EQ(v[c].ways[2].count, 0u);  // the way version 1 lacks
    }
  }
}

TEST(MapCarry, IndexKeysAreCarriedUpToTheSmallerMap) {
  Btf v1(false), v2(true);
  Fd from{v1.map(8)}, to{v2.map(3)};
  fill_v1(from.fd, 8);
  auto r = carry_map(from.fd, to.fd, KeyMeaning::Index);
  ASSERT_TRUE(r.carried) << r.skipped;
  EXPECT_EQ(r.keys, 3u);
  EXPECT_EQ(read_v2(to.fd, 2)[0].rule, 1002u);
}

TEST(MapCarry, ShapeKeysAreNotCarriedWhenTheSizeChanged) {
  Btf v1(false), v2(true);
  Fd from{v1.map(8)}, to{v2.map(4)};
  fill_v1(from.fd, 8);
  auto r = carry_map(from.fd, to.fd, KeyMeaning::Shape);
  EXPECT_FALSE(r.carried);
  EXPECT_NE(r.skipped.find("entry count changed (8 to 4)"), std::string::npos) << r.skipped;
  EXPECT_EQ(read_v2(to.fd, 1)[0].rule, 0u);
}

TEST(MapCarry, WithoutBtfOnlyAnEqualSizeIsCopied) {
  Btf v1(false), v2(true);
  Fd from{v1.map(2, false)}, same{v1.map(2, false)}, other{v2.map(2, false)};
  fill_v1(from.fd, 2);
  auto r = carry_map(from.fd, same.fd, KeyMeaning::Index);
  ASSERT_TRUE(r.carried) << r.skipped;
  std::vector<V1> v(cpus());
  uint32_t key = 1;
  ASSERT_EQ(bpf_map_lookup_elem(same.fd, &key, v.data()), 0);
  EXPECT_EQ(v[0].rule, 1001u);
  r = carry_map(from.fd, other.fd, KeyMeaning::Index);
  EXPECT_FALSE(r.carried);
  EXPECT_NE(r.skipped.find("no BTF"), std::string::npos) << r.skipped;
}

}  // namespace

namespace {

// A value of two u64 fields named a and b, in this order or swapped: the
// same size, another layout.
struct PairBtf {
  explicit PairBtf(bool swapped) : b(btf__new_empty()) {
    key = btf__add_int(b, "unsigned int", 4, 0);
    int u64 = btf__add_int(b, "unsigned long long", 8, 0);
    value = btf__add_struct(b, "pair", 16);
    btf__add_field(b, swapped ? "b" : "a", u64, 0, 0);
    btf__add_field(b, swapped ? "a" : "b", u64, 64, 0);
    if (btf__load_into_kernel(b) != 0) ADD_FAILURE() << "BTF refused: " << std::strerror(errno);
  }
  ~PairBtf() { btf__free(b); }
  int map() const {
    LIBBPF_OPTS(bpf_map_create_opts, o);
    o.btf_fd = btf__fd(b);
    o.btf_key_type_id = key;
    o.btf_value_type_id = value;
    int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sgt_layout", 4, 16, 1, &o);
    if (fd < 0) ADD_FAILURE() << "map create: " << std::strerror(errno);
    return fd;
  }
  btf* b;
  int key = 0, value = 0;
};

TEST(MapLayout, FieldsInAnotherOrderAreAnotherLayoutAtTheSameSize) {
  PairBtf ab(false), ba(true);
  int m_ab = ab.map(), m_ba = ba.map();
  ASSERT_GE(m_ab, 0);
  ASSERT_GE(m_ba, 0);
  // What the kernel holds for a map is what its object described.
  EXPECT_EQ(smtpgate::map_value_layout(m_ab), smtpgate::value_layout(ab.b, ab.value));
  EXPECT_EQ(smtpgate::map_value_layout(m_ab), "{a@0=s8;b@64=s8;}");
  EXPECT_NE(smtpgate::map_value_layout(m_ab), smtpgate::map_value_layout(m_ba));
  // A map without BTF has no layout to compare.
  int bare = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sgt_bare", 4, 16, 1, nullptr);
  ASSERT_GE(bare, 0);
  EXPECT_EQ(smtpgate::map_value_layout(bare), "");
  ::close(bare);
  ::close(m_ab);
  ::close(m_ba);
}

}  // namespace
