// The operator's question end to end: "did my gate turn EOP away, from which
// address, when, and why?" A gateway and a sender in network namespaces
// joined by veth; smtpgated attached on the gateway side, following a feed
// served on loopback (Worldwide, plus the other instances watched). A sender
// at a USGovDoD EOP address is turned away; explain, top and drops name its
// range and origin, and /metrics scraped over HTTP says what stats -j says.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <sstream>
#include <thread>

#include "fsutil.hpp"
#include "http.hpp"
#include "http_server.hpp"
#include "netns.hpp"
#include "process.hpp"

using nlohmann::json;
using sgtest::ConnectResult;
using sgtest::HttpServer;
using sgtest::Reply;
using sgtest::Sandbox;

namespace {

constexpr const char* kDodSender = "23.103.191.5";  // USGovDoD's and USGovGCCHigh's port-25 set
constexpr const char* kEopSender = "40.92.0.10";    // Worldwide's: admitted
constexpr uint16_t kMetricsPort = 9725;             // inside the gateway's namespace

std::string fixture_text(const std::string& instance) {
  return smtpgate::read_file(
      sgtest::fixture_path("m365-endpoints-" + instance + ".2025-12-01.deploymenttheory-tfprovider.json"));
}

// The value of one series in an exposition text; -1 when absent.
long series_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stol(line.substr(series.size() + 1));
  return -1;
}

class ExplainE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    box.add_sender_address(kDodSender);
    box.add_sender_address(kEopSender);
    // The feed lives in the gateway's namespace, where smtpgated asks it.
    server = box.gateway().run<std::shared_ptr<HttpServer>>([] { return std::make_shared<HttpServer>(); });
    server->route("/version/Worldwide", Reply::json(R"({"instance":"Worldwide","latest":"2025120100"})"));
    server->route("/endpoints/Worldwide", Reply::json(fixture_text("worldwide")));
    server->route("/changes/Worldwide", Reply::json("[]"));
    for (const auto& [instance, file] :
         {std::pair{"USGovDoD", "usgovdod"}, std::pair{"USGovGCCHigh", "usgovgcchigh"}, std::pair{"China", "china"}}) {
      server->route(std::string("/version/") + instance,
                    Reply::json(std::string(R"({"instance":")") + instance + R"(","latest":"2025120100"})"));
      server->route(std::string("/endpoints/") + instance, Reply::json(fixture_text(file)));
    }
    config = box.state_dir() + "/smtpgate.toml";
    smtpgate::write_file_atomic(config, "[feed]\nurl = \"" + server->url() +
                                            "\"\nwatch_other_instances = true\n[metrics]\nlisten = \"127.0.0.1:" +
                                            std::to_string(kMetricsPort) + "\"\n");
  }

  sgtest::ProcResult ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir",
                                  box.state_dir()};
    argv.insert(argv.end(), args.begin(), args.end());
    return sgtest::run_in(box.gateway(), argv);
  }
  json ctl_json(std::vector<std::string> args) {
    args.insert(args.begin(), "-j");
    auto r = ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out) : json();
  }

  std::string scrape() {
    return box.gateway().run<std::string>([] {
      smtpgate::HttpOptions o;
      o.proxy = "";
      return smtpgate::HttpClient(o).get("http://127.0.0.1:" + std::to_string(kMetricsPort) + "/metrics").body;
    });
  }

  Sandbox box;
  std::shared_ptr<HttpServer> server;
  std::string config;
};

TEST_F(ExplainE2E, AnEopSenderOfAnotherInstanceIsTurnedAwayAndExplained) {
  sgtest::Listener listener(box.gateway(), 25);
  sgtest::Daemon d(box.gateway(), {sgtest::binary("smtpgated"), "--config", config, "--interface", Sandbox::kGwIf,
                                   "--pin-dir", box.pin_dir(), "--state-dir", box.state_dir(), "--action", "drop"});
  ASSERT_TRUE(d.ready()) << d.stderr_text();
  // The first feed check applies Worldwide and fetches the other instances.
  for (int i = 0; i < 50 && ctl_json({"feed", "status"})["other_instances"].size() < 3; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_EQ(ctl_json({"feed", "status"})["other_instances"].size(), 3u) << ctl_json({"feed", "status"}).dump();

  sgtest::LineReader follow({sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir", box.state_dir(),
                             "-j", "drops", "--follow"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int kTries = 3;
  for (int i = 0; i < kTries; i++) EXPECT_EQ(box.connect(kDodSender, Sandbox::kGwV4, 25, 400), ConnectResult::TimedOut);
  EXPECT_EQ(box.connect(kEopSender, Sandbox::kGwV4, 25, 400), ConnectResult::Connected);

  // explain: the range, its origin (instance and version), when it was refused.
  json e = ctl_json({"explain", kDodSender});
  EXPECT_EQ(e["verdict"], "drop");
  EXPECT_EQ(e["rule"]["range"], "23.103.191.0/24");
  EXPECT_EQ(e["rule"]["kind"], "watch");
  EXPECT_EQ(e["rule"]["origin"], "feed-other");
  EXPECT_NE(e["rule"]["note"].get<std::string>().find("USGovDoD version 2025120100"), std::string::npos);
  EXPECT_NE(e["eop_code"].get<std::string>().find("4.4.315"), std::string::npos);
  ASSERT_FALSE(e["last_refused"].is_null());
  EXPECT_EQ(e["last_refused"]["count"], kTries);
  EXPECT_TRUE(e["microsoft"].get<bool>());

  // top: first, as Microsoft's.
  json top = ctl_json({"top"});
  ASSERT_FALSE(top["sources"].empty());
  EXPECT_EQ(top["sources"][0]["source"], kDodSender);
  EXPECT_EQ(top["sources"][0]["origin"], "feed-other");
  EXPECT_EQ(top["sources"][0]["count"], kTries);

  // drops: each SYN, recorded by the daemon (the ring's one consumer) and
  // seen by the follower.
  for (int i = 0; i < kTries; i++) {
    std::string line = follow.line(3000);
    ASSERT_FALSE(line.empty()) << "drops --follow printed " << i << " of " << kTries;
    json r = json::parse(line);
    EXPECT_EQ(r["source"], kDodSender);
    EXPECT_EQ(r["range"], "23.103.191.0/24");
    EXPECT_EQ(r["origin"], "feed-other");
    EXPECT_EQ(r["interface"], Sandbox::kGwIf);
    EXPECT_EQ(r["verdict"], "drop");
  }
  auto history = ctl({"drops", "--since", "5m"});
  EXPECT_NE(history.out.find(std::string(kDodSender) + " > port 25 drop range 23.103.191.0/24 origin feed-other"),
            std::string::npos)
      << history.out;

  // /metrics over HTTP says what stats -j says.
  json stats = ctl_json({"stats"});
  std::string text = scrape();
  long refused = -1;
  for (const auto& r : stats["rules"])
    if (r["range"] == "23.103.191.0/24") refused = r["counters"]["refuse_packets"].get<long>();
  EXPECT_EQ(refused, kTries);
  EXPECT_EQ(series_value(
                text, R"(smtpgate_range_refused_syns_total{kind="watch",origin="feed-other",range="23.103.191.0/24"})"),
            refused)
      << text;
  EXPECT_EQ(stats["by_origin"]["feed-other"]["refuse_packets"].get<long>(), kTries);
  EXPECT_EQ(
      series_value(text, R"(smtpgate_range_admitted_syns_total{kind="admit",origin="feed",range="40.92.0.0/15"})"), 1);
  EXPECT_EQ(series_value(text, R"(smtpgate_packets_total{verdict="drop"})"),
            stats["verdicts"]["drop"]["packets"].get<long>());
  EXPECT_EQ(series_value(text, R"(smtpgate_ranges{kind="watch",origin="feed-other"})"),
            stats["by_origin"]["feed-other"]["ranges"].get<long>());
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
