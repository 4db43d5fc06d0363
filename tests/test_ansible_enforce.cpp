// The roll-out's safety check (packaging/ansible enforce.yml): a gateway is
// switched from monitor to drop/reject only when its counters show no SYN
// from Microsoft's ranges turned away. Run by ansible-playbook against a real
// gate in test namespaces, before and after EOP sends from a range the feed
// has just removed.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "fsutil.hpp"
#include "netns.hpp"

using nlohmann::json;
using sgtest::ConnectResult;
using sgtest::Sandbox;

namespace {

constexpr const char* kRemovedSource = "40.107.0.10";  // in 40.107.0.0/16, dropped by the next version

struct PlaybookRun {
  int code;
  std::string out;
};

class AnsibleEnforce : public ::testing::Test {
 protected:
  void SetUp() override {
    work = "/tmp/sgt" + std::to_string(::getpid()) + "enforce";
    std::filesystem::create_directories(work);
    box.add_sender_address(kRemovedSource);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(work, ec);
  }

  sgtest::ProcResult ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir",
                                  box.state_dir()};
    argv.insert(argv.end(), args.begin(), args.end());
    return sgtest::run_in(box.gateway(), argv);
  }

  // The 2025 Worldwide response, with or without 40.107.0.0/16 in the port-25 set.
  std::string endpoints_file(bool with_40_107) {
    json sets = json::parse(smtpgate::read_file(
        sgtest::fixture_path("m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json")));
    if (!with_40_107)
      for (auto& s : sets)
        if (s["id"] == 10) s["ips"].erase(std::find(s["ips"].begin(), s["ips"].end(), "40.107.0.0/16"));
    std::string path = work + (with_40_107 ? "/v1.json" : "/v2.json");
    smtpgate::write_file_atomic(path, sets.dump());
    return path;
  }

  PlaybookRun enforce_check() {
    json extra{
        {"smtpgate_ctl", {sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir", box.state_dir()}}};
    std::string vars = work + "/vars.json", log = work + "/ansible.log";
    smtpgate::write_file_atomic(vars, extra.dump());
    std::string cmd = "env ANSIBLE_ROLES_PATH=" SG_SOURCE_DIR
                      "/packaging/ansible/roles ANSIBLE_NOCOLOR=1 "
                      "ANSIBLE_LOCAL_TEMP=" +
                      work + "/tmp ANSIBLE_REMOTE_TEMP=" + work +
                      "/rtmp "
                      "ANSIBLE_HOME=" +
                      work +
                      "/home ansible-playbook -i localhost, " SG_SOURCE_DIR "/tests/ship/ansible-enforce.yml -e @" +
                      vars + " >" + log + " 2>&1";
    int st = std::system(cmd.c_str());
    return PlaybookRun{WIFEXITED(st) ? WEXITSTATUS(st) : -1, smtpgate::read_file(log)};
  }

  std::string work;
  Sandbox box;
};

TEST_F(AnsibleEnforce, RefusesToEnforceWhereAMicrosoftSourceWasTurnedAway) {
  auto v1 = ctl({"feed", "import", endpoints_file(true), "--version", "2025120100"});
  ASSERT_EQ(v1.exit_code, 0) << v1.err;
  sgtest::Listener listener(box.gateway(), 25);
  // No removal grace: a range Microsoft drops is refused at once.
  std::string config = work + "/smtpgate.toml";
  smtpgate::write_file_atomic(config, "[feed]\nremoval_grace_days = 0\n");
  sgtest::Daemon d(box.gateway(), {sgtest::binary("smtpgated"), "--config", config, "--interface", Sandbox::kGwIf,
                                   "--pin-dir", box.pin_dir(), "--state-dir", box.state_dir(), "--no-feed", "--action",
                                   "monitor", "--metrics-listen", ""});
  ASSERT_TRUE(d.ready()) << d.stderr_text();
  // Microsoft drops 40.107.0.0/16 from the feed (origin feed-removed now: the
  // import follows the running daemon's settings).
  auto v2 = ctl({"feed", "import", endpoints_file(false), "--version", "2026010100"});
  ASSERT_EQ(v2.exit_code, 0) << v2.err;

  PlaybookRun quiet = enforce_check();
  EXPECT_EQ(quiet.code, 0) << quiet.out;
  EXPECT_NE(quiet.out.find("no Microsoft source turned away"), std::string::npos) << quiet.out;

  // EOP still sends from it: monitor lets the SYN through and counts it.
  EXPECT_EQ(box.connect(kRemovedSource, Sandbox::kGwV4, 25, 2000), ConnectResult::Connected);
  EXPECT_EQ(listener.accepted_when(1u), 1u);

  PlaybookRun refused = enforce_check();
  EXPECT_NE(refused.code, 0) << refused.out;
  EXPECT_NE(refused.out.find("1 SYNs from Microsoft's ranges would have been refused"), std::string::npos)
      << refused.out;
}

}  // namespace
