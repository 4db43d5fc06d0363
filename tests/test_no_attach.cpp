// smtpgated --no-attach: another loader (bpfman, in a cluster) loads the
// program, pins its maps and attaches it; smtpgated only publishes the
// allowlist, configures the gate and serves metrics, and leaves the program
// alone when it stops.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "http.hpp"
#include "netns.hpp"

using sgtest::ConnectResult;
using sgtest::Sandbox;

namespace {

constexpr const char* kEopV4 = "40.92.0.10";
constexpr const char* kStrangerV4 = "203.0.113.10";

class NoAttach : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* a : {kEopV4, kStrangerV4}) box.add_sender_address(a);
    box.gateway().ip("link set lo up");
  }

  sgtest::ProcResult run(std::vector<std::string> argv) { return sgtest::run_in(box.gateway(), argv); }

  std::vector<std::string> daemon_argv(const std::string& pin_dir) {
    // lo runs no XDP program: with --no-attach it is only watched.
    return {sgtest::binary("smtpgated"),
            "--no-attach",
            "--interface",
            "lo",
            "--pin-dir",
            pin_dir,
            "--state-dir",
            box.state_dir(),
            "--no-feed",
            "--action",
            "drop",
            "--metrics-listen",
            "127.0.0.1:9725"};
  }

  ConnectResult connect(const char* src) { return box.connect(src, Sandbox::kGwV4, 25, 400); }

  Sandbox box;
};

TEST_F(NoAttach, RefusesWithOneLineWhenNoMapsArePinned) {
  std::string empty = box.pin_dir() + "-empty";
  std::filesystem::create_directories(empty);
  auto r = run(daemon_argv(empty));
  std::filesystem::remove_all(empty);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no smtpgate maps are pinned at " + empty), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--pin-dir"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(NoAttach, PublishesIntoMapsPinnedByAnotherLoaderAndLeavesItsProgram) {
  auto add = run({sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir", box.state_dir(), "ranges",
                  "add", "40.92.0.0/15"});
  ASSERT_EQ(add.exit_code, 0) << add.err;

  // The other loader: maps pinned at load, the program attached through
  // libxdp, before smtpgated runs. Until configured, the gate refuses nothing.
  smtpgate::ProgramOptions opts;
  opts.pin_dir = box.pin_dir();
  smtpgate::GateProgram loaded(opts);
  loaded.load();
  box.gateway().run<int>(
      [&] { return static_cast<int>(smtpgate::attach(opts, Sandbox::kGwIf, smtpgate::XdpMode::Skb)); });
  auto before = box.gateway().run<smtpgate::AttachedInfo>(
      [&] { return smtpgate::query_attached(Sandbox::kGwIf, box.pin_dir()); });
  ASSERT_TRUE(before.attached && before.uses_pinned_maps);

  sgtest::Listener listener(box.gateway(), 25);
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::Connected) << "an unconfigured gate must not refuse";

  {
    sgtest::Daemon d(box.gateway(), daemon_argv(box.pin_dir()));
    ASSERT_TRUE(d.ready()) << d.stderr_text();

    auto entries = smtpgate::GateMaps::open_pinned(box.pin_dir()).active_entries();
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].prefix.str(), "40.92.0.0/15");

    EXPECT_EQ(connect(kEopV4), ConnectResult::Connected);
    EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);

    std::string metrics = box.gateway().run<std::string>([] {
      smtpgate::HttpOptions o;
      o.attempts = 1;
      smtpgate::HttpClient http(o);
      return http.get("http://127.0.0.1:9725/metrics").body;
    });
    EXPECT_NE(
        metrics.find("smtpgate_range_admitted_syns_total{kind=\"admit\",origin=\"operator\",range=\"40.92.0.0/15\"} 1"),
        std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("smtpgate_action{action=\"drop\"} 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("smtpgate_program_attached{interface=\"lo\"} 0"), std::string::npos) << metrics;
    auto lo = box.gateway().run<smtpgate::AttachedInfo>([&] { return smtpgate::query_attached("lo", box.pin_dir()); });
    EXPECT_FALSE(lo.attached) << "--no-attach attached to lo";
    EXPECT_EQ(d.stop(), 0);
  }

  // Stopped: the program it did not load is still the one attached, and filtering.
  auto after = box.gateway().run<smtpgate::AttachedInfo>(
      [&] { return smtpgate::query_attached(Sandbox::kGwIf, box.pin_dir()); });
  EXPECT_TRUE(after.attached);
  EXPECT_EQ(after.prog_id, before.prog_id);
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
  EXPECT_EQ(listener.accepted_when(2u), 2u);
}

}  // namespace
