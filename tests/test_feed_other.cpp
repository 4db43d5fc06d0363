// The other instances' port-25 sets as watch ranges (origin feed-other),
// against a real HTTP server on loopback serving the real endpoints fixtures
// of USGovDoD, USGovGCCHigh and China, and a real gate (maps pinned): what is
// published, when the service is asked, and that no failure there touches the
// applied allowlist.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "desired_set.hpp"
#include "feed_other.hpp"
#include "feed_ranges.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "http_server.hpp"
#include "report.hpp"

using namespace smtpgate;
using sgtest::HttpServer;
using sgtest::Reply;
namespace fs = std::filesystem;

namespace {

constexpr int64_t T0 = 1767225600;  // 2026-01-01T00:00:00Z

std::string fixture(const std::string& name) { return read_file(std::string(SG_FIXTURES_DIR) + "/" + name); }

Reply version_reply(const std::string& instance, const std::string& v) {
  return Reply::json(R"({"instance":")" + instance + R"(","latest":")" + v + R"("})")
      .header("Cache-Control", "public, max-age=3600");
}

class FeedOther : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tag = "sgt" + std::to_string(::getpid()) + "oth";
    cfg.paths.pin_dir = "/sys/fs/bpf/" + tag;
    cfg.paths.state_dir = "/tmp/" + tag + "-state";
    fs::remove_all(cfg.paths.state_dir);
    ensure_pin_dir(cfg.paths.pin_dir);
    make_dirs(cfg.paths.state_dir);
    ProgramOptions o;
    o.pin_dir = cfg.paths.pin_dir;
    o.max_rules = 128;
    GateProgram(o).load();
    cfg.feed.url = server.url();
    cfg.feed.watch_other_instances = true;
    server.route("/version/Worldwide", version_reply("Worldwide", "2025120100"));
    server.route("/endpoints/Worldwide",
                 Reply::json(fixture("m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json")));
    server.route("/changes/Worldwide", Reply::json("[]"));
    serve("USGovDoD", "usgovdod", "2025120100");
    serve("USGovGCCHigh", "usgovgcchigh", "2025120100");
    serve("China", "china", "2025120100");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(cfg.paths.pin_dir, ec);
    fs::remove_all(cfg.paths.state_dir, ec);
  }
  void serve(const std::string& instance, const std::string& file, const std::string& version) {
    server.route("/version/" + instance, version_reply(instance, version));
    server.route("/endpoints/" + instance,
                 Reply::json(fixture("m365-endpoints-" + file + ".2025-12-01.deploymenttheory-tfprovider.json")));
  }
  GateMaps maps() const { return GateMaps::open_pinned(cfg.paths.pin_dir); }
  // The published rule deciding for an address, as the reports describe it.
  nlohmann::json deciding(const std::string& addr) {
    GateMaps m = maps();
    auto e = m.match(Cidr::parse_address(addr));
    if (!e) return nullptr;
    nlohmann::json r = RuleIndex(m, desired_ranges(StateStore(cfg.paths.state_dir))).rule(e->rule_id);
    return r;
  }
  size_t asked(const std::string& prefix) const { return server.count(prefix); }

  HttpServer server;
  DaemonConfig cfg;
};

TEST_F(FeedOther, OtherInstancesBecomeWatchRangesLabelledWithInstanceAndVersion) {
  SyncResult r = run_feed(cfg, FeedOp::Check, T0);
  ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  EXPECT_TRUE(r.warnings.empty()) << r.warnings[0];
  auto dod = deciding("62.10.144.5");  // USGovDoD only
  ASSERT_FALSE(dod.is_null());
  EXPECT_EQ(dod["kind"], "watch");
  EXPECT_EQ(dod["origin"], "feed-other");
  EXPECT_EQ(dod["range"], "62.10.144.0/20");
  EXPECT_NE(dod["note"].get<std::string>().find("USGovDoD version 2025120100"), std::string::npos) << dod["note"];
  auto shared = deciding("23.103.191.5");  // in both government instances' sets
  EXPECT_NE(shared["note"].get<std::string>().find("USGovDoD version 2025120100, USGovGCCHigh version 2025120100"),
            std::string::npos)
      << shared["note"];
  EXPECT_EQ(deciding("2406:e500:4400::1")["origin"], "feed-other");  // China, IPv6
  // Worldwide's own ranges are admitted as before.
  EXPECT_EQ(deciding("40.92.0.10")["kind"], "admit");
  EXPECT_EQ(deciding("40.92.0.10")["origin"], "feed");
  EXPECT_EQ(read_other_instances(cfg.paths.state_dir).size(), 3u);
}

TEST_F(FeedOther, VersionAtMostOncePerIntervalEndpointsOnlyWhenItMoved) {
  ASSERT_EQ(run_feed(cfg, FeedOp::Check, T0).outcome, SyncOutcome::Applied);
  EXPECT_EQ(asked("/version/China"), 1u);
  EXPECT_EQ(asked("/endpoints/China"), 1u);
  server.clear_requests();
  run_feed(cfg, FeedOp::Check, T0 + 600);  // within the hour: nobody is asked
  EXPECT_EQ(server.requests().size(), 0u);
  run_feed(cfg, FeedOp::Check, T0 + 3601);  // due; versions unchanged: no endpoints
  EXPECT_EQ(asked("/version/USGovDoD"), 1u);
  EXPECT_EQ(asked("/version/China"), 1u);
  EXPECT_EQ(asked("/endpoints/"), 0u);
  server.clear_requests();
  uint32_t gen = maps().generation();
  server.route("/version/China", version_reply("China", "2026010100"));
  run_feed(cfg, FeedOp::Check, T0 + 7300);
  EXPECT_EQ(asked("/endpoints/China"), 1u);
  EXPECT_EQ(asked("/endpoints/USGovDoD"), 0u);
  EXPECT_EQ(asked("/endpoints/Worldwide"), 0u);
  EXPECT_EQ(maps().generation(), gen) << "the same ranges under a new version need no publish";
  EXPECT_NE(deciding("40.72.120.5")["note"].get<std::string>().find("China version 2026010100"), std::string::npos);
}

TEST_F(FeedOther, AFailedFetchKeepsTheAllowlistAndWhatWasKnown) {
  ASSERT_EQ(run_feed(cfg, FeedOp::Check, T0).outcome, SyncOutcome::Applied);
  std::vector<TrieEntry> before = maps().active_entries();
  server.route("/version/USGovDoD", Reply::json("{}", 404));
  server.route("/version/China", version_reply("China", "2026010100"));
  server.route("/endpoints/China", Reply::json("<html>proxy says no</html>"));
  SyncResult r = run_feed(cfg, FeedOp::SyncNow, T0 + 60);
  EXPECT_EQ(r.outcome, SyncOutcome::Unchanged) << r.message;
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_NE(r.warnings[0].find("USGovDoD"), std::string::npos) << r.warnings[0];
  EXPECT_NE(r.warnings[1].find("China"), std::string::npos) << r.warnings[1];
  EXPECT_NE(r.warnings[1].find("watch ranges are kept"), std::string::npos) << r.warnings[1];
  EXPECT_EQ(maps().active_entries(), before);
  for (const auto& s : read_other_instances(cfg.paths.state_dir))
    if (s.instance == Instance::China) {
      EXPECT_EQ(s.version, "2025120100");
    }
}

TEST_F(FeedOther, AFirstFetchThatFailsLeavesTheMainFeedApplied) {
  server.route("/endpoints/USGovGCCHigh", Reply::json("[]"));  // no port-25 set
  SyncResult r = run_feed(cfg, FeedOp::Check, T0);
  EXPECT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  EXPECT_EQ(deciding("40.92.0.10")["kind"], "admit");
  EXPECT_EQ(deciding("62.10.128.5"), nullptr);  // GCCHigh only: not known
  EXPECT_EQ(deciding("62.10.144.5")["origin"], "feed-other");
}

TEST_F(FeedOther, TurnedOffTheyLeaveTheGateAndNobodyIsAsked) {
  ASSERT_EQ(run_feed(cfg, FeedOp::Check, T0).outcome, SyncOutcome::Applied);
  ASSERT_FALSE(deciding("62.10.144.5").is_null());
  cfg.feed.watch_other_instances = false;
  server.clear_requests();
  run_feed(cfg, FeedOp::SyncNow, T0 + 60);
  EXPECT_EQ(asked("/version/USGovDoD") + asked("/version/China") + asked("/version/USGovGCCHigh"), 0u);
  EXPECT_TRUE(deciding("62.10.144.5").is_null());
  EXPECT_FALSE(file_exists(cfg.paths.state_dir + "/feed-other.json"));
}

}  // namespace
