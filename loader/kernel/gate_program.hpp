// The XDP program object: open the skeleton, size and reuse pinned maps, load
// (gate_program.cpp), attach, replace and detach through libxdp (attach.cpp),
// tell a loaded program's identity (program_identity.cpp) and a refused
// load's cause (load_failure.cpp). The only place that knows how the program
// is loaded; map contents are GateMaps' business.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "smtpgate_abi.h"

struct bpf_object;
struct smtpgate_bpf;  // generated skeleton (bpf/smtpgate.skel.h)

namespace smtpgate {

enum class XdpMode { Native, Skb };

struct ProgramOptions {
  /// Pin directory: maps already pinned there are reused (after a layout check),
  /// the others are pinned there after load. Empty: nothing pinned (tests, bench).
  std::string pin_dir;
  /// Where the maps are pinned and reused: empty for the live generation of
  /// pin_dir (pin_generation.hpp); a new generation's directory in an upgrade.
  std::string maps_dir;
  /// Size of the per-rule counter table; must match an existing pin.
  uint32_t max_rules = SG_DEFAULT_MAX_RULES;
  /// Sources the recently-refused table holds per CPU (rounded up to a power
  /// of two times SG_RECENT_WAYS).
  uint32_t recent_sources = SG_DEFAULT_RECENT_SOURCES;
  /// Chunks (1 KiB each) in each family's stride-table pool, shared by the
  /// two allowlist slots. An allowlist that needs more is still exact: the
  /// blocks that do not fit are looked up in the LPM trie.
  uint32_t table_chunks = SG_DEFAULT_TABLE_CHUNKS;
  /// The device has no Ethernet header: packets start at the IP header (an
  /// IP tunnel). attach() sets it from the interface's link type.
  bool no_ethernet = false;
};

/// Owns one opened (and, after load() or attach(), loaded) smtpgate object.
/// Not copyable; movable.
class GateProgram {
 public:
  /// Opens the embedded object and prepares map reuse; does not load yet.
  explicit GateProgram(const ProgramOptions& opts);
  ~GateProgram();
  GateProgram(GateProgram&&) noexcept;
  GateProgram& operator=(GateProgram&&) noexcept;
  GateProgram(const GateProgram&) = delete;
  GateProgram& operator=(const GateProgram&) = delete;

  /// Loads into the kernel without attaching (BPF_PROG_TEST_RUN, bench).
  /// A verifier refusal becomes one line naming the missing kernel feature.
  void load();
  /// The XDP program's fd; valid after load().
  int prog_fd() const;
  /// The libbpf object, for GateMaps::from_object.
  bpf_object* object() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend XdpMode attach(const ProgramOptions&, const std::string&, XdpMode);
};

/// What is attached to one interface, as the kernel reports it.
struct AttachedInfo {
  std::string ifname;
  int ifindex = 0;
  bool attached = false;            // an smtpgate program is on this interface
  std::string mode;                 // "native", "skb", "" when not attached
  uint32_t prog_id = 0;             // smtpgate's program id
  bool dispatcher = false;          // attached through libxdp's multiprog dispatcher
  std::vector<std::string> others;  // other XDP programs on the interface
  bool uses_pinned_maps = false;    // its maps are the ones pinned in pin_dir
};

/// Loads a fresh program (maps reused from opts.pin_dir) and attaches it to an
/// interface through libxdp (its dispatcher when the kernel allows it, so other
/// XDP programs stay), falling back from native to skb mode with a warning when
/// the driver refuses native. An smtpgate program already there is replaced
/// without a moment where the interface is unguarded. Returns the mode used.
XdpMode attach(const ProgramOptions& opts, const std::string& ifname, XdpMode mode);
/// Detaches smtpgate from the interface; other XDP programs stay. Returns false
/// when no smtpgate program was attached there.
bool detach(const std::string& ifname);
/// Reports what is attached to the interface; pin_dir (may be empty) is used to
/// tell whether the attached program uses the pinned maps.
AttachedInfo query_attached(const std::string& ifname, const std::string& pin_dir = "");
/// The kernel's own accounting of a loaded program, kept only while
/// kernel.bpf_stats_enabled is on (or a BPF_ENABLE_STATS descriptor is held):
/// time spent in it and runs counted. Zeros when stats were never on or the
/// program is gone.
struct ProgramRunStats {
  uint64_t run_time_ns = 0;
  uint64_t run_cnt = 0;
};
ProgramRunStats program_run_stats(uint32_t prog_id);
/// The kernel's tag of a loaded program (bpf_prog_info.tag, in hex): a hash
/// of its instructions with their map references zeroed, so every load of
/// one build's program has the same tag whatever maps it uses, and other
/// code has another. "" when the program is gone.
std::string program_tag(uint32_t prog_id);
/// The tag this build's program has: loads it once with opts (its maps
/// reused from opts.pin_dir, which must hold them all), attaching nothing.
std::string this_build_program_tag(const ProgramOptions& opts);
/// The program's name in the kernel, used to find it on an interface.
constexpr const char* kProgramName = "smtpgate_xdp";

/// Turns a refused load (libbpf's and the verifier's log, and the error) into
/// one line naming what the kernel lacks; the full log is shown with -vv.
std::string explain_load_failure(const std::string& log, int err);

/// Loads a BPF object file (no attach, nothing pinned) and unloads it again:
/// does this kernel accept it? Throws SystemError with explain_load_failure's
/// line when it does not.
void probe_object_file(const std::string& path);

/// Why the maps of the gate pinned at opts.pin_dir cannot serve this build's
/// program: the first map that is missing, or of another type, key or value
/// size, entry count, flags or value fields (as BTF lays them out), named.
/// Empty when they can, or when nothing is pinned.
std::string pinned_layout_difference(const ProgramOptions& opts);

/// Kernel memory of the gate's maps with these options, map by map, sized as
/// GateProgram sizes them, on a machine with `cpus` possible CPUs. Most is
/// allocated when the program loads; the allowlist's LPM tries (both slots)
/// grow with it, up to max_rules prefixes.
struct MapMemory {
  std::string map;  // the map's name; for the tries, both allowlist maps' names and "tries"
  uint64_t bytes = 0;
  bool grows = false;  // the tries: bytes is their bound at max_rules
};
std::vector<MapMemory> map_memory(const ProgramOptions& opts, unsigned cpus);

/// Mounts bpffs at /sys/fs/bpf if nothing is mounted there, and creates dir;
/// refuses one other users could write into (check_private_dir).
void ensure_pin_dir(const std::string& dir);

}  // namespace smtpgate
