#include "upgrade.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstring>

#include "config.hpp"
#include "error.hpp"
#include "fd.hpp"
#include "map_carry.hpp"
#include "map_names.hpp"
#include "pin_generation.hpp"

namespace smtpgate {

namespace {

// The maps whose contents outlive a replacement, and what their keys mean.
struct Carried {
  const char* map;
  KeyMeaning keys;
};
constexpr Carried kCarried[] = {
    {mapname::gate_config, KeyMeaning::Index},      // action, ports, budget; the publish counter
    {mapname::rule_counters, KeyMeaning::Index},    // by rule id, kept by the publish
    {mapname::packet_counters, KeyMeaning::Shape},  // by (reason, verdict)
    {mapname::recent_refused, KeyMeaning::Shape},   // sets by a hash of the source
    {mapname::cpu_state, KeyMeaning::Index},        // the suppressed and unrecorded counts
};

void carry_all(const std::string& from_dir, const std::string& to_dir) {
  std::string carried;
  for (const Carried& c : kCarried) {
    Fd from(bpf_obj_get((from_dir + "/" + c.map).c_str()));
    if (from.fd < 0) {
      spdlog::warn("upgrade: {} not carried over: the running gate has no such map", c.map);
      continue;
    }
    Fd to(bpf_obj_get((to_dir + "/" + c.map).c_str()));
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

// An interface whose program was swapped, and the program it had.
struct Swapped {
  std::string ifname;
  AttachedInfo before;
  Fd old_prog;
};

// Under libxdp's dispatcher: the old program added again, then the new one
// removed, as attach() swaps them the other way.
int swap_back_dispatched(const Swapped& s, const AttachedInfo& now) {
  xdp_program* old = xdp_program__from_fd(::fcntl(s.old_prog.fd, F_DUPFD_CLOEXEC, 0));
  if (long err = libxdp_get_error(old)) return int(err);
  xdp_attach_mode mode = now.mode == "skb" ? XDP_MODE_SKB : XDP_MODE_NATIVE;
  int rc = xdp_program__attach(old, now.ifindex, mode, 0);
  xdp_program__close(old);
  if (rc) return rc;
  xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(now.ifindex);
  if (libxdp_get_error(mp)) return -ENOENT;
  for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
    if (xdp_program__id(p) == now.prog_id) {
      rc = xdp_program__detach(p, now.ifindex, mode, 0);
      break;
    }
  xdp_multiprog__close(mp);
  return rc;
}

// Puts the old program back where the new one was swapped in, by the same
// kind of atomic swap.
void swap_back(const Swapped& s) {
  AttachedInfo now = query_attached(s.ifname);
  int rc;
  if (s.before.dispatcher) {
    rc = swap_back_dispatched(s, now);
  } else {
    Fd cur(bpf_prog_get_fd_by_id(now.prog_id));
    LIBBPF_OPTS(bpf_xdp_attach_opts, xopts, .old_prog_fd = cur.fd);
    uint32_t flags = XDP_FLAGS_REPLACE | (now.mode == "skb" ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
    rc = bpf_xdp_attach(now.ifindex, s.old_prog.fd, flags, &xopts) ? -errno : 0;
  }
  if (rc)
    spdlog::error("upgrade: could not put the old program back on {}: {}", s.ifname, std::strerror(-rc));
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
    // The configuration, carried by name, written again by this version:
    // its port bitmap and its recently-refused table's size are this
    // version's, whatever the running gate's were.
    if (GateConfig c = maps.config(); !c.ports.empty()) maps.set_config(c);
    running_allowlist_ = GateMaps::allowlist_at(old_dir_, maps.active_slot());
    if (running_allowlist_)  // ids past a smaller max_rules are given afresh
      std::erase_if(*running_allowlist_, [&](const TrieEntry& e) { return e.rule_id >= maps.max_rules(); });
    else
      spdlog::warn(
          "upgrade: the running allowlist's tries have another layout: rule ids are assigned afresh "
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
  // Every interface looked up first: a missing one fails before any swap.
  for (const auto& ifname : interfaces) query_attached(ifname, opts_.pin_dir);
  std::vector<Swapped> swapped;
  try {
    for (const auto& ifname : interfaces) {
      AttachedInfo before = query_attached(ifname, opts_.pin_dir);
      Fd old_prog(before.attached ? bpf_prog_get_fd_by_id(before.prog_id) : -1);
      XdpMode used = attach(o, ifname, mode);
      spdlog::info("{}: program swapped for this version's ({} mode, was program id {})", ifname, to_string(used),
                   before.prog_id);
      if (before.attached) swapped.push_back(Swapped{ifname, before, std::move(old_prog)});
    }
  } catch (...) {
    for (auto it = swapped.rbegin(); it != swapped.rend(); ++it) swap_back(*it);
    throw;
  }
  make_live(opts_.pin_dir, new_dir_);
  committed_ = true;
  // The old generation, and any a replacement killed half-way left.
  retire_all_but(opts_.pin_dir, new_dir_);
  spdlog::warn("upgrade: the gate now runs this version's program and maps ({}); the old ones are unpinned", new_dir_);
}

}  // namespace smtpgate
