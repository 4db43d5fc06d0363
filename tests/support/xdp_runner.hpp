// Runs the gate through BPF_PROG_TEST_RUN: a loaded program (nothing pinned,
// no interface) and its maps.
#pragma once

#include <cstdint>
#include <vector>

#include "gate_maps.hpp"
#include "gate_program.hpp"

namespace sgtest {

struct RunResult {
  uint32_t action = 0;  // XDP_*
  std::vector<uint8_t> out;
};

class XdpGate {
 public:
  explicit XdpGate(smtpgate::ProgramOptions opts = {});
  smtpgate::GateMaps& maps() { return maps_; }
  int prog_fd() const { return prog_.prog_fd(); }
  /// A map of the loaded program, by name (for tests that look inside).
  int map_fd(const char* name) const;
  /// One packet through the program.
  RunResult run(const std::vector<uint8_t>& frame);

 private:
  smtpgate::GateProgram prog_;
  smtpgate::GateMaps maps_;
};

}  // namespace sgtest
