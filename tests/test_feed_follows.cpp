// "Sync now" follows the running daemon: smtpgated started with --feed-url
// (a mirror) writes the feed settings it runs with into the state directory,
// and smtpgatectl's feed sync and feed status use them, never silently the
// public service; each message of a sync is printed once.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "fsutil.hpp"
#include "http_server.hpp"
#include "netns.hpp"

using nlohmann::json;
using sgtest::Reply;
using sgtest::Sandbox;

namespace {

std::string version_doc(const std::string& v) { return json{{"instance", "Worldwide"}, {"latest", v}}.dump(); }

// The real 2025 Worldwide response; the port-25 set under another id when
// asked (a warning: the expected id is only a check), and one extra range.
std::string endpoints_doc(int port25_id = 10, const std::string& extra = "") {
  json sets = json::parse(smtpgate::read_file(
      sgtest::fixture_path("m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json")));
  for (auto& s : sets)
    if (s["id"] == 10) {
      if (!extra.empty()) s["ips"].push_back(extra);
      s["id"] = port25_id;
    }
  return sets.dump();
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) n++;
  return n;
}

class FeedFollows : public ::testing::Test {
 protected:
  void SetUp() override {
    box.gateway().ip("link set lo up");
    // The mirror lives in the gateway's namespace, where smtpgated and
    // smtpgatectl run; nothing else can reach it.
    mirror =
        box.gateway().run<std::shared_ptr<sgtest::HttpServer>>([] { return std::make_shared<sgtest::HttpServer>(); });
    mirror->route("/version/Worldwide", Reply::json(version_doc("2025120100")));
    mirror->route("/endpoints/Worldwide", Reply::json(endpoints_doc()));
    mirror->route("/changes/Worldwide/", Reply::json("[]"));
  }

  sgtest::ProcResult ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir",
                                  box.state_dir()};
    argv.insert(argv.end(), args.begin(), args.end());
    return sgtest::run_in(box.gateway(), argv);
  }

  std::vector<std::string> daemon_argv() {
    return {sgtest::binary("smtpgated"),
            "--interface",
            Sandbox::kGwIf,
            "--mode",
            "skb",
            "--pin-dir",
            box.pin_dir(),
            "--state-dir",
            box.state_dir(),
            "--feed-url",
            mirror->url(),
            "--metrics-listen",
            ""};
  }

  Sandbox box;
  std::shared_ptr<sgtest::HttpServer> mirror;
};

TEST_F(FeedFollows, SyncNowAndStatusUseTheRunningDaemonsFeedUrl) {
  sgtest::Daemon d(box.gateway(), daemon_argv());
  ASSERT_TRUE(d.ready()) << d.stderr_text();
  ASSERT_GE(mirror->count("/endpoints/Worldwide"), 1u) << "the daemon's first sync asks its --feed-url";

  // The mirror moves on; the operator syncs now, naming no URL.
  mirror->route("/version/Worldwide", Reply::json(version_doc("2025120200")));
  mirror->route("/endpoints/Worldwide", Reply::json(endpoints_doc(10, "40.94.0.0/16")));
  mirror->clear_requests();
  auto sync = ctl({"feed", "sync"});
  EXPECT_EQ(sync.exit_code, 0) << sync.err;
  EXPECT_EQ(mirror->count("/version/Worldwide"), 1u) << "feed sync did not ask the daemon's mirror: " << sync.err;
  EXPECT_NE(sync.out.find("version 2025120200 applied"), std::string::npos) << sync.out << sync.err;

  auto status = ctl({"-j", "feed", "status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  json s = json::parse(status.out);
  EXPECT_EQ(s["settings"]["url"], mirror->url());
  EXPECT_EQ(s["settings"]["source"], "smtpgated (pid " + std::to_string(d.pid()) + ")");
  EXPECT_EQ(s["applied"]["version"], "2025120200");
  auto text = ctl({"feed", "status"});
  EXPECT_NE(text.out.find("settings:   Worldwide from " + mirror->url() + " (smtpgated (pid"), std::string::npos)
      << text.out;
  EXPECT_EQ(d.stop(), 0);

  // No daemon runs: the settings are the configuration's (here: the
  // defaults), and status says so rather than showing the last daemon's.
  auto after = ctl({"-j", "feed", "status"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_NE(json::parse(after.out)["settings"]["source"], "smtpgated (pid " + std::to_string(d.pid()) + ")");
}

TEST_F(FeedFollows, EachMessageOfASyncIsPrintedOnce) {
  sgtest::Daemon d(box.gateway(), daemon_argv());
  ASSERT_TRUE(d.ready()) << d.stderr_text();
  // A version whose port-25 set carries another id: applied, with a warning.
  mirror->route("/version/Worldwide", Reply::json(version_doc("2025120200")));
  mirror->route("/endpoints/Worldwide", Reply::json(endpoints_doc(99)));
  auto sync = ctl({"feed", "sync"});
  EXPECT_EQ(sync.exit_code, 0) << sync.err;
  EXPECT_EQ(occurrences(sync.err, "the port-25 set has id 99"), 1u) << sync.err;
  EXPECT_EQ(occurrences(sync.out + sync.err, "version 2025120200 applied"), 1u) << sync.out << sync.err;

  // A failure: one line, on stderr.
  mirror->route("/version/Worldwide", Reply::json("{}", 500));
  auto failed = ctl({"feed", "sync"});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_EQ(occurrences(failed.err, "\n"), 1u) << failed.err;
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
