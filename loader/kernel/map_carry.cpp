#include "map_carry.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "bpf_info.hpp"
#include "error.hpp"

namespace smtpgate {

namespace {

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;

// One run of bytes to copy from a source value into a destination value.
struct Copy {
  uint32_t from = 0, to = 0, size = 0;
};

// A value type of one map, as its BTF describes it.
struct TypeRef {
  const btf* b;
  uint32_t id;
  const btf_type* t() const { return btf__type_by_id(b, id); }
};

TypeRef resolved(const btf* b, uint32_t id) {
  int r = btf__resolve_type(b, id);  // through typedefs, const, volatile
  return TypeRef{b, r < 0 ? 0 : uint32_t(r)};
}

bool scalar(const btf_type* t) { return btf_is_int(t) || btf_is_enum(t) || btf_is_enum64(t) || btf_is_ptr(t); }

// Plans the copy of a value of type `from` (at byte offset fo) into one of
// type `to` (at to_off): fields by name, arrays element by element (as many
// as both hold), scalars when their sizes are equal. Returns the fields matched.
uint32_t plan(TypeRef from, uint32_t fo, TypeRef to, uint32_t to_off, std::vector<Copy>& out, int depth = 0) {
  const btf_type* ft = from.t();
  const btf_type* tt = to.t();
  if (!ft || !tt || depth > 8) return 0;
  if (scalar(ft) && scalar(tt)) {
    long fs = btf__resolve_size(from.b, from.id), ts = btf__resolve_size(to.b, to.id);
    if (fs <= 0 || fs != ts) return 0;
    out.push_back({fo, to_off, uint32_t(ts)});
    return 1;
  }
  if (btf_is_array(ft) && btf_is_array(tt)) {
    const struct btf_array* fa = btf_array(ft);
    const struct btf_array* ta = btf_array(tt);
    TypeRef fe = resolved(from.b, fa->type), te = resolved(to.b, ta->type);
    long fsz = btf__resolve_size(from.b, fe.id), tsz = btf__resolve_size(to.b, te.id);
    if (fsz <= 0 || tsz <= 0) return 0;
    uint32_t n = std::min(fa->nelems, ta->nelems), matched = 0;
    for (uint32_t i = 0; i < n; i++)
      matched += plan(fe, fo + i * uint32_t(fsz), te, to_off + i * uint32_t(tsz), out, depth + 1);
    return matched;
  }
  if ((btf_is_struct(ft) || btf_is_union(ft)) && btf_kind(ft) == btf_kind(tt)) {
    uint32_t matched = 0;
    const btf_member* tm = btf_members(tt);
    for (uint16_t i = 0; i < btf_vlen(tt); i++) {
      if (btf_member_bitfield_size(tt, i)) continue;
      const char* name = btf__name_by_offset(to.b, tm[i].name_off);
      if (!name || !*name) continue;
      const btf_member* fm = btf_members(ft);
      for (uint16_t j = 0; j < btf_vlen(ft); j++) {
        if (btf_member_bitfield_size(ft, j)) continue;
        const char* fname = btf__name_by_offset(from.b, fm[j].name_off);
        if (!fname || std::strcmp(name, fname) != 0) continue;
        matched += plan(resolved(from.b, fm[j].type), fo + btf_member_bit_offset(ft, j) / 8, resolved(to.b, tm[i].type),
                        to_off + btf_member_bit_offset(tt, i) / 8, out, depth + 1);
        break;
      }
    }
    return matched;
  }
  return 0;
}

BtfPtr kernel_btf(uint32_t id) {
  if (!id) return nullptr;
  btf* b = btf__load_from_kernel_by_id(id);
  if (!b || libbpf_get_error(b)) return nullptr;
  return BtfPtr(b);
}

bool percpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

std::string describe(TypeRef t, int depth = 0) {
  const btf_type* bt = t.t();
  if (!bt || depth > 8) return "?";
  if (scalar(bt)) return "s" + std::to_string(btf__resolve_size(t.b, t.id));
  if (btf_is_array(bt)) {
    const struct btf_array* a = btf_array(bt);
    return "[" + std::to_string(a->nelems) + "]" + describe(resolved(t.b, a->type), depth + 1);
  }
  if (btf_is_struct(bt) || btf_is_union(bt)) {
    std::string out = btf_is_struct(bt) ? "{" : "<";
    const btf_member* m = btf_members(bt);
    for (uint16_t i = 0; i < btf_vlen(bt); i++) {
      out += btf__name_by_offset(t.b, m[i].name_off);
      out += "@" + std::to_string(btf_member_bit_offset(bt, i));
      if (uint32_t bits = btf_member_bitfield_size(bt, i)) out += ":" + std::to_string(bits);
      out += "=" + describe(resolved(t.b, m[i].type), depth + 1) + ";";
    }
    return out + (btf_is_struct(bt) ? "}" : ">");
  }
  return "k" + std::to_string(btf_kind(bt));
}

}  // namespace

std::string value_layout(const ::btf* b, uint32_t value_type_id) {
  return b && value_type_id ? describe(resolved(b, value_type_id)) : "";
}

std::string map_value_layout(int fd) {
  bpf_map_info info = map_info(fd, "a map's");
  BtfPtr b = kernel_btf(info.btf_id);
  return b ? value_layout(b.get(), info.btf_value_type_id) : "";
}

CarryResult carry_map(int from_fd, int to_fd, KeyMeaning keys) {
  CarryResult r;
  bpf_map_info fi = map_info(from_fd, "the running gate's map"), ti = map_info(to_fd, "the new gate's map");
  bool is_array = [](uint32_t t) { return t == BPF_MAP_TYPE_ARRAY || t == BPF_MAP_TYPE_PERCPU_ARRAY; }(ti.type);
  if (fi.type != ti.type || !is_array || fi.key_size != 4 || ti.key_size != 4) {
    r.skipped = "not arrays of the same type";
    return r;
  }
  if (keys == KeyMeaning::Shape && fi.max_entries != ti.max_entries) {
    r.skipped = "its entry count changed (" + std::to_string(fi.max_entries) + " to " + std::to_string(ti.max_entries) +
                "), so its keys mean other things";
    return r;
  }
  // The field plan, from the two maps' BTF.
  std::vector<Copy> copies;
  BtfPtr fb = kernel_btf(fi.btf_id), tb = kernel_btf(ti.btf_id);
  if (fb && tb && fi.btf_value_type_id && ti.btf_value_type_id) {
    r.fields = plan(resolved(fb.get(), fi.btf_value_type_id), 0, resolved(tb.get(), ti.btf_value_type_id), 0, copies);
    if (!r.fields) {
      r.skipped = "no field of its value has the same name and size in both versions";
      return r;
    }
  } else if (fi.value_size == ti.value_size) {
    copies.push_back({0, 0, ti.value_size});
  } else {
    r.skipped = "it has no BTF and its value size changed";
    return r;
  }

  unsigned copies_per_key = percpu(ti.type) ? possible_cpus() : 1;
  // Per-CPU values come as one 8-byte-aligned slot per possible CPU.
  size_t fstride = percpu(fi.type) ? (fi.value_size + 7) / 8 * 8 : fi.value_size;
  size_t tstride = percpu(ti.type) ? (ti.value_size + 7) / 8 * 8 : ti.value_size;
  std::vector<uint8_t> src(fstride * copies_per_key), dst(tstride * copies_per_key);
  uint32_t n = std::min(fi.max_entries, ti.max_entries);
  for (uint32_t key = 0; key < n; key++) {
    if (bpf_map_lookup_elem(from_fd, &key, src.data()) != 0) throw SystemError("read the running gate's map", errno);
    // Most rules' counters are zero: nothing to move.
    if (std::all_of(src.begin(), src.end(), [](uint8_t b) { return b == 0; })) continue;
    // Fields the source lacks keep what the new map holds (zero, or what
    // was set before).
    if (bpf_map_lookup_elem(to_fd, &key, dst.data()) != 0) throw SystemError("read the new gate's map", errno);
    for (unsigned cpu = 0; cpu < copies_per_key; cpu++)
      for (const Copy& c : copies)
        std::memcpy(dst.data() + cpu * tstride + c.to, src.data() + cpu * fstride + c.from, c.size);
    if (bpf_map_update_elem(to_fd, &key, dst.data(), BPF_ANY) != 0)
      throw SystemError("write the new gate's map", errno);
    r.keys++;
  }
  r.carried = true;
  return r;
}

}  // namespace smtpgate
