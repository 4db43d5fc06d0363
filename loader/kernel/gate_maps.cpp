// GateMaps: opening the maps (of a loaded object, or pinned) and checking
// that pinned ones are of the layout this build reads.
#include "gate_maps.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "bpf_info.hpp"
#include "error.hpp"
#include "gate_maps_fds.hpp"
#include "map_names.hpp"
#include "pin_generation.hpp"
#include "tries.hpp"

namespace smtpgate {

namespace {

using MapFds = std::map<std::string, Fd>;

// Opens every shared map pinned in maps_dir. A missing one is told apart:
// no gate pinned there, or a gate of another version (its gate_config is).
MapFds open_pins(const std::string& maps_dir, const std::string& pin_dir) {
  MapFds out;
  for (const char* name : mapname::kAll) {
    std::string path = maps_dir + "/" + name;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT && ::access((maps_dir + "/" + mapname::gate_config).c_str(), F_OK) == 0)
        throw InputError("the gate pinned at " + pin_dir + " is from another version of smtpgate (map " + name +
                         " missing); " + GateMaps::other_version_fix(pin_dir));
      if (err == ENOENT)
        throw SystemError("no gate is pinned at " + pin_dir + " (" + name + " missing); start smtpgated first", err);
      throw SystemError("open pinned map " + path, err);
    }
    out[name] = Fd(fd);
  }
  return out;
}

// A map as this build reads and writes it.
struct Shape {
  const char* name;
  uint32_t type, key_size, value_size;
  uint32_t min_entries = 0;  // for maps of a fixed layout that this build indexes
};

// The maps as this build reads and writes them: one of another type or
// size is from another version, whose values would be misread (or overrun
// the buffer a value is read into).
const Shape kShapes[] = {{mapname::gate_config, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_config)},
                         {mapname::allow_v4, BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4},
                         {mapname::allow_v6, BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4},
                         {mapname::table_v4, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_chunk)},
                         {mapname::table_v6, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_chunk)},
                         {mapname::prefilter_v4, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_chunk), SG_PREFILTER_ELEMENTS},
                         {mapname::summary, BPF_MAP_TYPE_ARRAY, 4, sizeof(sg_chunk), SG_SUMMARY_ELEMENTS},
                         {mapname::rule_counters, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(sg_rule_counters)},
                         {mapname::packet_counters, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(sg_counter)},
                         {mapname::recent_refused, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(sg_recent_set)},
                         {mapname::events, BPF_MAP_TYPE_RINGBUF, 0, 0},
                         {mapname::cpu_state, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(sg_cpu_state)}};

// Throws InputError, naming the map, when the map `fd` is not of the shape `want`.
void check_shape(int fd, const std::string& name, const Shape& want, const std::string& pin_dir) {
  bpf_map_info info = map_info(fd, name);
  std::string from_other = "the gate pinned at " + pin_dir + " is from another version of smtpgate (map " + name;
  if (info.type != want.type || info.key_size != want.key_size || info.value_size != want.value_size)
    throw InputError(from_other + " is of type " + std::to_string(info.type) + " with " +
                     std::to_string(info.key_size) + "-byte keys and " + std::to_string(info.value_size) +
                     "-byte values, this one expects " + std::to_string(want.type) + ", " +
                     std::to_string(want.key_size) + " and " + std::to_string(want.value_size) + "); " +
                     GateMaps::other_version_fix(pin_dir));
  if (info.max_entries < want.min_entries)
    throw InputError(from_other + " has " + std::to_string(info.max_entries) + " elements, this one expects " +
                     std::to_string(want.min_entries) + "); " + GateMaps::other_version_fix(pin_dir));
}

// Checks every map, and the tries in both slots of the outer maps.
void check_shapes(const MapFds& fds, const std::string& pin_dir) {
  for (const auto& shape : kShapes) check_shape(fds.at(shape.name).fd, shape.name, shape, pin_dir);
  for (Family fam : {Family::V4, Family::V6}) {
    const char* outer = fam == Family::V4 ? mapname::allow_v4 : mapname::allow_v6;
    std::string name = std::string(outer) + "'s trie";
    Shape trie{outer, BPF_MAP_TYPE_LPM_TRIE, uint32_t(trie_key_size(fam)), sizeof(sg_rule_ref)};
    for (uint32_t slot = 0; slot < 2; slot++)
      if (Fd inner = inner_map(fds.at(outer).fd, slot); inner.fd >= 0) check_shape(inner.fd, name, trie, pin_dir);
  }
}

}  // namespace

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
  m.fds_->max_rules = bpf_map__max_entries(bpf_object__find_map_by_name(obj, mapname::rule_counters));
  return m;
}

bool GateMaps::pinned_at(const std::string& pin_dir) {
  return ::access((live_maps_dir(pin_dir) + "/" + mapname::gate_config).c_str(), F_OK) == 0;
}

std::vector<std::string> GateMaps::map_names() { return {std::begin(mapname::kAll), std::end(mapname::kAll)}; }

std::string GateMaps::other_version_fix(const std::string& pin_dir) {
  return "restart smtpgated of this version, which replaces the gate at " + pin_dir +
         " without a gap (with --no-attach, load this version's program through bpfman first)";
}

GateMaps GateMaps::open_pinned(const std::string& pin_dir) { return open_generation(live_maps_dir(pin_dir), pin_dir); }

GateMaps GateMaps::open_generation(const std::string& maps_dir, const std::string& pin_dir) {
  MapFds fds = open_pins(maps_dir, pin_dir);
  check_shapes(fds, pin_dir);
  GateMaps m;
  m.fds_ = new Fds;
  m.fds_->max_rules = map_info(fds.at(mapname::rule_counters).fd, mapname::rule_counters).max_entries;
  m.fds_->by_name = std::move(fds);
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

int GateMaps::events_fd() const { return fds_->get(mapname::events); }

}  // namespace smtpgate
