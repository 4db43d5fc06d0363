// Removal grace: a range Microsoft removes stays admitted for
// feed.removal_grace_days under its own origin (feed-grace), its hits
// counted and explained with the version that removed it and the day grace
// ends; the first feed check after that day refuses it (feed-removed).
// The loopback feed server plays Microsoft; the feed checks take their
// clock as an argument, so 31 days pass in a second.
#include <gtest/gtest.h>

#include <map>

#include <linux/bpf.h>
#include <unistd.h>
#include <fstream>

#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "feed_ranges.hpp"
#include "fsutil.hpp"
#include "gate.hpp"
#include "grace.hpp"
#include "http_server.hpp"
#include "metrics.hpp"
#include "packet_builder.hpp"
#include "process.hpp"
#include "xdp_runner.hpp"

using namespace smtpgate;
using nlohmann::json;
using sgtest::Reply;

namespace {

constexpr int64_t kDay = 24 * 3600;
constexpr const char* kRemoved = "104.47.0.0/17";
constexpr const char* kFromRemoved = "104.47.1.1";
constexpr const char* kStill = "40.92.0.10";

std::string version_doc(const std::string& v) { return json{{"instance", "Worldwide"}, {"latest", v}}.dump(); }

std::string endpoints_doc(bool with_removed) {
  json sets = json::parse(
      read_file(sgtest::fixture_path("m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json")));
  if (!with_removed)
    for (auto& s : sets)
      if (s["id"] == 10) {
        json ips = json::array();
        for (const auto& ip : s["ips"])
          if (ip != kRemoved) ips.push_back(ip);
        s["ips"] = ips;
      }
  return sets.dump();
}

ProgramOptions pinned(const Paths& p) {
  ensure_pin_dir(p.pin_dir);
  make_dirs(p.state_dir, 0755);
  ProgramOptions o;
  o.pin_dir = p.pin_dir;
  o.max_rules = 64;
  return o;
}

class FeedGrace : public ::testing::Test {
 protected:
  FeedGrace()
      : paths{"/sys/fs/bpf/sgt" + std::to_string(::getpid()) + "grace",
              "/tmp/sgt" + std::to_string(::getpid()) + "grace-state"},
        gate(pinned(paths)) {
    gate.maps().set_config(GateConfig{Action::Drop, {25}, 1000});
    cfg.paths = paths;
    cfg.feed.url = server.url();
    server.route("/version/Worldwide", Reply::json(version_doc("2025120100")));
    server.route("/endpoints/Worldwide", Reply::json(endpoints_doc(true)));
    server.route("/changes/Worldwide/", Reply::json("[]"));
  }
  ~FeedGrace() override {
    std::error_code ec;
    std::filesystem::remove_all(paths.pin_dir, ec);
    std::filesystem::remove_all(paths.state_dir, ec);
  }

  // Microsoft publishes a version without kRemoved; the gate syncs at `now`.
  void remove_at(int64_t now) {
    server.route("/version/Worldwide", Reply::json(version_doc("2026010100")));
    server.route("/endpoints/Worldwide", Reply::json(endpoints_doc(false)));
    SyncResult r = run_feed(cfg, FeedOp::SyncNow, now);
    ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
    ASSERT_EQ(r.removed.size(), 1u);
  }

  uint32_t syn(const std::string& src) {
    sgtest::Packet p;
    p.eth().ipv4(src, "192.0.2.1").tcp(40000, 25, sgtest::SYN);
    return gate.run(p.bytes()).action;
  }

  json explain(const std::string& addr) {
    auto r = sgtest::run_here({sgtest::binary("smtpgatectl"), "-j", "--pin-dir", paths.pin_dir, "--state-dir",
                               paths.state_dir, "explain", addr});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }

  Paths paths;
  sgtest::XdpGate gate;
  sgtest::HttpServer server;
  DaemonConfig cfg;
  int64_t t0 = ::time(nullptr);
};

TEST_F(FeedGrace, RemovedRangeStaysAdmittedInGraceThenIsRefused) {
  ASSERT_EQ(run_feed(cfg, FeedOp::SyncNow, t0).outcome, SyncOutcome::Applied);
  ASSERT_EQ(syn(kFromRemoved), XDP_PASS);

  int64_t removed_at = t0 + 3600;
  remove_at(removed_at);
  EXPECT_EQ(syn(kFromRemoved), XDP_PASS) << "refused at once: no grace";
  EXPECT_EQ(syn(kStill), XDP_PASS);

  std::string grace_end = utc_day(removed_at + 30 * kDay);
  json e = explain(kFromRemoved);
  EXPECT_EQ(e["verdict"], "admit");
  EXPECT_EQ(e["rule"]["origin"], "feed-grace");
  EXPECT_EQ(e["rule"]["range"], kRemoved);
  // The range keeps its rule (and counters) across the publish: the hit
  // before the removal and the one in grace.
  EXPECT_EQ(e["rule"]["counters"]["admit_packets"], 2);
  EXPECT_EQ(e["feed"]["removed_by"], "2026010100");
  EXPECT_EQ(e["feed"]["grace_until"], grace_end);
  EXPECT_EQ(e["feed"]["in_grace"], true);
  ASSERT_EQ(e["advice"].size(), 1u) << e.dump(2);
  EXPECT_NE(e["advice"][0].get<std::string>().find("admitted in grace until " + grace_end), std::string::npos)
      << e["advice"][0];

  // The metric an alert watches: traffic still arriving in grace.
  std::string metrics = render_metrics(paths, {}, {});
  EXPECT_NE(metrics.find("smtpgate_range_admitted_syns_total{kind=\"admit\",origin=\"feed-grace\",range=\"" +
                         std::string(kRemoved) + "\"} 2"),
            std::string::npos)
      << metrics;

  // A day before the end: still admitted.
  ASSERT_NE(run_feed(cfg, FeedOp::Check, removed_at + 29 * kDay).outcome, SyncOutcome::Failed);
  EXPECT_EQ(syn(kFromRemoved), XDP_PASS);

  // The first check after the end refuses it, and says why.
  ASSERT_NE(run_feed(cfg, FeedOp::Check, removed_at + 30 * kDay + 60).outcome, SyncOutcome::Failed);
  EXPECT_EQ(syn(kFromRemoved), XDP_DROP) << "admitted past its grace";
  EXPECT_EQ(syn(kStill), XDP_PASS);
  json after = explain(kFromRemoved);
  EXPECT_EQ(after["rule"]["origin"], "feed-removed");
  EXPECT_EQ(after["feed"]["in_grace"], false);
  EXPECT_EQ(after["feed"]["grace_until"], grace_end);
  bool said = false;
  for (const auto& a : after["advice"])
    said = said || a.get<std::string>().find("grace ended " + grace_end) != std::string::npos;
  EXPECT_TRUE(said) << after["advice"].dump();
}

TEST_F(FeedGrace, WhatTheReadCommandsSayOfARangeInGraceMatchesTheSchemas) {
  ASSERT_EQ(run_feed(cfg, FeedOp::SyncNow, t0).outcome, SyncOutcome::Applied);
  remove_at(t0 + 3600);
  ASSERT_EQ(syn(kFromRemoved), XDP_PASS);
  std::vector<std::string> check{"/usr/bin/python3", SG_SOURCE_DIR "/tests/check_json_schema.py",
                                 SG_SOURCE_DIR "/docs/schema"};
  for (const auto& [name, args] : std::map<std::string, std::vector<std::string>>{
           {"explain", {"explain", kFromRemoved}}, {"ranges-list", {"ranges", "list"}}, {"stats", {"stats"}}}) {
    std::vector<std::string> argv{
        sgtest::binary("smtpgatectl"), "-j", "--pin-dir", paths.pin_dir, "--state-dir", paths.state_dir};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = sgtest::run_here(argv);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    ASSERT_NE(r.out.find("feed-grace"), std::string::npos) << name << " does not show the range in grace";
    std::string file = paths.state_dir + "/" + name + ".out.json";
    std::ofstream(file) << r.out;
    check.push_back(name + "=" + file);
  }
  auto v = sgtest::run_here(check);
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST_F(FeedGrace, NoGraceRefusesARemovedRangeAtOnce) {
  cfg.feed.removal_grace_days = 0;
  ASSERT_EQ(run_feed(cfg, FeedOp::SyncNow, t0).outcome, SyncOutcome::Applied);
  remove_at(t0 + 3600);
  EXPECT_EQ(syn(kFromRemoved), XDP_DROP);
  EXPECT_EQ(explain(kFromRemoved)["rule"]["origin"], "feed-removed");
}

}  // namespace
