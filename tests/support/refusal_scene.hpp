// A gate that has turned sources away, for the tests of the read commands:
// the program loaded with its maps pinned in a pin dir of the test's own (no
// interface), a state dir whose ranges come from every origin, and SYNs run
// through the program with BPF_PROG_TEST_RUN. Removed on destruction.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "netns.hpp"
#include "state.hpp"
#include "xdp_runner.hpp"

namespace sgtest {

class RefusalScene {
 public:
  // Sources, one per story.
  static constexpr const char* kEop = "40.92.0.10";            // admitted (feed, Worldwide)
  static constexpr const char* kDod = "23.103.191.5";          // USGovDoD's port-25 set (feed-other)
  static constexpr const char* kPending = "52.100.1.1";        // in a refused feed version (feed-pending)
  static constexpr const char* kStranger = "203.0.113.9";      // in no range (default)
  static constexpr const char* kPartnerV6 = "2001:db8:77::5";  // operator deny range
  static constexpr const char* kRejectedVersion = "2026010100";
  static constexpr const char* kAppliedVersion = "2025120100";

  /// tag: unique per test binary (goes into the pin and state dir names);
  /// max_rules: the ranges the gate can hold.
  explicit RefusalScene(const std::string& tag, uint32_t max_rules = 64);
  ~RefusalScene();
  RefusalScene(const RefusalScene&) = delete;
  RefusalScene& operator=(const RefusalScene&) = delete;

  const smtpgate::Paths& paths() const { return paths_; }
  XdpGate& gate() { return gate_; }
  /// n SYNs to port 25 from src (IPv4 or IPv6); returns the XDP action of the last.
  uint32_t syn(const std::string& src, int n = 1, uint16_t port = 25);
  /// The turn-aways the stories below send: kDod x3, kPending x2, kStranger x1,
  /// kPartnerV6 x1, and kEop x2 admitted.
  void send_stories();

  /// smtpgatectl with this scene's dirs.
  ProcResult ctl(std::vector<std::string> args) const;
  /// smtpgatectl -j ARGS, expected to exit 0, parsed.
  nlohmann::json ctl_json(std::vector<std::string> args) const;

 private:
  smtpgate::Paths paths_;
  XdpGate gate_;
};

}  // namespace sgtest
