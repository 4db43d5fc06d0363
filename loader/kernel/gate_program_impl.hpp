// GateProgram's insides, shared by gate_program.cpp (open, size, reuse pins,
// load) and attach.cpp (attach through libxdp, or replace a lone program).
#pragma once

#include <string>

#include "gate_program.hpp"

struct xdp_program;

namespace smtpgate {

struct GateProgram::Impl {
  ProgramOptions opts;
  std::string maps_dir;  // opts.maps_dir, or the live generation of opts.pin_dir
  struct smtpgate_bpf* skel = nullptr;
  bool loaded = false;
  xdp_program* xdp = nullptr;

  ~Impl();

  /// Before load: every shared map already pinned in maps_dir is handed to
  /// libbpf to use instead of a new one, after smtpgate's own check that it
  /// is of this program's layout (pinned_layout_difference).
  void reuse_pins();
  /// Before load: the program's .data.verifier_one section becomes a frozen
  /// map holding 1 (see gate_program.cpp).
  void prepare_verifier_one();
  /// After load: pins the shared maps not pinned yet.
  void pin_new();
  /// prepare_verifier_one, load through the skeleton (a refusal explained in
  /// one line), pin_new.
  void load();
  int prog_fd() const;
  bpf_object* object() const;

  /// attach()'s two ways, for one mode; 0 or a negative errno. A lone
  /// (legacy) smtpgate program `old_prog_id` is swapped atomically for this one.
  int replace_lone(int ifindex, uint32_t old_prog_id, XdpMode mode);
  /// Attaches through libxdp (beside other programs under its dispatcher),
  /// then removes the smtpgate program `before` names, if any.
  int attach_with_libxdp(const std::string& ifname, int ifindex, XdpMode mode, const AttachedInfo& before);
};

}  // namespace smtpgate
