// The XDP program object: open the skeleton, size and reuse pinned maps, load,
// and (through libxdp) attach, adopt and detach. The only place that knows how
// the program is loaded; map contents are GateMaps' business.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct bpf_object;
struct smtpgate;  // generated skeleton

namespace smtpgate {

enum class XdpMode { Native, Skb };

struct ProgramOptions {
  /// Pin directory: maps already pinned there are reused (after a layout check),
  /// the others are pinned there after load. Empty: nothing pinned (tests, bench).
  std::string pin_dir;
  /// Size of the per-rule counter table; must match an existing pin.
  uint32_t max_rules = 65536;
  /// Size of the recently-refused LRU table.
  uint32_t recent_sources = 16384;
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
  /// The kernel's id for the loaded program.
  uint32_t prog_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  friend class Attachment;
};

/// What is attached to one interface, as the kernel reports it.
struct AttachedInfo {
  std::string ifname;
  int ifindex = 0;
  bool attached = false;      // an smtpgate program is on this interface
  std::string mode;           // "native", "skb", "" when not attached
  uint32_t prog_id = 0;       // smtpgate's program id
  bool dispatcher = false;    // attached through libxdp's multiprog dispatcher
  std::vector<std::string> others;  // other XDP programs on the interface
};

/// Attaches a program to an interface through libxdp (dispatcher when the kernel
/// allows it, so other XDP programs stay), falling back from native to skb mode
/// with a warning when native is refused.
/// Returns the mode actually used.
XdpMode attach(GateProgram& prog, const std::string& ifname, XdpMode mode);
/// Detaches smtpgate from the interface; other XDP programs stay. Returns false
/// when no smtpgate program was attached there.
bool detach(const std::string& ifname);
/// Reports what is attached to the interface.
AttachedInfo query_attached(const std::string& ifname);

/// Mounts bpffs at /sys/fs/bpf if nothing is mounted there, and creates dir.
void ensure_pin_dir(const std::string& dir);

}  // namespace smtpgate
