#include "gate_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "error.hpp"
#include "pin_generation.hpp"
#include "stride_table.hpp"

namespace smtpgate {

// Names of the maps, as the program defines them and as they are pinned.
namespace mapname {
constexpr const char* kConfig = kConfigMapName;
constexpr const char* kAllowV4 = "allow_v4";
constexpr const char* kAllowV6 = "allow_v6";
constexpr const char* kTableV4 = "table_v4";
constexpr const char* kTableV6 = "table_v6";
constexpr const char* kPrefilterV4 = "prefilter_v4";
constexpr const char* kSummary = "summary";
constexpr const char* kRuleCounters = "rule_counters";
constexpr const char* kPacketCounters = "packet_counters";
constexpr const char* kRecent = "recent_refused";
constexpr const char* kEvents = "events";
constexpr const char* kCpuState = "cpu_state";
constexpr const char* kAll[] = {kConfig,       kAllowV4,      kAllowV6,        kTableV4, kTableV6,
                                kPrefilterV4,  kSummary,      kRuleCounters,   kPacketCounters,
                                kRecent,       kEvents,       kCpuState};
}  // namespace mapname

namespace {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd = o.fd;
      o.fd = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

int num_cpus() {
  static int n = libbpf_num_possible_cpus();
  if (n <= 0) throw SystemError("count possible CPUs", n);
  return n;
}

template <typename T>
std::vector<T> lookup_percpu(int fd, uint32_t key) {
  // Per-CPU values come back as one 8-byte-aligned slot per possible CPU.
  static_assert(sizeof(T) % 8 == 0);
  std::vector<T> vals(num_cpus());
  if (bpf_map_lookup_elem(fd, &key, vals.data()) != 0)
    throw SystemError("read per-CPU counter " + std::to_string(key), errno);
  return vals;
}

void fill_key_v4(sg_lpm_v4_key& k, const Cidr& c) {
  k.prefixlen = c.prefix_len();
  std::memcpy(k.addr, c.bytes().data(), 4);
}

void fill_key_v6(sg_lpm_v6_key& k, const Cidr& c) {
  k.prefixlen = c.prefix_len();
  std::memcpy(k.addr, c.bytes().data(), 16);
}

// Creates an inner LPM trie compatible with the outer map's template.
Fd create_trie(Family fam, size_t entries) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  size_t key_size = fam == Family::V4 ? sizeof(sg_lpm_v4_key) : sizeof(sg_lpm_v6_key);
  uint32_t max = static_cast<uint32_t>(std::max<size_t>(entries, 1));
  int fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, fam == Family::V4 ? "sg_allow_v4" : "sg_allow_v6",
                          key_size, sizeof(sg_rule_ref), max, &opts);
  if (fd < 0) throw SystemError("create allowlist trie", errno);
  return Fd(fd);
}

// The inner map currently in slot `slot` of an outer map, or -1 when empty.
Fd inner_map(int outer_fd, uint32_t slot) {
  uint32_t id = 0;
  if (bpf_map_lookup_elem(outer_fd, &slot, &id) != 0) return Fd();
  int fd = bpf_map_get_fd_by_id(id);
  if (fd < 0) return Fd();
  return Fd(fd);
}

// A stride table, the prefilter or the summary mapped into this process
// (BPF_F_MMAPABLE arrays of chunks, at least min_elements of them).
class TableMapping {
 public:
  explicit TableMapping(int fd, uint32_t min_elements = SG_SLOTS * 256 + 2) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) throw SystemError("read stride table info", errno);
    if (info.value_size != sizeof(sg_chunk) || info.max_entries < min_elements)
      throw SystemError("stride table has an unexpected layout", EINVAL);
    elements_ = info.max_entries;
    bytes_ = size_t(info.max_entries) * sizeof(sg_chunk);
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw SystemError("map the stride table", errno);
    chunks_ = static_cast<sg_chunk*>(p);
  }
  TableMapping(const TableMapping&) = delete;
  TableMapping& operator=(const TableMapping&) = delete;
  ~TableMapping() { ::munmap(chunks_, bytes_); }

  sg_chunk* element(uint32_t i) { return chunks_ + i; }
  /// Chunks each slot may use: the pool after the roots, split in halves.
  uint32_t pool_per_slot() const { return (elements_ - SG_TABLE_FIRST_CHUNK) / 2; }
  uint32_t first_chunk_of(uint32_t slot) const { return slot * pool_per_slot(); }

  /// Writes a compiled image of one family into its slot: the root, then its
  /// chunks; the /16 bits into `summary` (the summary map), IPv4's /20 and
  /// /24 bits into `prefilter` (the prefilter map).
  void write(uint32_t slot, Family family, const StrideImage& img, TableMapping& summary,
             TableMapping* prefilter) {
    std::copy(img.root.begin(), img.root.end(), element(slot * 256));
    std::copy(img.chunks.begin(), img.chunks.end(), element(SG_TABLE_FIRST_CHUNK + img.first_chunk));
    std::copy(img.summary.begin(), img.summary.end(), summary.element(summary_index(slot, family)));
    if (prefilter && !img.prefilter.empty()) {
      std::copy(img.prefilter.begin(), img.prefilter.end(), prefilter->element(slot * SG_PREFILTER_CHUNKS));
      std::copy(img.prefilter_coarse.begin(), img.prefilter_coarse.end(),
                prefilter->element(SG_PREFILTER_COARSE_INDEX(slot)));
    }
  }

  /// Walks a slot's table in place, as the program does.
  uint32_t walk(uint32_t slot, const Cidr& address, TableMapping& summary, TableMapping* prefilter) {
    return stride_walk(StrideView{summary.element(summary_index(slot, address.family())), element(slot * 256),
                                  element(SG_TABLE_FIRST_CHUNK), 0, elements_ - SG_TABLE_FIRST_CHUNK,
                                  prefilter ? prefilter->element(slot * SG_PREFILTER_CHUNKS) : nullptr,
                                  prefilter ? prefilter->element(SG_PREFILTER_COARSE_INDEX(slot)) : nullptr},
                       address);
  }

  static uint32_t summary_index(uint32_t slot, Family family) {
    return SG_SUMMARY_INDEX(slot, family == Family::V4 ? 4 : 6);
  }

 private:
  sg_chunk* chunks_ = nullptr;
  size_t bytes_ = 0;
  uint32_t elements_ = 0;
};

template <typename Key>
void collect_trie(int fd, Family fam, std::vector<TrieEntry>& out) {
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

struct GateMaps::Fds {
  std::map<std::string, Fd> by_name;
  uint32_t max_rules = 0;
  int get(const char* name) const {
    auto it = by_name.find(name);
    if (it == by_name.end() || it->second.fd < 0)
      throw SystemError(std::string("map ") + name + " is not open", EBADF);
    return it->second.fd;
  }
};

GateMaps GateMaps::from_object(bpf_object* obj) {
  GateMaps m;
  m.fds_ = new Fds;
  for (const char* name : mapname::kAll) {
    bpf_map* map = bpf_object__find_map_by_name(obj, name);
    if (!map) throw SystemError(std::string("BPF object has no map ") + name, ENOENT);
    int fd = bpf_map__fd(map);
    if (fd < 0) throw SystemError(std::string("map ") + name + " is not loaded", EBADF);
    int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) throw SystemError(std::string("dup map ") + name, errno);
    m.fds_->by_name[name] = Fd(dup);
  }
  m.fds_->max_rules = bpf_map__max_entries(bpf_object__find_map_by_name(obj, mapname::kRuleCounters));
  return m;
}

bool GateMaps::pinned_at(const std::string& pin_dir) {
  return ::access((live_maps_dir(pin_dir) + "/" + mapname::kConfig).c_str(), F_OK) == 0;
}

std::vector<std::string> GateMaps::map_names() { return {std::begin(mapname::kAll), std::end(mapname::kAll)}; }

std::optional<std::vector<TrieEntry>> GateMaps::allowlist_at(const std::string& maps_dir, uint32_t slot) {
  std::vector<TrieEntry> out;
  for (Family fam : {Family::V4, Family::V6}) {
    Fd outer(bpf_obj_get((maps_dir + "/" + (fam == Family::V4 ? mapname::kAllowV4 : mapname::kAllowV6)).c_str()));
    if (outer.fd < 0) return std::nullopt;
    Fd trie = inner_map(outer.fd, slot & 1);
    if (trie.fd < 0) continue;
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    size_t key_size = fam == Family::V4 ? sizeof(sg_lpm_v4_key) : sizeof(sg_lpm_v6_key);
    if (bpf_obj_get_info_by_fd(trie.fd, &info, &len) != 0 || info.type != BPF_MAP_TYPE_LPM_TRIE ||
        info.key_size != key_size || info.value_size != sizeof(sg_rule_ref))
      return std::nullopt;
    if (fam == Family::V4)
      collect_trie<sg_lpm_v4_key>(trie.fd, fam, out);
    else
      collect_trie<sg_lpm_v6_key>(trie.fd, fam, out);
  }
  std::sort(out.begin(), out.end(), [](const TrieEntry& a, const TrieEntry& b) { return a.prefix < b.prefix; });
  return out;
}

std::string GateMaps::other_version_fix(const std::string& pin_dir) {
  return "restart smtpgated of this version, which replaces the gate at " + pin_dir +
         " without a gap (with --no-attach, load this version's program through bpfman first)";
}

GateMaps GateMaps::open_pinned(const std::string& pin_dir) { return open_generation(live_maps_dir(pin_dir), pin_dir); }

GateMaps GateMaps::open_generation(const std::string& maps_dir, const std::string& pin_dir) {
  GateMaps m;
  m.fds_ = new Fds;
  for (const char* name : mapname::kAll) {
    std::string path = maps_dir + "/" + name;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT && ::access((maps_dir + "/" + mapname::kConfig).c_str(), F_OK) == 0)
        throw InputError("the gate pinned at " + pin_dir + " is from another version of smtpgate (map " + name +
                         " missing); " + other_version_fix(pin_dir));
      if (err == ENOENT)
        throw SystemError("no gate is pinned at " + pin_dir + " (" + name +
                              " missing); start smtpgated first",
                          err);
      throw SystemError("open pinned map " + path, err);
    }
    m.fds_->by_name[name] = Fd(fd);
  }
  // The maps as this build reads and writes them: one of another type or
  // size is from another version, whose values would be misread (or overrun
  // the buffer a value is read into). So are the tries in the slots.
  struct Shape {
    const char* name;
    uint32_t type, key_size, value_size;
    uint32_t min_entries = 0;  // for maps of a fixed layout that this build indexes
  };
  const Shape kShapes[] = {
      {mapname::kConfig, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_config)},
      {mapname::kAllowV4, BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4},
      {mapname::kAllowV6, BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4},
      {mapname::kTableV4, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_chunk)},
      {mapname::kTableV6, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_chunk)},
      {mapname::kPrefilterV4, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_chunk), SG_PREFILTER_ELEMENTS},
      {mapname::kSummary, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_chunk), SG_SUMMARY_ELEMENTS},
      {mapname::kRuleCounters, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(sg_rule_counters)},
      {mapname::kPacketCounters, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(sg_counter)},
      {mapname::kRecent, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(sg_recent_set)},
      {mapname::kEvents, BPF_MAP_TYPE_RINGBUF, 0, 0},
      {mapname::kCpuState, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(sg_cpu_state)}};
  auto check = [&](int fd, const Shape& want) {
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
      throw SystemError(std::string("read ") + want.name + " info", errno);
    if (info.type != want.type || info.key_size != want.key_size || info.value_size != want.value_size)
      throw InputError("the gate pinned at " + pin_dir + " is from another version of smtpgate (map " + want.name +
                       " is of type " + std::to_string(info.type) + " with " + std::to_string(info.key_size) +
                       "-byte keys and " + std::to_string(info.value_size) + "-byte values, this one expects " +
                       std::to_string(want.type) + ", " + std::to_string(want.key_size) + " and " +
                       std::to_string(want.value_size) + "); " + other_version_fix(pin_dir));
    if (info.max_entries < want.min_entries)
      throw InputError("the gate pinned at " + pin_dir + " is from another version of smtpgate (map " + want.name +
                       " has " + std::to_string(info.max_entries) + " elements, this one expects " +
                       std::to_string(want.min_entries) + "); " + other_version_fix(pin_dir));
  };
  for (const auto& shape : kShapes) check(m.fds_->get(shape.name), shape);
  for (uint32_t slot = 0; slot < 2; slot++) {
    Fd v4 = inner_map(m.fds_->get(mapname::kAllowV4), slot);
    Fd v6 = inner_map(m.fds_->get(mapname::kAllowV6), slot);
    if (v4.fd >= 0)
      check(v4.fd, {"allow_v4's trie", BPF_MAP_TYPE_LPM_TRIE, sizeof(sg_lpm_v4_key), sizeof(sg_rule_ref)});
    if (v6.fd >= 0)
      check(v6.fd, {"allow_v6's trie", BPF_MAP_TYPE_LPM_TRIE, sizeof(sg_lpm_v6_key), sizeof(sg_rule_ref)});
  }
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(m.fds_->get(mapname::kRuleCounters), &info, &len) != 0)
    throw SystemError("read rule_counters info", errno);
  m.fds_->max_rules = info.max_entries;
  return m;
}

GateMaps::GateMaps(GateMaps&& o) noexcept : fds_(o.fds_) { o.fds_ = nullptr; }
GateMaps& GateMaps::operator=(GateMaps&& o) noexcept {
  if (this != &o) {
    delete fds_;
    fds_ = o.fds_;
    o.fds_ = nullptr;
  }
  return *this;
}
GateMaps::~GateMaps() { delete fds_; }

uint32_t GateMaps::max_rules() const { return fds_->max_rules; }

namespace {
// gate_config mapped into this process: the state is read and written as one
// aligned 8-byte word, as the program loads it, and the configuration fields
// are written without touching it.
class ConfigMapping {
 public:
  explicit ConfigMapping(int fd) {
    void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw SystemError("map gate_config", errno);
    cfg_ = static_cast<sg_config*>(p);
  }
  ConfigMapping(const ConfigMapping&) = delete;
  ConfigMapping& operator=(const ConfigMapping&) = delete;
  ~ConfigMapping() { ::munmap(cfg_, bytes()); }

  sg_config* get() { return cfg_; }
  sg_state state() const {
    uint64_t w = __atomic_load_n(reinterpret_cast<const uint64_t*>(&cfg_->state), __ATOMIC_ACQUIRE);
    sg_state st;
    std::memcpy(&st, &w, sizeof(st));
    return st;
  }
  void set_state(const sg_state& st) {
    uint64_t w;
    std::memcpy(&w, &st, sizeof(w));
    __atomic_store_n(reinterpret_cast<uint64_t*>(&cfg_->state), w, __ATOMIC_RELEASE);
  }

 private:
  static size_t bytes() {
    size_t page = size_t(::sysconf(_SC_PAGESIZE));
    return (sizeof(sg_config) + page - 1) / page * page;
  }
  sg_config* cfg_ = nullptr;
};
static_assert(offsetof(sg_config, state) % 8 == 0 && sizeof(sg_state) == 8, "the state is one aligned word");

sg_state read_state(int config_fd) { return ConfigMapping(config_fd).state(); }
}  // namespace

void GateMaps::publish(const std::vector<TrieEntry>& entries) {
  // Everything that can be refused is checked before the first map changes.
  std::set<Cidr> seen;
  size_t n4 = 0, n6 = 0;
  for (const auto& e : entries) {
    if (e.rule_id == SG_RULE_DEFAULT || e.rule_id >= max_rules())
      throw InputError("rule id " + std::to_string(e.rule_id) + " for " + e.prefix.str() +
                       " is outside 1.." + std::to_string(max_rules() - 1) +
                       ": too many ranges for this gate's max_rules");
    if (!seen.insert(e.prefix).second)
      throw InputError(e.prefix.str() + " appears twice in one allowlist");
    (e.prefix.family() == Family::V4 ? n4 : n6)++;
  }

  // Build the new tries off to the side: nothing reads them yet.
  Fd v4 = create_trie(Family::V4, n4);
  Fd v6 = create_trie(Family::V6, n6);
  for (const auto& e : entries) {
    sg_rule_ref ref{e.rule_id, static_cast<uint16_t>(e.kind), static_cast<uint16_t>(e.prefix.prefix_len())};
    int rc;
    if (e.prefix.family() == Family::V4) {
      sg_lpm_v4_key k{};
      fill_key_v4(k, e.prefix);
      rc = bpf_map_update_elem(v4.fd, &k, &ref, BPF_NOEXIST);
    } else {
      sg_lpm_v6_key k{};
      fill_key_v6(k, e.prefix);
      rc = bpf_map_update_elem(v6.fd, &k, &ref, BPF_NOEXIST);
    }
    if (rc != 0) throw SystemError("insert " + e.prefix.str() + " into the new allowlist", errno);
  }

  ConfigMapping config(fds_->get(mapname::kConfig));
  int out4 = fds_->get(mapname::kAllowV4), out6 = fds_->get(mapname::kAllowV6);
  sg_state st = config.state();
  uint32_t old_slot = st.active_slot & 1;
  uint32_t new_slot = old_slot ^ 1;

  // Install the tries into the inactive slot. Each map-in-map update returns
  // only after an RCU grace period, so no program still reads that slot.
  if (bpf_map_update_elem(out4, &new_slot, &v4.fd, BPF_ANY) != 0)
    throw SystemError("install IPv4 allowlist", errno);
  if (bpf_map_update_elem(out6, &new_slot, &v6.fd, BPF_ANY) != 0)
    throw SystemError("install IPv6 allowlist", errno);

  // Compile the stride tables into the inactive slot's root and its half of
  // the chunk pool, written in place through mmap.
  TableMapping prefilter(fds_->get(mapname::kPrefilterV4), SG_PREFILTER_ELEMENTS);
  TableMapping summary(fds_->get(mapname::kSummary), SG_SUMMARY_ELEMENTS);
  for (Family fam : {Family::V4, Family::V6}) {
    TableMapping table(fds_->get(fam == Family::V4 ? mapname::kTableV4 : mapname::kTableV6));
    StrideImage img =
        compile_stride_table(fam, entries, table.first_chunk_of(new_slot), table.pool_per_slot());
    if (img.trie_blocks_pool)
      spdlog::warn("the IPv{} stride table's chunk pool ({} per slot) is too small for this allowlist: {} "
                   "block(s) are looked up in the LPM trie instead (slower); raise table_chunks",
                   fam == Family::V4 ? 4 : 6, table.pool_per_slot(), img.trie_blocks_pool);
    table.write(new_slot, fam, img, summary, fam == Family::V4 ? &prefilter : nullptr);
  }

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
}

bool GateMaps::has_allowlist() const { return read_state(fds_->get(mapname::kConfig)).generation != 0; }

uint32_t GateMaps::generation() const { return read_state(fds_->get(mapname::kConfig)).generation; }

uint32_t GateMaps::active_slot() const { return read_state(fds_->get(mapname::kConfig)).active_slot & 1; }

std::vector<TrieEntry> GateMaps::active_entries() const {
  sg_state st = read_state(fds_->get(mapname::kConfig));
  uint32_t slot = st.active_slot & 1;
  std::vector<TrieEntry> out;
  Fd v4 = inner_map(fds_->get(mapname::kAllowV4), slot);
  Fd v6 = inner_map(fds_->get(mapname::kAllowV6), slot);
  if (v4.fd >= 0) collect_trie<sg_lpm_v4_key>(v4.fd, Family::V4, out);
  if (v6.fd >= 0) collect_trie<sg_lpm_v6_key>(v6.fd, Family::V6, out);
  std::sort(out.begin(), out.end(), [](const TrieEntry& a, const TrieEntry& b) { return a.prefix < b.prefix; });
  return out;
}

std::optional<TrieEntry> GateMaps::match(const Cidr& address) const {
  std::vector<TrieEntry> holding = containing(address);
  if (holding.empty()) return std::nullopt;
  return holding.front();
}

std::vector<TrieEntry> GateMaps::containing(const Cidr& address, uint32_t* generation) const {
  sg_state st = read_state(fds_->get(mapname::kConfig));
  if (generation) *generation = st.generation;
  std::vector<TrieEntry> out;
  bool v4 = address.family() == Family::V4;
  Fd trie = inner_map(fds_->get(v4 ? mapname::kAllowV4 : mapname::kAllowV6), st.active_slot & 1);
  if (trie.fd < 0) return out;
  // A lookup key's prefix length caps the match: asking again one bit
  // shorter than the last answer finds the next enclosing prefix.
  int len = int(address.max_len());
  while (len >= 0) {
    sg_rule_ref ref{};
    int rc;
    if (v4) {
      sg_lpm_v4_key k{};
      fill_key_v4(k, address);
      k.prefixlen = uint32_t(len);
      rc = bpf_map_lookup_elem(trie.fd, &k, &ref);
    } else {
      sg_lpm_v6_key k{};
      fill_key_v6(k, address);
      k.prefixlen = uint32_t(len);
      rc = bpf_map_lookup_elem(trie.fd, &k, &ref);
    }
    if (rc != 0 || int(ref.prefixlen) > len) break;
    out.push_back(TrieEntry{Cidr::from_bytes(address.family(), address.bytes().data(), ref.prefixlen), ref.rule_id,
                            static_cast<RuleKind>(ref.kind)});
    len = int(ref.prefixlen) - 1;
  }
  return out;
}

uint32_t GateMaps::table_entry(const Cidr& address) const {
  sg_state st = read_state(fds_->get(mapname::kConfig));
  bool v4 = address.family() == Family::V4;
  TableMapping table(fds_->get(v4 ? mapname::kTableV4 : mapname::kTableV6));
  TableMapping summary(fds_->get(mapname::kSummary), SG_SUMMARY_ELEMENTS);
  if (!v4) return table.walk(st.active_slot & 1, address, summary, nullptr);
  TableMapping prefilter(fds_->get(mapname::kPrefilterV4), SG_PREFILTER_ELEMENTS);
  return table.walk(st.active_slot & 1, address, summary, &prefilter);
}

GateConfig GateMaps::config() const {
  uint32_t zero = 0;
  auto owned = std::make_unique<sg_config>();
  sg_config& raw = *owned;
  if (bpf_map_lookup_elem(fds_->get(mapname::kConfig), &zero, &raw) != 0)
    throw SystemError("read gate_config", errno);
  GateConfig c;
  c.action = static_cast<Action>(raw.action);
  c.ports.assign(raw.ports, raw.ports + std::min<uint32_t>(raw.nports, SG_MAX_PORTS));
  c.events_per_sec = raw.events_per_sec;
  return c;
}

void GateMaps::set_config(const GateConfig& c) {
  if (static_cast<uint32_t>(c.action) >= SG_ACTION_MAX) throw InputError("unknown action");
  if (c.ports.empty() || c.ports.size() > SG_MAX_PORTS)
    throw InputError("guarded ports: give 1 to " + std::to_string(SG_MAX_PORTS) + " ports, got " +
                     std::to_string(c.ports.size()));
  auto owned = std::make_unique<sg_config>();  // 8 KiB of port bits: not on the stack
  sg_config& raw = *owned;
  raw.action = static_cast<uint32_t>(c.action);
  raw.nports = static_cast<uint32_t>(c.ports.size());
  for (size_t i = 0; i < c.ports.size(); i++) {
    if (c.ports[i] == 0) throw InputError("guarded port 0 is not a port: use 1..65535");
    raw.ports[i] = c.ports[i];
    uint16_t be = htons(c.ports[i]);  // the bitmap is indexed by the port as the header holds it
    raw.port_bits[be >> 5] |= 1u << (be & 31);
  }
  raw.events_per_sec = c.events_per_sec;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fds_->get(mapname::kRecent), &info, &len) != 0)
    throw SystemError("read recent_refused info", errno);
  raw.recent_sets = info.max_entries;
  // Every field but the state, which belongs to the publish.
  ConfigMapping config(fds_->get(mapname::kConfig));
  std::memcpy(config.get(), &raw, offsetof(sg_config, state));
}

sg_rule_counters GateMaps::rule_counters(uint32_t rule_id) const {
  sg_rule_counters sum{};
  for (const auto& v : lookup_percpu<sg_rule_counters>(fds_->get(mapname::kRuleCounters), rule_id)) {
    sum.admit_packets += v.admit_packets;
    sum.admit_bytes += v.admit_bytes;
    sum.refuse_packets += v.refuse_packets;
    sum.refuse_bytes += v.refuse_bytes;
  }
  return sum;
}

void GateMaps::reset_rule_counters(uint32_t rule_id) {
  std::vector<sg_rule_counters> zeros(num_cpus());
  if (bpf_map_update_elem(fds_->get(mapname::kRuleCounters), &rule_id, zeros.data(), BPF_ANY) != 0)
    throw SystemError("reset counters of rule " + std::to_string(rule_id), errno);
}

namespace {
// The (verdict, reason) matrix, summed over CPUs.
std::array<sg_counter, SG_PACKET_COUNTERS> packet_matrix(int fd) {
  std::array<sg_counter, SG_PACKET_COUNTERS> out{};
  for (uint32_t i = 0; i < SG_PACKET_COUNTERS; i++)
    for (const auto& v : lookup_percpu<sg_counter>(fd, i)) {
      out[i].packets += v.packets;
      out[i].bytes += v.bytes;
    }
  return out;
}
}  // namespace

// Sums the matrix along one axis: by verdict or by reason.
template <size_t N, bool kByVerdict>
std::array<sg_counter, N> sum_axis(const std::array<sg_counter, SG_PACKET_COUNTERS>& m) {
  std::array<sg_counter, N> out{};
  for (uint32_t r = 0; r < SG_REASON_MAX; r++)
    for (uint32_t v = 0; v < SG_VERDICT_MAX; v++) {
      sg_counter& o = out[kByVerdict ? v : r];
      o.packets += m[SG_COUNTER_INDEX(v, r)].packets;
      o.bytes += m[SG_COUNTER_INDEX(v, r)].bytes;
    }
  return out;
}

std::array<sg_counter, SG_VERDICT_MAX> GateMaps::verdict_counters() const {
  return sum_axis<SG_VERDICT_MAX, true>(packet_matrix(fds_->get(mapname::kPacketCounters)));
}

std::array<sg_counter, SG_REASON_MAX> GateMaps::reason_counters() const {
  return sum_axis<SG_REASON_MAX, false>(packet_matrix(fds_->get(mapname::kPacketCounters)));
}

std::vector<RecentSource> GateMaps::recent_refused() const {
  int fd = fds_->get(mapname::kRecent);
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) throw SystemError("read recent_refused info", errno);
  // Each CPU keeps its own table; a source refused on several CPUs is merged.
  std::map<std::pair<uint8_t, std::array<uint8_t, 16>>, RecentSource> merged;
  for (uint32_t set = 0; set < info.max_entries; set++)
    for (const auto& cpu : lookup_percpu<sg_recent_set>(fd, set))
      for (const auto& w : cpu.way) {
        if (!w.count) continue;
        std::array<uint8_t, 16> addr;
        std::copy(std::begin(w.addr), std::end(w.addr), addr.begin());
        auto [it, fresh] = merged.try_emplace({w.family, addr});
        RecentSource& r = it->second;
        if (fresh) {
          r.address = Cidr::from_bytes(w.family == 6 ? Family::V6 : Family::V4, w.addr, w.family == 6 ? 128 : 32);
          r.first_seen_ns = w.first_seen_ns;
        }
        r.count += w.count;
        r.first_seen_ns = std::min<uint64_t>(r.first_seen_ns, w.first_seen_ns);
        if (fresh || w.last_seen_ns >= r.last_seen_ns) {
          r.last_seen_ns = w.last_seen_ns;
          r.rule_id = w.rule_id;
          r.last_port = w.last_port;
          r.last_verdict = w.last_verdict;
        }
      }
  std::vector<RecentSource> out;
  out.reserve(merged.size());
  for (auto& [key, r] : merged) out.push_back(r);
  std::sort(out.begin(), out.end(),
            [](const RecentSource& a, const RecentSource& b) { return a.last_seen_ns > b.last_seen_ns; });
  return out;
}

uint64_t GateMaps::recent_skipped() const {
  uint64_t sum = 0;
  for (const auto& v : lookup_percpu<sg_cpu_state>(fds_->get(mapname::kCpuState), 0)) sum += v.default_skipped;
  return sum;
}

uint64_t GateMaps::events_suppressed() const {
  uint64_t sum = 0;
  for (const auto& v : lookup_percpu<sg_cpu_state>(fds_->get(mapname::kCpuState), 0)) sum += v.suppressed;
  return sum;
}

int GateMaps::events_fd() const { return fds_->get(mapname::kEvents); }

}  // namespace smtpgate
