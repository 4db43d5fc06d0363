// The differential harness: the same packets through the reference classifier
// and through the real program (BPF_PROG_TEST_RUN), compared on the XDP
// action, the frame left behind (untouched, or the exact reset), the
// (verdict, reason) counters and the deciding rule's counters. Disagreements
// become regression cases: text files holding the gate's setup, the frame and
// the expected outcome.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reference_gate.hpp"

namespace sgtest {
class XdpGate;
}

namespace sgref {

/// One packet under one setup, and what the reference expects of it.
struct Case {
  GateSetup setup;
  std::vector<uint8_t> frame;
  Outcome expected;
  std::string note;  // where it came from
};

/// A packet the program decided differently.
struct Disagreement {
  Case c;
  Outcome got;
  std::string what;  // which field differs
  std::string kind;  // bypass, over-refusal or accounting (disagreement_kind)
};

struct RunStats {
  uint64_t packets = 0;
  uint64_t setups = 0;
  uint64_t judged = 0;
  uint64_t by_verdict[8] = {};
  uint64_t by_reason[16] = {};
  uint64_t linux_guarded = 0;  // guarded SYNs Linux delivers (or may, after reassembly)
  uint64_t spec_bypasses = 0;  // of them, ones the reference itself lets through: must be 0
  std::vector<Case> spec_bypass_cases;
  std::vector<Disagreement> disagreements;
};

class Differential {
 public:
  Differential();
  /// A gate whose stride tables have a pool of table_chunks chunks.
  explicit Differential(uint32_t table_chunks);
  ~Differential();
  /// Random setups and packets from `seed`: `packets` in all, a new setup
  /// every `per_setup` packets. Stops collecting after max_reported
  /// disagreements (still counts packets).
  RunStats run(uint64_t seed, uint64_t packets, uint64_t per_setup = 2000, size_t max_reported = 20);
  /// The program's outcome for one case, read from the counters it moved
  /// (the case's setup is applied first if it is not the current one; "no
  /// allowlist yet" gets a fresh gate). A compiled setup's rule ids become
  /// the ones the compile assigned.
  Outcome observe(Case& c);

 private:
  /// Configures the gate and publishes the setup's prefixes; a compiled
  /// setup gets the rule ids the compile assigned.
  void apply(GateSetup& s);
  std::unique_ptr<sgtest::XdpGate> gate_;
  std::optional<GateSetup> applied_;
};

/// Regression files: "key value" lines, '#' comments.
std::string to_text(const Case& c);
/// Throws std::runtime_error naming the file and line. Without an "expect"
/// line (a case being written by hand) only when expect_optional.
Case from_text(const std::string& text, const std::string& name, bool expect_optional = false);

}  // namespace sgref
