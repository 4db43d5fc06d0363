// A reference classifier for the gate, written from the packet-path rules of
// docs/design.md and nothing else: plain byte offsets into a frame, no code
// shared with bpf/. The differential test runs every packet through both this
// and the real program (BPF_PROG_TEST_RUN) and requires the same outcome.
// Both are held against what Linux delivers (linux_receive.hpp): a guarded
// SYN Linux hands the listener must be judged by its true source or refused.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace sgref {

enum class Kind : uint8_t { Admit, Deny, Watch };

/// One allowlist entry: a prefix (network-order bytes, 4 or 16 used), the rule
/// that decides under it and what it does.
struct Prefix {
  int family = 4;  // 4 or 6
  std::array<uint8_t, 16> addr{};
  unsigned len = 0;
  uint32_t rule_id = 0;
  Kind kind = Kind::Admit;
  bool operator==(const Prefix&) const = default;
};

enum class Refusal : uint8_t { Drop, Reject, Monitor };

/// What the gate is set to: how a refused SYN is refused, which ports it
/// guards, the allowlist (none published yet: has_allowlist false).
struct GateSetup {
  Refusal refusal = Refusal::Drop;
  std::vector<uint16_t> ports{25};
  bool has_allowlist = true;
  /// The prefixes are an operator's ranges, compiled by the loader's rules
  /// (loader/rules/ruleset.hpp): the same prefix may come twice with different
  /// kinds (deny beats admit beats watch), a watch range inside an admit or
  /// deny range is dropped, and rule ids are assigned by the compile.
  bool compiled = false;
  std::vector<Prefix> prefixes;
  bool operator==(const GateSetup&) const = default;
};

/// The outcome of one packet: XDP action, the (verdict, reason) pair the
/// program counts (enum sg_verdict / sg_reason values), the rule whose
/// counters move (only when judged), and the frame the program leaves.
struct Outcome {
  uint32_t xdp_action = 0;
  uint32_t verdict = 0;
  uint32_t reason = 0;
  bool judged = false;
  uint32_t rule_id = 0;
  std::vector<uint8_t> frame;
  bool operator==(const Outcome&) const = default;
};

/// The reference's decision for one frame.
Outcome classify(const std::vector<uint8_t>& frame, const GateSetup& setup);

struct LinuxView;

/// True when the outcome lets through a connection-opening SYN to a guarded
/// port that Linux delivers (or may deliver after reassembly): neither
/// refused nor admitted by the rule of its true source.
bool bypasses(const LinuxView& linux, const GateSetup& s, const Outcome& o);

/// What a disagreement between the reference and the program means: "bypass"
/// (the program lets through a guarded SYN Linux delivers), "over-refusal"
/// (it refuses what the reference passes or admits) or "accounting" (the
/// same fate, counted or answered otherwise).
std::string disagreement_kind(const std::vector<uint8_t>& frame, const GateSetup& s, const Outcome& got);

/// "XDP_TX drop/malformed rule 3" for messages and regression files.
std::string describe(const Outcome& o);
std::string refusal_name(Refusal r);
std::string kind_name(Kind k);
/// "40.92.0.0/15" / "2a01:111:f400::/48".
std::string prefix_text(const Prefix& p);

}  // namespace sgref
