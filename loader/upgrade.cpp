#include "upgrade.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "config.hpp"
#include "error.hpp"
#include "map_carry.hpp"
#include "pin_generation.hpp"

namespace smtpgate {

namespace {

struct OwnedFd {
  int fd = -1;
  explicit OwnedFd(int f) : fd(f) {}
  OwnedFd(OwnedFd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  OwnedFd(const OwnedFd&) = delete;
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
};

// The maps whose contents outlive a replacement, and what their keys mean.
struct Carried {
  const char* map;
  KeyMeaning keys;
};
constexpr Carried kCarried[] = {
    {kConfigMapName, KeyMeaning::Index},        // action, ports, budget; the publish counter
    {"rule_counters", KeyMeaning::Index},       // by rule id, kept by the publish
    {"packet_counters", KeyMeaning::Shape},     // by (reason, verdict)
    {"recent_refused", KeyMeaning::Shape},      // sets by a hash of the source
    {"cpu_state", KeyMeaning::Index},           // the suppressed and unrecorded counts
};

void carry_all(const std::string& from_dir, const std::string& to_dir) {
  std::string carried;
  for (const Carried& c : kCarried) {
    OwnedFd from(bpf_obj_get((from_dir + "/" + c.map).c_str()));
    if (from.fd < 0) {
      spdlog::warn("upgrade: {} not carried over: the running gate has no such map", c.map);
      continue;
    }
    OwnedFd to(bpf_obj_get((to_dir + "/" + c.map).c_str()));
    if (to.fd < 0) throw SystemError("open the new gate's " + std::string(c.map), errno);
    CarryResult r = carry_map(from.fd, to.fd, c.keys);
    if (r.carried)
      carried += std::string(carried.empty() ? "" : ", ") + c.map + " (" + std::to_string(r.keys) + " entries" +
                 (r.fields ? ", " + std::to_string(r.fields) + " fields by name)" : ")");
    else
      spdlog::warn("upgrade: {} not carried over: {}", c.map, r.skipped);
  }
  if (!carried.empty()) spdlog::warn("upgrade: carried over {}", carried);
}

int ifindex_of(const std::string& ifname) {
  int idx = int(if_nametoindex(ifname.c_str()));
  if (!idx) throw InputError("no network interface named '" + ifname + "': check 'ip link'");
  return idx;
}

// An interface whose program was swapped, and the program it had.
struct Swapped {
  std::string ifname;
  AttachedInfo before;
  OwnedFd old_prog;
};

// Puts the old program back where the new one was swapped in: one atomic
// replace again. libxdp's dispatcher has no such swap; there the new program
// stays (a complete gate) and the failure is named.
void swap_back(const Swapped& s) {
  if (s.before.dispatcher || s.old_prog.fd < 0) {
    spdlog::error("upgrade: {} keeps the new program (libxdp's dispatcher cannot swap back)", s.ifname);
    return;
  }
  AttachedInfo now = query_attached(s.ifname);
  OwnedFd cur(bpf_prog_get_fd_by_id(now.prog_id));
  LIBBPF_OPTS(bpf_xdp_attach_opts, xopts, .old_prog_fd = cur.fd);
  uint32_t flags = XDP_FLAGS_REPLACE | (now.mode == "skb" ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
  if (bpf_xdp_attach(ifindex_of(s.ifname), s.old_prog.fd, flags, &xopts) != 0)
    spdlog::error("upgrade: could not put the old program back on {}: {}", s.ifname, std::strerror(errno));
  else
    spdlog::warn("upgrade: {} runs the old program again", s.ifname);
}

}  // namespace

NextGeneration::NextGeneration(const ProgramOptions& opts) : opts_(opts) {
  old_dir_ = live_maps_dir(opts.pin_dir);
  new_dir_ = new_generation_dir(opts.pin_dir);
  try {
    ProgramOptions o = opts;
    o.maps_dir = new_dir_;
    GateProgram seed(o);
    seed.load();  // pins every map in the new generation
    carry_all(old_dir_, new_dir_);
    GateMaps maps = open();
    running_allowlist_ = GateMaps::allowlist_at(old_dir_, maps.active_slot());
    if (running_allowlist_)  // ids past a smaller max_rules are given afresh
      std::erase_if(*running_allowlist_, [&](const TrieEntry& e) { return e.rule_id >= maps.max_rules(); });
    else
      spdlog::warn("upgrade: the running allowlist's tries have another layout: rule ids are assigned afresh "
                   "and per-rule counters start at zero");
  } catch (...) {
    retire_generation(opts.pin_dir, new_dir_);
    throw;
  }
}

NextGeneration::~NextGeneration() {
  if (!committed_) retire_generation(opts_.pin_dir, new_dir_);
}

GateMaps NextGeneration::open() const { return GateMaps::open_generation(new_dir_, opts_.pin_dir); }

void NextGeneration::switch_over(const std::vector<std::string>& interfaces, XdpMode mode) {
  ProgramOptions o = opts_;
  o.maps_dir = new_dir_;
  std::vector<Swapped> swapped;
  try {
    for (const auto& ifname : interfaces) {
      AttachedInfo before = query_attached(ifname, opts_.pin_dir);
      OwnedFd old_prog(before.attached ? bpf_prog_get_fd_by_id(before.prog_id) : -1);
      XdpMode used = attach(o, ifname, mode);
      spdlog::info("{}: program swapped for this version's ({} mode, was program id {})", ifname,
                   to_string(used), before.prog_id);
      if (before.attached) swapped.push_back(Swapped{ifname, before, std::move(old_prog)});
    }
  } catch (...) {
    for (auto it = swapped.rbegin(); it != swapped.rend(); ++it) swap_back(*it);
    throw;
  }
  make_live(opts_.pin_dir, new_dir_);
  committed_ = true;
  retire_generation(opts_.pin_dir, old_dir_);
  spdlog::warn("upgrade: the gate now runs this version's program and maps ({}); the old ones are unpinned",
               new_dir_);
}

}  // namespace smtpgate
