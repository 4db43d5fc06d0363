#include "gate_program.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "error.hpp"
#include "gate_maps.hpp"
#include "fsutil.hpp"
#include "links.hpp"
#include "log.hpp"
#include "map_carry.hpp"
#include "pin_generation.hpp"
#include "smtpgate.skel.h"

namespace smtpgate {

namespace {
constexpr long kBpfFsMagic = 0xcafe4a11;

std::string kernel_release() {
  utsname u{};
  ::uname(&u);
  return u.release;
}

}  // namespace

std::string explain_load_failure(const std::string& log, int err) {
  std::string kernel = "this kernel (" + kernel_release() + ")";
  auto has = [&](const char* s) { return log.find(s) != std::string::npos; };
  if (has("not found in kernel or module BTFs")) {
    size_t p = log.find("extern (func ksym) '");
    std::string fn = p == std::string::npos ? "a kernel function"
                                            : log.substr(p + 20, log.find('\'', p + 20) - (p + 20));
    return kernel + " lacks the kernel function " + fn + " that the BPF program calls";
  }
  if (has("unknown func") || has("invalid func")) {
    size_t p = log.find("unknown func");
    if (p == std::string::npos) p = log.find("invalid func");
    std::string fn = log.substr(p, log.find('\n', p) - p);
    return kernel + " lacks a BPF helper smtpgate uses (" + fn + "); smtpgate needs Linux 6.1 or newer";
  }
  if (has("map_type") || has("Invalid map type") || (has("map '") && has("failed to create")))
    return kernel + " lacks a BPF map type smtpgate uses; smtpgate needs Linux 6.1 or newer";
  if (has("BPF program is too large") || has("too complex"))
    return "the verifier of " + kernel + " finds the smtpgate program too complex; smtpgate needs Linux 6.1 or newer";
  if (err == EPERM)
    return "loading BPF was refused (EPERM): run as root or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON";
  return "the verifier of " + kernel + " refused the smtpgate program (" + std::strerror(err) +
         "); run with -vv to see its log";
}

namespace {

// How a pinned map differs from the one this program defines ("" when not).
std::string map_difference(bpf_object* obj, bpf_map* map, int pinned_fd, const std::string& path) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(pinned_fd, &info, &len) != 0) throw SystemError("inspect " + path, errno);
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

// Refuses to reuse a pinned map whose layout differs (from another version).
void check_pin_compatible(bpf_object* obj, bpf_map* map, int pinned_fd, const std::string& path,
                          const std::string& pin_dir) {
  std::string why = map_difference(obj, map, pinned_fd, path);
  if (!why.empty())
    throw InputError("pinned map " + why + ": another version of smtpgate or other --max-rules pinned it; " +
                     GateMaps::other_version_fix(pin_dir));
}
}  // namespace

namespace {
constexpr const char* kVerifierOne = "verifier_one";

// The maps every program copy shares through pin_dir: not .rodata, .data.*
// and inner templates (their names hold a dot), nor verifier_one (each copy
// has its own; libbpf names the reused .data.verifier_one map after it).
bool shared_map(const char* name) { return !std::strchr(name, '.') && std::strcmp(name, kVerifierOne) != 0; }
}  // namespace

struct GateProgram::Impl {
  ProgramOptions opts;
  std::string maps_dir;  // opts.maps_dir, or the live generation of opts.pin_dir
  struct smtpgate_bpf* skel = nullptr;
  bool loaded = false;
  xdp_program* xdp = nullptr;

  ~Impl() {
    if (xdp) xdp_program__close(xdp);
    if (skel) smtpgate_bpf__destroy(skel);
  }

  // Maps already pinned are reused (fds handed to libbpf before load).
  void reuse_pins() {
    bpf_map* map;
    bpf_object__for_each_map(map, skel->obj) {
      const char* name = bpf_map__name(map);
      if (!shared_map(name)) continue;
      std::string path = maps_dir + "/" + name;
      int fd = bpf_obj_get(path.c_str());
      if (fd < 0) {
        if (errno == ENOENT) continue;
        throw SystemError("open pinned map " + path, errno);
      }
      try {
        check_pin_compatible(skel->obj, map, fd, path, opts.pin_dir);
      } catch (...) {
        ::close(fd);
        throw;
      }
      int rc = bpf_map__reuse_fd(map, fd);
      ::close(fd);
      if (rc) throw SystemError("reuse pinned map " + path, -rc);
    }
  }

  // Before load: the program's .data.verifier_one section becomes a map made
  // here, holding 1 and frozen, so that the verifier cannot know its value
  // (not BPF_F_RDONLY_PROG) and no one can change it (a frozen map refuses
  // every write from userspace; not mmapable, so libbpf maps no writable
  // view of it either).
  void prepare_verifier_one() {
    bpf_map* map = bpf_object__find_map_by_name(skel->obj, ".data.verifier_one");
    if (!map) throw SystemError("find the .data.verifier_one section of the smtpgate BPF object", ENOENT);
    if (bpf_map__value_size(map) != sizeof(uint32_t))
      throw SystemError(".data.verifier_one of the smtpgate BPF object is not one 32-bit value", EINVAL);
    int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, kVerifierOne, sizeof(uint32_t), sizeof(uint32_t), 1, nullptr);
    if (fd < 0) throw SystemError(std::string("create the ") + kVerifierOne + " map", errno);
    uint32_t zero = 0, one = 1;
    int rc = 0;
    if (bpf_map_update_elem(fd, &zero, &one, BPF_ANY) != 0 || bpf_map_freeze(fd) != 0) rc = -errno;
    if (rc == 0) rc = bpf_map__reuse_fd(map, fd);
    ::close(fd);
    if (rc) throw SystemError(std::string("prepare the ") + kVerifierOne + " map", -rc);
  }

  // After load: pin what was not pinned yet.
  void pin_new() {
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
};

GateProgram::GateProgram(const ProgramOptions& opts) : impl_(std::make_unique<Impl>()) {
  impl_->opts = opts;
  impl_->skel = smtpgate_bpf__open();
  if (!impl_->skel) throw SystemError("open the embedded smtpgate BPF object", errno);
  bpf_object* obj = impl_->skel->obj;
  if (int rc = bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "rule_counters"), opts.max_rules))
    throw SystemError("size rule_counters", -rc);
  // Sets of SG_RECENT_WAYS sources; a power of two, so the set is a hash's top bits.
  uint32_t sets = 1;
  while (sets * SG_RECENT_WAYS < opts.recent_sources && sets < (1u << 24)) sets <<= 1;
  if (int rc = bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "recent_refused"), sets))
    throw SystemError("size recent_refused", -rc);
  if (opts.max_rules < 2 || opts.max_rules > SG_MAX_RULES_LIMIT)
    throw InputError("max_rules " + std::to_string(opts.max_rules) + " is outside 2.." +
                     std::to_string(SG_MAX_RULES_LIMIT));
  if (opts.table_chunks < 2 || opts.table_chunks > (1u << 24))
    throw InputError("table_chunks " + std::to_string(opts.table_chunks) + " is outside 2..16777216");
  for (const char* t : {"table_v4", "table_v6"})
    if (int rc = bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, t),
                                          SG_TABLE_FIRST_CHUNK + (opts.table_chunks & ~1u)))
      throw SystemError(std::string("size ") + t, -rc);
  impl_->skel->rodata->no_ethernet = opts.no_ethernet;
  if (opts.pin_dir.empty()) return;
  impl_->maps_dir = opts.maps_dir.empty() ? live_maps_dir(opts.pin_dir) : opts.maps_dir;
  impl_->reuse_pins();
}

GateProgram::~GateProgram() = default;
GateProgram::GateProgram(GateProgram&&) noexcept = default;
GateProgram& GateProgram::operator=(GateProgram&&) noexcept = default;

void GateProgram::load() {
  impl_->prepare_verifier_one();
  LibbpfCapture capture;
  int rc = smtpgate_bpf__load(impl_->skel);
  if (rc) {
    spdlog::debug("libbpf:\n{}", capture.text());
    throw SystemError(explain_load_failure(capture.text(), -rc), -rc);
  }
  impl_->loaded = true;
  impl_->pin_new();
}

int GateProgram::prog_fd() const { return bpf_program__fd(impl_->skel->progs.smtpgate_xdp); }

bpf_object* GateProgram::object() const { return impl_->skel->obj; }

void probe_object_file(const std::string& path) {
  LibbpfCapture capture;
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj) throw SystemError("open BPF object " + path, errno);
  int rc = bpf_object__load(obj);
  bpf_object__close(obj);
  if (rc) throw SystemError(explain_load_failure(capture.text(), -rc), -rc);
}

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
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      if (errno == ENOENT) return path + " is missing";
      throw SystemError("open pinned map " + path, errno);
    }
    std::string why;
    try {
      why = map_difference(program.object(), map, fd, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
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
  MapMemory tries{"allow_v4+allow_v6 tries", 0, true};
  bpf_map* map;
  bpf_object__for_each_map(map, program.object()) {
    std::string name = bpf_map__name(map);
    if (name.find('.') != std::string::npos) continue;  // .rodata and the like: a page
    uint64_t entries = bpf_map__max_entries(map), value = up(bpf_map__value_size(map), 8);
    switch (bpf_map__type(map)) {
      case BPF_MAP_TYPE_ARRAY:
        out.push_back({name, up(entries * value, 4096)});
        break;
      case BPF_MAP_TYPE_PERCPU_ARRAY:
        out.push_back({name, entries * value * cpus});
        break;
      case BPF_MAP_TYPE_RINGBUF:
        out.push_back({name, entries});
        break;
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
      default:
        out.push_back({name, up(entries * (bpf_map__key_size(map) + value), 4096)});
    }
  }
  out.push_back(tries);
  return out;
}

void ensure_pin_dir(const std::string& dir) {
  const std::string root = "/sys/fs/bpf";
  if (dir.rfind(root, 0) == 0) {
    struct statfs st{};
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

namespace {

int ifindex_of(const std::string& ifname) {
  unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) throw InputError("no network interface named '" + ifname + "': check 'ip link'");
  return static_cast<int>(idx);
}

// Map ids a loaded program uses.
std::vector<uint32_t> prog_map_ids(uint32_t prog_id) {
  int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) return {};
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0 || info.nr_map_ids == 0) {
    ::close(fd);
    return {};
  }
  std::vector<uint32_t> ids(info.nr_map_ids);
  uint32_t n = info.nr_map_ids;
  info = {};
  info.nr_map_ids = n;
  info.map_ids = reinterpret_cast<uint64_t>(ids.data());
  len = sizeof(info);
  int rc = bpf_obj_get_info_by_fd(fd, &info, &len);
  ::close(fd);
  if (rc != 0) return {};
  ids.resize(std::min(n, info.nr_map_ids));
  return ids;
}

uint32_t pinned_map_id(const std::string& pin_dir, const char* name) {
  int fd = bpf_obj_get((live_maps_dir(pin_dir) + "/" + name).c_str());
  if (fd < 0) return 0;
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  uint32_t id = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
  ::close(fd);
  return id;
}

struct Multiprog {
  xdp_multiprog* mp = nullptr;
  explicit Multiprog(int ifindex) {
    mp = xdp_multiprog__get_from_ifindex(ifindex);
    if (libxdp_get_error(mp)) mp = nullptr;
  }
  ~Multiprog() {
    if (mp) xdp_multiprog__close(mp);
  }
  // smtpgate's program on the interface, if any.
  xdp_program* find() const {
    if (!mp) return nullptr;
    if (xdp_multiprog__is_legacy(mp)) {
      xdp_program* main = xdp_multiprog__main_prog(mp);
      return main && std::strcmp(xdp_program__name(main), kProgramName) == 0 ? main : nullptr;
    }
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
      if (std::strcmp(xdp_program__name(p), kProgramName) == 0) return p;
    return nullptr;
  }
};

// Why libxdp's dispatcher did not load, from its log: its compatibility check
// loads a freplace (BPF_PROG_TYPE_EXT) program, which some kernels refuse.
std::string dispatcher_refusal(const std::string& log) {
  const std::string check = "Compatibility check for dispatcher program failed: ";
  size_t p = log.find(check);
  if (p == std::string::npos) return "";
  p += check.size();
  return " (it refused the dispatcher's freplace program: " + log.substr(p, log.find('\n', p) - p) + ")";
}

std::string mode_name(xdp_attach_mode m) {
  switch (m) {
    case XDP_MODE_NATIVE: return "native";
    case XDP_MODE_SKB: return "skb";
    case XDP_MODE_HW: return "hw";
    default: return "";
  }
}

}  // namespace

ProgramRunStats program_run_stats(uint32_t prog_id) {
  int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) return {};
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  int rc = bpf_obj_get_info_by_fd(fd, &info, &len);
  ::close(fd);
  if (rc != 0) return {};
  return {info.run_time_ns, info.run_cnt};
}

namespace {
std::string tag_of(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return "";
  std::string hex;
  for (unsigned char b : info.tag) hex += fmt::format("{:02x}", b);
  return hex;
}
}  // namespace

std::string program_tag(uint32_t prog_id) {
  int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) return "";
  std::string tag = tag_of(fd);
  ::close(fd);
  return tag;
}

std::string this_build_program_tag(const ProgramOptions& opts) {
  GateProgram program(opts);
  program.load();
  std::string tag = tag_of(program.prog_fd());
  if (tag.empty()) throw SystemError("read the tag of this version's program", errno);
  return tag;
}

AttachedInfo query_attached_now(const std::string& ifname, const std::string& pin_dir, int ifindex);

namespace {
// libxdp 1.3 (Debian 12's) leaks the file descriptors of the programs it
// reads back from the kernel in xdp_multiprog__get_from_ifindex, a set per
// call under its dispatcher (fixed in libxdp 1.4, xdp-tools #345). A scrape
// asks after every interface, so a daemon under a dispatcher ran out of file
// descriptors within minutes. The answer is kept per interface until what
// the kernel runs there changes: bpf_xdp_query, which opens nothing, gives
// the program ids (a change of the dispatcher's programs is a new dispatcher,
// a new id), and the pinned configuration map's id tells a new generation.
struct AttachedKey {
  int ifindex;
  std::string pin_dir;
  uint32_t prog_id, drv_id, skb_id, hw_id, config_id;
  bool operator==(const AttachedKey&) const = default;
};
std::mutex attached_mu;
std::vector<std::pair<AttachedKey, AttachedInfo>> attached_cache;  // a few interfaces
}  // namespace

AttachedInfo query_attached(const std::string& ifname, const std::string& pin_dir) {
  int ifindex = ifindex_of(ifname);
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  bool known = bpf_xdp_query(ifindex, 0, &q) == 0;
  AttachedKey key{ifindex, pin_dir, q.prog_id, q.drv_prog_id, q.skb_prog_id, q.hw_prog_id,
                  pin_dir.empty() ? 0 : pinned_map_id(pin_dir, kConfigMapName)};
  if (known) {
    std::lock_guard<std::mutex> lock(attached_mu);
    for (const auto& [k, v] : attached_cache)
      if (k == key && v.ifname == ifname) return v;
  }
  AttachedInfo info = query_attached_now(ifname, pin_dir, ifindex);
  if (known) {
    std::lock_guard<std::mutex> lock(attached_mu);
    std::erase_if(attached_cache, [&](const auto& kv) { return kv.first.ifindex == ifindex && kv.first.pin_dir == pin_dir; });
    if (attached_cache.size() >= 64) attached_cache.erase(attached_cache.begin());
    attached_cache.emplace_back(key, info);
  }
  return info;
}

AttachedInfo query_attached_now(const std::string& ifname, const std::string& pin_dir, int ifindex) {
  AttachedInfo info;
  info.ifname = ifname;
  info.ifindex = ifindex;
  Multiprog m(info.ifindex);
  if (!m.mp) return info;
  info.dispatcher = !xdp_multiprog__is_legacy(m.mp);
  info.mode = mode_name(xdp_multiprog__attach_mode(m.mp));
  if (info.dispatcher) {
    for (xdp_program* p = xdp_multiprog__next_prog(nullptr, m.mp); p; p = xdp_multiprog__next_prog(p, m.mp))
      if (std::strcmp(xdp_program__name(p), kProgramName) != 0) info.others.push_back(xdp_program__name(p));
  }
  if (xdp_program* p = m.find()) {
    info.attached = true;
    info.prog_id = xdp_program__id(p);
    if (!pin_dir.empty()) {
      uint32_t config_id = pinned_map_id(pin_dir, kConfigMapName);
      for (uint32_t id : prog_map_ids(info.prog_id))
        if (config_id && id == config_id) info.uses_pinned_maps = true;
    }
  } else if (!info.dispatcher) {
    if (xdp_program* main = xdp_multiprog__main_prog(m.mp)) info.others.push_back(xdp_program__name(main));
  }
  if (!info.attached && info.others.empty()) info.mode.clear();
  return info;
}

XdpMode attach(const ProgramOptions& opts, const std::string& ifname, XdpMode mode) {
  int ifindex = ifindex_of(ifname);
  AttachedInfo before = query_attached(ifname, opts.pin_dir);
  // Another program attached alone cannot be moved into a dispatcher: libxdp
  // would refuse (EBUSY), and replacing it would silently remove its filter.
  if (!before.attached && !before.dispatcher && !before.others.empty())
    throw SystemError(ifname + " already runs the XDP program " + before.others[0] +
                          ", attached alone rather than through libxdp's dispatcher, so smtpgate cannot share " +
                          ifname + "; detach " + before.others[0] +
                          " first, or load it through libxdp on a kernel that runs the dispatcher (docs/kernels.md)",
                      EBUSY);

  // Each interface runs its own copy of the program, told where its packets'
  // IP header starts.
  ProgramOptions own = opts;
  own.no_ethernet = link_without_ethernet(ifname);
  auto try_mode = [&](XdpMode m) -> int {
    GateProgram prog(own);
    xdp_attach_mode xm = m == XdpMode::Native ? XDP_MODE_NATIVE : XDP_MODE_SKB;
    if (before.attached && !before.dispatcher) {
      // A lone (legacy) smtpgate program: swap it atomically for the new one.
      prog.load();
      LIBBPF_OPTS(bpf_xdp_attach_opts, xopts, .old_prog_fd = bpf_prog_get_fd_by_id(before.prog_id));
      uint32_t flags = XDP_FLAGS_REPLACE | (m == XdpMode::Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
      int rc = bpf_xdp_attach(ifindex, prog.prog_fd(), flags, &xopts);
      if (xopts.old_prog_fd >= 0) ::close(xopts.old_prog_fd);
      return rc;
    }
    prog.impl_->prepare_verifier_one();
    LibbpfCapture capture;
    DECLARE_LIBXDP_OPTS(xdp_program_opts, popts, .obj = prog.object(), .prog_name = kProgramName);
    xdp_program* xp = xdp_program__create(&popts);
    if (long err = libxdp_get_error(xp)) throw SystemError("prepare the XDP program for " + ifname, err);
    prog.impl_->xdp = xp;
    int rc = xdp_program__attach(xp, ifindex, xm, 0);
    if (rc) {
      spdlog::debug("libxdp:\n{}", capture.text());
      if (capture.text().find("verifier") != std::string::npos || capture.text().find("failed to load") != std::string::npos) {
        if (rc != -EOPNOTSUPP && rc != -EBUSY && rc != -EEXIST)
          throw SystemError(explain_load_failure(capture.text(), -rc), -rc);
      }
      return rc;
    }
    prog.impl_->loaded = true;
    prog.impl_->pin_new();
    if (capture.text().find("Falling back to loading single prog") != std::string::npos)
      spdlog::warn("{}: libxdp's dispatcher does not load on this kernel{}; attached alone, "
                   "so no other XDP program can share {}", ifname, dispatcher_refusal(capture.text()), ifname);
    if (before.attached) {
      // Dispatcher: the new program runs beside the old one; remove the old.
      Multiprog m(ifindex);
      for (xdp_program* p = m.mp ? xdp_multiprog__next_prog(nullptr, m.mp) : nullptr; p;
           p = xdp_multiprog__next_prog(p, m.mp))
        if (xdp_program__id(p) == before.prog_id) {
          xdp_program__detach(p, ifindex, xdp_multiprog__attach_mode(m.mp), 0);
          break;
        }
    }
    return 0;
  };

  int rc = try_mode(mode);
  if (rc == 0) return mode;
  if (mode == XdpMode::Native) {
    spdlog::warn("{}: native XDP refused ({}); falling back to skb (generic) mode, which is slower",
                 ifname, std::strerror(-rc));
    rc = try_mode(XdpMode::Skb);
    if (rc == 0) return XdpMode::Skb;
  }
  throw SystemError("attach smtpgate to " + ifname, -rc);
}

bool detach(const std::string& ifname) {
  int ifindex = ifindex_of(ifname);
  Multiprog m(ifindex);
  xdp_program* p = m.find();
  if (!p) return false;
  int rc = xdp_program__detach(p, ifindex, xdp_multiprog__attach_mode(m.mp), 0);
  if (rc) throw SystemError("detach smtpgate from " + ifname, -rc);
  return true;
}

}  // namespace smtpgate
