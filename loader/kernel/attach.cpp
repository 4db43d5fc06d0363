// Attaching the program to an interface through libxdp, detaching it, and
// asking what an interface runs (attach, detach, query_attached, declared in
// gate_program.hpp).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <xdp/libxdp.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "bpf_info.hpp"
#include "error.hpp"
#include "fd.hpp"
#include "gate_program.hpp"
#include "gate_program_impl.hpp"
#include "links.hpp"
#include "log.hpp"
#include "map_names.hpp"
#include "pin_generation.hpp"

namespace smtpgate {

namespace {

int ifindex_of(const std::string& ifname) {
  unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) throw InputError("no network interface named '" + ifname + "': check 'ip link'");
  return static_cast<int>(idx);
}

// The id of the map `name` pinned in pin_dir's live generation; 0 when none.
uint32_t pinned_map_id(const std::string& pin_dir, const char* name) {
  Fd pinned(bpf_obj_get((live_maps_dir(pin_dir) + "/" + name).c_str()));
  if (pinned.fd < 0) return 0;
  auto info = try_map_info(pinned.fd);
  return info ? info->id : 0;
}

// libxdp's view of the XDP programs on one interface; none when it has none.
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

// What the kernel reports now, asked through libxdp.
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
      uint32_t config_id = pinned_map_id(pin_dir, mapname::gate_config);
      for (uint32_t id : prog_map_ids(info.prog_id))
        if (config_id && id == config_id) info.uses_pinned_maps = true;
    }
  } else if (!info.dispatcher) {
    if (xdp_program* main = xdp_multiprog__main_prog(m.mp)) info.others.push_back(xdp_program__name(main));
  }
  if (!info.attached && info.others.empty()) info.mode.clear();
  return info;
}

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
  AttachedKey key{ifindex,
                  pin_dir,
                  q.prog_id,
                  q.drv_prog_id,
                  q.skb_prog_id,
                  q.hw_prog_id,
                  pin_dir.empty() ? 0 : pinned_map_id(pin_dir, mapname::gate_config)};
  if (known) {
    std::lock_guard<std::mutex> lock(attached_mu);
    for (const auto& [k, v] : attached_cache)
      if (k == key && v.ifname == ifname) return v;
  }
  AttachedInfo info = query_attached_now(ifname, pin_dir, ifindex);
  if (known) {
    std::lock_guard<std::mutex> lock(attached_mu);
    std::erase_if(attached_cache,
                  [&](const auto& kv) { return kv.first.ifindex == ifindex && kv.first.pin_dir == pin_dir; });
    if (attached_cache.size() >= 64) attached_cache.erase(attached_cache.begin());
    attached_cache.emplace_back(key, info);
  }
  return info;
}

namespace {
// Another program attached alone cannot be moved into a dispatcher: libxdp
// would refuse (EBUSY), and replacing it would silently remove its filter.
void refuse_lone_other(const std::string& ifname, const AttachedInfo& before) {
  if (before.attached || before.dispatcher || before.others.empty()) return;
  throw SystemError(ifname + " already runs the XDP program " + before.others[0] +
                        ", attached alone rather than through libxdp's dispatcher, so smtpgate cannot share " + ifname +
                        "; detach " + before.others[0] +
                        " first, or load it through libxdp on a kernel that runs the dispatcher (docs/kernels.md)",
                    EBUSY);
}

// Detaches the program prog_id from the dispatcher on ifindex.
void remove_from_dispatcher(int ifindex, uint32_t prog_id) {
  Multiprog m(ifindex);
  for (xdp_program* p = m.mp ? xdp_multiprog__next_prog(nullptr, m.mp) : nullptr; p;
       p = xdp_multiprog__next_prog(p, m.mp))
    if (xdp_program__id(p) == prog_id) {
      xdp_program__detach(p, ifindex, xdp_multiprog__attach_mode(m.mp), 0);
      return;
    }
}
}  // namespace

int GateProgram::Impl::replace_lone(int ifindex, uint32_t old_prog_id, XdpMode mode) {
  load();
  Fd old(bpf_prog_get_fd_by_id(old_prog_id));
  LIBBPF_OPTS(bpf_xdp_attach_opts, xopts, .old_prog_fd = old.fd);
  uint32_t flags = XDP_FLAGS_REPLACE | (mode == XdpMode::Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
  return bpf_xdp_attach(ifindex, prog_fd(), flags, &xopts);
}

int GateProgram::Impl::attach_with_libxdp(const std::string& ifname, int ifindex, XdpMode mode,
                                          const AttachedInfo& before) {
  prepare_verifier_one();
  LibbpfCapture capture;
  DECLARE_LIBXDP_OPTS(xdp_program_opts, popts, .obj = object(), .prog_name = kProgramName);
  xdp_program* xp = xdp_program__create(&popts);
  if (long err = libxdp_get_error(xp)) throw SystemError("prepare the XDP program for " + ifname, err);
  xdp = xp;
  int rc = xdp_program__attach(xp, ifindex, mode == XdpMode::Native ? XDP_MODE_NATIVE : XDP_MODE_SKB, 0);
  if (rc) {
    spdlog::debug("libxdp:\n{}", capture.text());
    const std::string& log = capture.text();
    bool load_failed = log.find("verifier") != std::string::npos || log.find("failed to load") != std::string::npos;
    if (load_failed && rc != -EOPNOTSUPP && rc != -EBUSY && rc != -EEXIST)
      throw SystemError(explain_load_failure(log, -rc), -rc);
    return rc;
  }
  loaded = true;
  pin_new();
  if (capture.text().find("Falling back to loading single prog") != std::string::npos)
    spdlog::warn(
        "{}: libxdp's dispatcher does not load on this kernel{}; attached alone, "
        "so no other XDP program can share {}",
        ifname, dispatcher_refusal(capture.text()), ifname);
  // Under the dispatcher the new program runs beside the old one: the old goes.
  if (before.attached) remove_from_dispatcher(ifindex, before.prog_id);
  return 0;
}

XdpMode attach(const ProgramOptions& opts, const std::string& ifname, XdpMode mode) {
  int ifindex = ifindex_of(ifname);
  AttachedInfo before = query_attached(ifname, opts.pin_dir);
  refuse_lone_other(ifname, before);

  // Each interface runs its own copy of the program, told where its packets'
  // IP header starts.
  ProgramOptions own = opts;
  own.no_ethernet = link_without_ethernet(ifname);
  auto try_mode = [&](XdpMode m) -> int {
    GateProgram prog(own);
    if (before.attached && !before.dispatcher) return prog.impl_->replace_lone(ifindex, before.prog_id, m);
    return prog.impl_->attach_with_libxdp(ifname, ifindex, m, before);
  };

  int rc = try_mode(mode);
  if (rc == 0) return mode;
  if (mode == XdpMode::Native) {
    spdlog::warn("{}: native XDP refused ({}); falling back to skb (generic) mode, which is slower", ifname,
                 std::strerror(-rc));
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
