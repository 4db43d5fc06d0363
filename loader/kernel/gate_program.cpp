// GateProgram: the embedded program opened through its skeleton, its maps
// sized, pinned ones reused after a layout check, loaded and pinned; and what
// is asked of the program without loading it (pinned_layout_difference,
// map_memory). Attaching is in attach.cpp.
#include "gate_program.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <type_traits>
#include <utility>

#include "bpf_info.hpp"
#include "error.hpp"
#include "fd.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "gate_program_impl.hpp"
#include "log.hpp"
#include "map_carry.hpp"
#include "map_names.hpp"
#include "pin_generation.hpp"
#include "smtpgate.skel.h"

namespace smtpgate {

// The names map_names.hpp gives are the skeleton's: each is a member of its maps.
#define SG_IN_SKELETON(m)                                                                 \
  static_assert(std::is_same_v<decltype(std::declval<smtpgate_bpf&>().maps.m), bpf_map*>, \
                "map_names.hpp names a map the skeleton lacks");
SG_SHARED_MAPS(SG_IN_SKELETON)
#undef SG_IN_SKELETON

namespace {
constexpr long kBpfFsMagic = 0xcafe4a11;
constexpr const char* kVerifierOne = "verifier_one";

// The maps every program copy shares through pin_dir: those map_names.hpp
// lists. Each copy has its own .rodata and verifier_one.
bool shared_map(const char* name) {
  return std::any_of(std::begin(mapname::kAll), std::end(mapname::kAll),
                     [&](const char* shared) { return std::strcmp(shared, name) == 0; });
}

// How a pinned map differs from the one this program defines ("" when not):
// smtpgate's own check, of the type, key and value sizes, entry count and
// flags, then of the value's fields as BTF lays them out.
std::string map_difference(bpf_object* obj, bpf_map* map, int pinned_fd, const std::string& path) {
  bpf_map_info info = map_info(pinned_fd, path);
  auto pair = [](uint32_t was, uint32_t want) {
    return std::to_string(was) + " (this version: " + std::to_string(want) + ")";
  };
  if (info.type != bpf_map__type(map)) return path + " is of type " + pair(info.type, bpf_map__type(map));
  if (info.key_size != bpf_map__key_size(map))
    return path + " has keys of " + pair(info.key_size, bpf_map__key_size(map)) + " bytes";
  if (info.value_size != bpf_map__value_size(map))
    return path + " has values of " + pair(info.value_size, bpf_map__value_size(map)) + " bytes";
  if (info.max_entries != bpf_map__max_entries(map))
    return path + " has " + pair(info.max_entries, bpf_map__max_entries(map)) + " entries";
  if (info.map_flags != bpf_map__map_flags(map))
    return path + " has flags " + pair(info.map_flags, bpf_map__map_flags(map));
  // The same sizes can hold other fields: a version that reordered or
  // renamed them would read the pinned values wrongly.
  std::string want = value_layout(bpf_object__btf(obj), bpf_map__btf_value_type_id(map));
  std::string was = want.empty() ? "" : map_value_layout(pinned_fd);
  if (!was.empty() && was != want) return path + " has values whose fields are laid out otherwise (same size)";
  return "";
}

// Sets a map's entry count before load.
void size_map(bpf_map* map, uint32_t entries) {
  if (int rc = bpf_map__set_max_entries(map, entries))
    throw SystemError(std::string("size ") + bpf_map__name(map), -rc);
}
}  // namespace

GateProgram::Impl::~Impl() {
  if (xdp) xdp_program__close(xdp);
  if (skel) smtpgate_bpf__destroy(skel);
}

void GateProgram::Impl::reuse_pins() {
  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) {
    const char* name = bpf_map__name(map);
    if (!shared_map(name)) continue;
    std::string path = maps_dir + "/" + name;
    Fd pinned(bpf_obj_get(path.c_str()));
    if (pinned.fd < 0) {
      if (errno == ENOENT) continue;
      throw SystemError("open pinned map " + path, errno);
    }
    std::string why = map_difference(skel->obj, map, pinned.fd, path);
    if (!why.empty())
      throw InputError("pinned map " + why + ": another version of smtpgate or other --max-rules pinned it; " +
                       GateMaps::other_version_fix(opts.pin_dir));
    if (int rc = bpf_map__reuse_fd(map, pinned.fd)) throw SystemError("reuse pinned map " + path, -rc);
  }
}

// The program's .data.verifier_one section becomes a map made here, holding
// 1 and frozen, so that the verifier cannot know its value (not
// BPF_F_RDONLY_PROG) and no one can change it (a frozen map refuses every
// write from userspace; not mmapable, so libbpf maps no writable view of it
// either).
void GateProgram::Impl::prepare_verifier_one() {
  bpf_map* map = skel->maps.data_verifier_one;
  if (bpf_map__value_size(map) != sizeof(uint32_t))
    throw SystemError(".data.verifier_one of the smtpgate BPF object is not one 32-bit value", EINVAL);
  Fd made(bpf_map_create(BPF_MAP_TYPE_ARRAY, kVerifierOne, sizeof(uint32_t), sizeof(uint32_t), 1, nullptr));
  if (made.fd < 0) throw SystemError(std::string("create the ") + kVerifierOne + " map", errno);
  uint32_t zero = 0, one = 1;
  int rc = 0;
  if (bpf_map_update_elem(made.fd, &zero, &one, BPF_ANY) != 0 || bpf_map_freeze(made.fd) != 0) rc = -errno;
  if (rc == 0) rc = bpf_map__reuse_fd(map, made.fd);
  if (rc) throw SystemError(std::string("prepare the ") + kVerifierOne + " map", -rc);
}

void GateProgram::Impl::pin_new() {
  if (opts.pin_dir.empty()) return;
  bpf_map* map;
  bpf_object__for_each_map(map, skel->obj) {
    const char* name = bpf_map__name(map);
    if (!shared_map(name)) continue;
    std::string path = maps_dir + "/" + name;
    if (file_exists(path)) continue;
    int rc = bpf_map__pin(map, path.c_str());
    if (rc) throw SystemError("pin map " + path, -rc);
  }
}

GateProgram::GateProgram(const ProgramOptions& opts) : impl_(std::make_unique<Impl>()) {
  impl_->opts = opts;
  impl_->skel = smtpgate_bpf__open();
  if (!impl_->skel) throw SystemError("open the embedded smtpgate BPF object", errno);
  auto& maps = impl_->skel->maps;
  size_map(maps.rule_counters, opts.max_rules);
  // Sets of SG_RECENT_WAYS sources; a power of two, so the set is a hash's top bits.
  uint32_t sets = 1;
  while (sets * SG_RECENT_WAYS < opts.recent_sources && sets < (1u << 24)) sets <<= 1;
  size_map(maps.recent_refused, sets);
  if (opts.max_rules < 2 || opts.max_rules > SG_MAX_RULES_LIMIT)
    throw InputError("max_rules " + std::to_string(opts.max_rules) + " is outside 2.." +
                     std::to_string(SG_MAX_RULES_LIMIT));
  if (opts.table_chunks < 2 || opts.table_chunks > (1u << 24))
    throw InputError("table_chunks " + std::to_string(opts.table_chunks) + " is outside 2..16777216");
  for (bpf_map* table : {maps.table_v4, maps.table_v6})
    size_map(table, SG_TABLE_FIRST_CHUNK + (opts.table_chunks & ~1u));
  impl_->skel->rodata->no_ethernet = opts.no_ethernet;
  if (opts.pin_dir.empty()) return;
  impl_->maps_dir = opts.maps_dir.empty() ? live_maps_dir(opts.pin_dir) : opts.maps_dir;
  impl_->reuse_pins();
}

GateProgram::~GateProgram() = default;
GateProgram::GateProgram(GateProgram&&) noexcept = default;
GateProgram& GateProgram::operator=(GateProgram&&) noexcept = default;

void GateProgram::Impl::load() {
  prepare_verifier_one();
  LibbpfCapture capture;
  int rc = smtpgate_bpf__load(skel);
  if (rc) {
    spdlog::debug("libbpf:\n{}", capture.text());
    throw SystemError(explain_load_failure(capture.text(), -rc), -rc);
  }
  loaded = true;
  pin_new();
}

int GateProgram::Impl::prog_fd() const { return bpf_program__fd(skel->progs.smtpgate_xdp); }

bpf_object* GateProgram::Impl::object() const { return skel->obj; }

void GateProgram::load() { impl_->load(); }

int GateProgram::prog_fd() const { return impl_->prog_fd(); }

bpf_object* GateProgram::object() const { return impl_->object(); }

std::string pinned_layout_difference(const ProgramOptions& opts) {
  std::string dir = live_maps_dir(opts.pin_dir);
  if (!GateMaps::pinned_at(opts.pin_dir)) return "";
  ProgramOptions o = opts;
  o.pin_dir.clear();
  GateProgram program(o);  // opened and sized as it would be loaded
  bpf_map* map;
  bpf_object__for_each_map(map, program.object()) {
    const char* name = bpf_map__name(map);
    if (!shared_map(name)) continue;
    std::string path = dir + "/" + name;
    Fd pinned(bpf_obj_get(path.c_str()));
    if (pinned.fd < 0) {
      if (errno == ENOENT) return path + " is missing";
      throw SystemError("open pinned map " + path, errno);
    }
    std::string why = map_difference(program.object(), map, pinned.fd, path);
    if (!why.empty()) return why;
  }
  return "";
}

std::vector<MapMemory> map_memory(const ProgramOptions& opts, unsigned cpus) {
  ProgramOptions o = opts;
  o.pin_dir.clear();
  GateProgram program(o);  // opened and sized, never loaded
  auto up = [](uint64_t n, uint64_t to) { return (n + to - 1) / to * to; };
  std::vector<MapMemory> out;
  MapMemory tries{std::string(mapname::allow_v4) + "+" + mapname::allow_v6 + " tries", 0, true};
  bpf_map* map;
  bpf_object__for_each_map(map, program.object()) {
    std::string name = bpf_map__name(map);
    if (name.find('.') != std::string::npos) continue;  // .rodata and the like: a page each, not counted
    uint64_t entries = bpf_map__max_entries(map), value = up(bpf_map__value_size(map), 8);
    switch (bpf_map__type(map)) {
      case BPF_MAP_TYPE_ARRAY: out.push_back({name, up(entries * value, 4096)}); break;
      case BPF_MAP_TYPE_PERCPU_ARRAY: out.push_back({name, entries * value * cpus}); break;
      case BPF_MAP_TYPE_RINGBUF: out.push_back({name, entries}); break;
      case BPF_MAP_TYPE_ARRAY_OF_MAPS: {
        // The kernel's trie node (rcu head, two children, length, flags:
        // 40 bytes) holds the address and the value, in a kmalloc size
        // class of 64 bytes or more; a trie of n prefixes has up to n - 1
        // more nodes where paths split; two slots hold one each.
        const bpf_map* inner = bpf_map__inner_map(map);
        uint64_t node = 40 + (inner ? bpf_map__key_size(inner) - 4 + bpf_map__value_size(inner) : 24);
        node = node <= 64 ? 64 : node <= 96 ? 96 : up(node, 64);
        tries.bytes = std::max(tries.bytes, uint64_t(SG_SLOTS) * 2 * opts.max_rules * node);
        break;
      }
      default: out.push_back({name, up(entries * (bpf_map__key_size(map) + value), 4096)});
    }
  }
  out.push_back(tries);
  return out;
}

void ensure_pin_dir(const std::string& dir) {
  const std::string root = "/sys/fs/bpf";
  if (dir.rfind(root, 0) == 0) {
    struct statfs st {};
    if (::statfs(root.c_str(), &st) != 0 || st.f_type != kBpfFsMagic) {
      if (::mount("bpf", root.c_str(), "bpf", 0, "mode=0700") != 0)
        throw SystemError("mount bpffs at " + root + " (needed to pin the gate's maps)", errno);
      spdlog::info("mounted bpffs at {}", root);
    }
  }
  make_dirs(dir, 0700);
  // bpffs is often mounted world-writable (mode 1777): a pin directory
  // another user made first could be theirs to flock or empty.
  check_private_dir(dir, "pin_dir");
}

}  // namespace smtpgate
