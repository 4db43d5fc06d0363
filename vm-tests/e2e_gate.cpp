// The gate on a real kernel: a gateway and a sender in network namespaces
// joined by veth, smtpgated attached on the gateway side, a listener on port
// 25, real TCP connects over IPv4 and IPv6 from inside and outside the
// allowlist.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "fsutil.hpp"
#include "http_server.hpp"
#include "netns.hpp"

using nlohmann::json;
using sgtest::ConnectResult;
using sgtest::Sandbox;

namespace {

// Sources: two inside EOP's published port-25 ranges, two outside any range.
constexpr const char* kEopV4 = "40.92.0.10";
constexpr const char* kEopV6 = "2a01:111:f400::10";
constexpr const char* kStrangerV4 = "203.0.113.10";
constexpr const char* kStrangerV6 = "2001:db8:1::10";

class GateE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* a : {kEopV4, kEopV6, kStrangerV4, kStrangerV6}) box.add_sender_address(a);
    ctl_ok({"ranges", "add", "40.92.0.0/15", "--comment", "EOP port 25"});
    ctl_ok({"ranges", "add", "2a01:111:f400::/48", "--comment", "EOP port 25"});
  }

  sgtest::ProcResult ctl(std::vector<std::string> args) { return box.ctl(args); }
  std::string ctl_ok(std::vector<std::string> args) {
    auto r = ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  json ctl_json(std::vector<std::string> args) {
    args.insert(args.begin(), "-j");
    return json::parse(ctl_ok(args));
  }

  std::unique_ptr<sgtest::Daemon> start(const std::string& action, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{sgtest::binary("smtpgated"),
                                  "--interface",
                                  Sandbox::kGwIf,
                                  "--pin-dir",
                                  box.pin_dir(),
                                  "--state-dir",
                                  box.state_dir(),
                                  "--action",
                                  action};
    // No feed unless the test serves one: tests never reach the internet.
    if (std::find(extra.begin(), extra.end(), "--feed-url") == extra.end()) argv.push_back("--no-feed");
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto d = std::make_unique<sgtest::Daemon>(box.gateway(), argv);
    if (!d->ready()) {
      d->stop();
      ADD_FAILURE() << "smtpgated did not become ready:\n" << d->stderr_text();
    }
    return d;
  }

  ConnectResult connect(const char* src, int timeout_ms = 400) {
    bool v6 = std::string(src).find(':') != std::string::npos;
    return box.connect(src, v6 ? Sandbox::kGwV6 : Sandbox::kGwV4, 25, timeout_ms);
  }

  // Counters of the rule whose range is `range` ("default" for rule 0).
  json rule_counters(const std::string& range) {
    json s = ctl_json({"stats"});
    if (range == "default") return s["default_rule"]["counters"];
    for (const auto& r : s["rules"])
      if (r["range"] == range) return r["counters"];
    ADD_FAILURE() << "no rule for " << range;
    return json::object();
  }

  Sandbox box;
};

TEST_F(GateE2E, DropAdmitsEopAndTimesOutStrangers) {
  sgtest::Listener listener(box.gateway(), 25);
  auto d = start("drop");
  const int kEach = 3;
  for (int i = 0; i < kEach; i++) {
    EXPECT_EQ(connect(kEopV4), ConnectResult::Connected);
    EXPECT_EQ(connect(kEopV6), ConnectResult::Connected);
    EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
    EXPECT_EQ(connect(kStrangerV6), ConnectResult::TimedOut);
  }
  EXPECT_EQ(listener.accepted_when(2u * kEach), 2u * kEach);
  // One SYN per attempt: the timeout is shorter than the first retransmit.
  EXPECT_EQ(rule_counters("40.92.0.0/15")["admit_packets"], kEach);
  EXPECT_EQ(rule_counters("2a01:111:f400::/48")["admit_packets"], kEach);
  EXPECT_EQ(rule_counters("default")["refuse_packets"], 2 * kEach);
  json stats = ctl_json({"stats"});
  EXPECT_EQ(stats["verdicts"]["drop"]["packets"], 2 * kEach);
  EXPECT_EQ(stats["verdicts"]["admit"]["packets"], 2 * kEach);
}

TEST_F(GateE2E, RejectRefusesStrangersAtOnce) {
  sgtest::Listener listener(box.gateway(), 25);
  auto d = start("reject");
  EXPECT_EQ(connect(kStrangerV4, 2000), ConnectResult::Refused);
  EXPECT_EQ(connect(kStrangerV6, 2000), ConnectResult::Refused);
  EXPECT_EQ(connect(kEopV4), ConnectResult::Connected);
  EXPECT_EQ(connect(kEopV6), ConnectResult::Connected);
  EXPECT_EQ(listener.accepted_when(2u), 2u);
  json stats = ctl_json({"stats"});
  EXPECT_EQ(stats["verdicts"]["reject"]["packets"], 2);
}

TEST_F(GateE2E, MonitorLetsEveryoneInButCountsStrangers) {
  sgtest::Listener listener(box.gateway(), 25);
  auto d = start("monitor");
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::Connected);
  EXPECT_EQ(connect(kStrangerV6), ConnectResult::Connected);
  EXPECT_EQ(connect(kEopV4), ConnectResult::Connected);
  EXPECT_EQ(listener.accepted_when(3u), 3u);
  EXPECT_EQ(rule_counters("default")["refuse_packets"], 2);
  json stats = ctl_json({"stats"});
  EXPECT_EQ(stats["verdicts"]["monitor"]["packets"], 2);
}

TEST_F(GateE2E, ActionChangesAtRunTimeWithoutReattach) {
  sgtest::Listener listener(box.gateway(), 25);
  auto d = start("drop");
  json before = ctl_json({"status"});
  ASSERT_EQ(before["interfaces"].size(), 1u);
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
  ctl_ok({"action", "reject"});
  EXPECT_EQ(connect(kStrangerV4, 2000), ConnectResult::Refused);
  ctl_ok({"action", "monitor"});
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::Connected);
  json after = ctl_json({"status"});
  EXPECT_EQ(after["interfaces"][0]["prog_id"], before["interfaces"][0]["prog_id"]);
  EXPECT_EQ(after["action"], "monitor");
}

TEST_F(GateE2E, RangesAddedAtRunTimeApplyAtOnceAndSurviveRestart) {
  sgtest::Listener listener(box.gateway(), 25);
  auto d = start("drop");
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
  ctl_ok({"ranges", "add", "203.0.113.0/24", "--comment", "partner relay", "--allow-reserved"});
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::Connected);
  d->stop();
  d = start("drop");
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::Connected);
  ctl_ok({"ranges", "del", "203.0.113.0/24"});
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
}

TEST_F(GateE2E, GateKeepsFilteringAfterDaemonStops) {
  sgtest::Listener listener(box.gateway(), 25);
  auto d = start("drop");
  EXPECT_EQ(d->stop(), 0);
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
  EXPECT_EQ(connect(kEopV4), ConnectResult::Connected);
  json st = ctl_json({"status"});
  EXPECT_EQ(st["interfaces"].size(), 1u);
  ctl_ok({"detach", Sandbox::kGwIf});
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::Connected);
}

TEST_F(GateE2E, RestartUnderAStreamOfConnectsLosesNone) {
  sgtest::Listener listener(box.gateway(), 25);
  auto d = start("drop");
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread stream([&] {
    while (!stop) {
      if (connect(kEopV4, 2000) == ConnectResult::Connected)
        ok++;
      else
        failed++;
    }
  });
  for (int i = 0; i < 3; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    d->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    d = start("drop");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  stream.join();
  EXPECT_GT(ok.load(), 10);
  EXPECT_EQ(failed.load(), 0);
  // While no daemon ran, strangers were still kept out.
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
}

TEST_F(GateE2E, RefusesToAttachWithAnEmptyAllowlist) {
  ctl_ok({"ranges", "del", "40.92.0.0/15"});
  ctl_ok({"ranges", "del", "2a01:111:f400::/48"});
  sgtest::Daemon d(box.gateway(), {sgtest::binary("smtpgated"), "--interface", Sandbox::kGwIf, "--pin-dir",
                                   box.pin_dir(), "--state-dir", box.state_dir(), "--no-feed"});
  EXPECT_FALSE(d.ready(5000));
  EXPECT_NE(d.stderr_text().find("empty allowlist"), std::string::npos) << d.stderr_text();
  EXPECT_EQ(ctl_json({"status"})["interfaces"].size(), 0u);
}

TEST_F(GateE2E, ExplainNamesTheDecidingRange) {
  auto d = start("reject");
  json e = ctl_json({"explain", kEopV4});
  EXPECT_EQ(e["verdict"], "admit");
  EXPECT_EQ(e["rule"]["range"], "40.92.0.0/15");
  EXPECT_EQ(e["rule"]["origin"], "operator");
  json s = ctl_json({"explain", kStrangerV4});
  EXPECT_EQ(s["verdict"], "reject");
  EXPECT_EQ(s["rule"]["rule_id"], 0);
  EXPECT_NE(s["eop_code"].get<std::string>().find("4.4.316"), std::string::npos);
}

}  // namespace

namespace {

// Another XDP program on the same interface: xdp-filter. Where the kernel
// runs libxdp's dispatcher, both share the interface and both filter. Where
// it refuses the dispatcher (its freplace programs), each attaches alone, and
// whichever comes second is refused, saying so, while the first keeps
// filtering: never one silently replacing the other.
TEST_F(GateE2E, SharesTheInterfaceWithXdpFilterOrRefusesToReplaceIt) {
  sgtest::Listener listener(box.gateway(), 25);
  auto xdp_filter = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/sbin/xdp-filter");
    return sgtest::run_in(box.gateway(), args);
  };
  auto r = xdp_filter({"load", Sandbox::kGwIf, "--mode", "native"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct Unload {
    Sandbox& b;
    ~Unload() { sgtest::run_in(b.gateway(), {"/usr/sbin/xdp-filter", "unload", Sandbox::kGwIf, "--all"}); }
  } unload{box};
  auto loader_status = [&] {
    return sgtest::run_in(box.gateway(), {"/usr/sbin/xdp-loader", "status", Sandbox::kGwIf}).out;
  };
  std::string st = loader_status();
  if (st.find("xdp_dispatcher") != std::string::npos) {
    auto d = start("drop");
    json s = ctl_json({"status"});
    ASSERT_EQ(s["interfaces"].size(), 1u);
    EXPECT_TRUE(s["interfaces"][0]["dispatcher"].get<bool>());
    EXPECT_FALSE(s["interfaces"][0]["other_programs"].empty());
    EXPECT_EQ(connect(kEopV4), ConnectResult::Connected);
    EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
    ctl_ok({"detach", Sandbox::kGwIf});
    st = loader_status();
    EXPECT_NE(st.find("xdpfilt"), std::string::npos) << "xdp-filter must survive smtpgate's detach:\n" << st;
    return;
  }
  // No dispatcher: xdp-filter is attached alone; smtpgated must not take
  // its place.
  std::cout << "libxdp's dispatcher does not load on this kernel: checking that neither program replaces the other\n";
  {
    sgtest::Daemon d(box.gateway(), {sgtest::binary("smtpgated"), "--interface", Sandbox::kGwIf, "--pin-dir",
                                     box.pin_dir(), "--state-dir", box.state_dir(), "--no-feed", "--action", "drop"});
    EXPECT_FALSE(d.ready(10000));
    EXPECT_NE(d.stop(), 0);
    EXPECT_NE(d.stderr_text().find("already runs the XDP program xdpfilt"), std::string::npos) << d.stderr_text();
  }
  EXPECT_NE(loader_status().find("xdpfilt"), std::string::npos) << "xdp-filter must stay attached";
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::Connected) << "only xdp-filter (allowing all) is there";
  // The other order: smtpgate alone, then xdp-filter is refused.
  r = xdp_filter({"unload", Sandbox::kGwIf, "--all"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto d = start("drop");
  EXPECT_NE(d->stderr_text().find("dispatcher does not load on this kernel"), std::string::npos) << d->stderr_text();
  r = xdp_filter({"load", Sandbox::kGwIf, "--mode", "native"});
  EXPECT_NE(r.exit_code, 0) << "xdp-filter replaced smtpgate:\n" << loader_status();
  json s = ctl_json({"status"});
  ASSERT_EQ(s["interfaces"].size(), 1u);
  EXPECT_FALSE(s["interfaces"][0]["dispatcher"].get<bool>());
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
  EXPECT_EQ(connect(kEopV4), ConnectResult::Connected);
}

}  // namespace

namespace {

// GET /metrics from inside the gateway's namespace.
std::string scrape(const sgtest::Netns& ns, uint16_t port) {
  return ns.run<std::string>([port] {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      std::string req = "GET /metrics HTTP/1.0\r\n\r\n";
      ::send(fd, req.data(), req.size(), 0);
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, n);
    }
    ::close(fd);
    return out;
  });
}

// Whether an answer came whole: its body as long as its Content-Length says.
// (A slow machine can see an answer cut short by the server's own timeout;
// that is no answer, not a wrong one.)
bool whole_answer(const std::string& text) {
  size_t h = text.find("Content-Length: ");
  size_t body = text.find("\r\n\r\n");
  if (text.find("200 OK") == std::string::npos || h == std::string::npos || body == std::string::npos) return false;
  return text.size() - (body + 4) == std::strtoul(text.c_str() + h + 16, nullptr, 10);
}

// The value of one exposition line, e.g.
// smtpgate_range_refused_syns_total{kind="default",origin="default",range="default"}.
long metric(const std::string& text, const std::string& series) {
  size_t p = text.find("\n" + series + " ");
  if (p == std::string::npos) return -1;
  return std::atol(text.c_str() + p + series.size() + 2);
}

TEST_F(GateE2E, MetricsOverHttpMatchStats) {
  sgtest::Listener listener(box.gateway(), 25);
  auto d = start("drop", {"--metrics-listen", "127.0.0.1:9725"});
  for (int i = 0; i < 2; i++) EXPECT_EQ(connect(kEopV4), ConnectResult::Connected);
  for (int i = 0; i < 3; i++) EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);
  json stats = ctl_json({"stats"});
  std::string text = scrape(box.gateway(), 9725);
  ASSERT_NE(text.find("200 OK"), std::string::npos) << text;
  EXPECT_EQ(metric(text, R"(smtpgate_range_admitted_syns_total{kind="admit",origin="operator",range="40.92.0.0/15"})"),
            rule_counters("40.92.0.0/15")["admit_packets"].get<long>());
  EXPECT_EQ(metric(text, R"(smtpgate_range_refused_syns_total{kind="default",origin="default",range="default"})"),
            stats["default_rule"]["counters"]["refuse_packets"].get<long>());
  EXPECT_EQ(metric(text, R"(smtpgate_packets_total{verdict="drop"})"),
            stats["verdicts"]["drop"]["packets"].get<long>());
  EXPECT_EQ(metric(text, R"(smtpgate_program_attached{interface="gw0"})"), 1);
  EXPECT_EQ(metric(text, R"(smtpgate_ranges{kind="admit",origin="operator"})"), 2);
  EXPECT_EQ(metric(text, R"(smtpgate_range_refused_syns_total{kind="default",origin="default",range="default"})"), 3);
}

// SIGHUP swaps the configuration while the metrics thread renders it, with
// the interface list changing under the scrapes: each scrape shows one whole
// configuration's interfaces. Under ThreadSanitizer (scripts/test.sh) a
// configuration the two threads shared unguarded is reported, and the
// report fails the test.
TEST_F(GateE2E, ReloadsSwapTheConfigurationUnderTheMetricsThread) {
  // A second interface, inside the gateway's namespace (gone with it).
  box.gateway().ip("link add sgx0 type veth peer name sgx1");
  box.gateway().ip("link set sgx0 up");
  box.gateway().ip("link set sgx1 up");
  std::string conf = box.state_dir() + "/smtpgate.toml";
  auto write = [&](bool two) {
    smtpgate::write_file_atomic(conf, std::string("interfaces = [\"gw0\"") + (two ? ", \"sgx0\"" : "") +
                                          "]\naction = \"drop\"\n[feed]\nenabled = false\n"
                                          "[metrics]\nlisten = \"127.0.0.1:9725\"\n");
  };
  write(false);
  sgtest::Daemon d(box.gateway(), {sgtest::binary("smtpgated"), "--config", conf, "--pin-dir", box.pin_dir(),
                                   "--state-dir", box.state_dir()});
  ASSERT_TRUE(d.ready()) << d.stderr_text();
  std::atomic<bool> done{false};
  std::atomic<int> scrapes{0}, torn{0};
  std::string torn_text;  // the first torn answer, written by the scraper alone until it is joined
  std::thread scraper([&] {
    while (!done) {
      std::string text = scrape(box.gateway(), 9725);
      if (!whole_answer(text)) continue;  // cut short (a slow machine) or between accept and answer at stop
      scrapes++;
      if (metric(text, R"(smtpgate_program_attached{interface="gw0"})") != 1 && torn++ == 0) torn_text = text;
    }
  });
  constexpr int kReloads = 20;
  int reloaded = 0;
  for (int i = 1; i <= kReloads; i++) {
    write(i % 2 == 1);
    d.signal(SIGHUP);
    if (d.ready(10000)) reloaded++;
  }
  done = true;
  scraper.join();
  EXPECT_EQ(reloaded, kReloads) << d.stderr_text();
  EXPECT_GT(scrapes.load(), kReloads);
  EXPECT_EQ(torn.load(), 0) << torn_text;
  EXPECT_EQ(d.stop(), 0) << d.stderr_text();
  EXPECT_EQ(d.stderr_text().find("reload refused"), std::string::npos) << d.stderr_text();
  std::printf("%d scrapes during %d reloads\n", scrapes.load(), kReloads);
}

}  // namespace

namespace {

// Microsoft publishes a new port-25 range: a sender there is turned away
// before the sync and admitted after it, and no connect from the ranges
// already admitted is lost while the allowlist is swapped.
TEST_F(GateE2E, NewlyPublishedRangeIsAdmittedBySyncWithoutLosingConnects) {
  using sgtest::HttpServer;
  using sgtest::Reply;
  constexpr const char* kNewSender = "40.95.0.10";  // in 40.95.0.0/16, published in the new version
  box.add_sender_address(kNewSender);
  ctl_ok({"ranges", "del", "40.92.0.0/15"});  // EOP's ranges come from the feed alone

  std::string v1 =
      smtpgate::read_file(sgtest::fixture_path("m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json"));
  json v2 = json::parse(v1);
  for (auto& set : v2)
    if (set["id"] == 10) set["ips"].push_back("40.95.0.0/16");

  // The feed server lives in the gateway's namespace, where smtpgated asks it.
  auto server = box.gateway().run<std::shared_ptr<HttpServer>>([] { return std::make_shared<HttpServer>(); });
  server->route("/version/Worldwide", Reply::json(R"({"instance":"Worldwide","latest":"2025120100"})"));
  server->route("/endpoints/Worldwide", Reply::json(v1));
  server->route("/changes/Worldwide", Reply::json("[]"));

  sgtest::Listener listener(box.gateway(), 25);
  auto d = start("drop", {"--feed-url", server->url(), "--metrics-listen", "127.0.0.1:9725"});
  // The daemon's first check applies version 2025120100.
  for (int i = 0; i < 50 && ctl_json({"feed", "status"})["applied"].is_null(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_FALSE(ctl_json({"feed", "status"})["applied"].is_null()) << ctl_json({"feed", "status"}).dump();
  EXPECT_EQ(connect(kEopV4), ConnectResult::Connected);
  EXPECT_EQ(connect(kNewSender), ConnectResult::TimedOut);

  server->route("/version/Worldwide", Reply::json(R"({"instance":"Worldwide","latest":"2026010100"})"));
  server->route("/endpoints/Worldwide", Reply::json(v2.dump()));
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, lost{0};
  std::thread stream([&] {
    while (!stop) (connect(kEopV4, 2000) == ConnectResult::Connected ? ok : lost)++;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto r = ctl({"feed", "sync", "--feed-url", server->url()});
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  stream.join();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2026010100"), std::string::npos) << r.out;
  EXPECT_EQ(connect(kNewSender), ConnectResult::Connected);
  EXPECT_GT(ok.load(), 5);
  EXPECT_EQ(lost.load(), 0);
  json e = ctl_json({"explain", kNewSender});
  EXPECT_EQ(e["rule"]["range"], "40.95.0.0/16");
  EXPECT_EQ(e["rule"]["origin"], "feed");
  std::string text = scrape(box.gateway(), 9725);
  EXPECT_EQ(metric(text, R"(smtpgate_feed_info{feed_instance="Worldwide",version="2026010100"})"), 1) << text;
  EXPECT_EQ(metric(text, "smtpgate_feed_error"), 0);
  EXPECT_GT(metric(text, "smtpgate_feed_last_success_timestamp_seconds"), 0);
}

}  // namespace

namespace {

// SIGHUP re-reads smtpgate.toml and applies it; a broken file is refused and
// the running configuration kept.
TEST_F(GateE2E, SighupReloadsTheConfigAndRefusesABrokenOne) {
  sgtest::Listener listener(box.gateway(), 25);
  std::string conf = box.state_dir() + "/smtpgate.toml";
  auto write = [&](const std::string& text) { smtpgate::write_file_atomic(conf, text); };
  write("action = \"drop\"\n[feed]\nenabled = false\n[metrics]\nlisten = \"\"\n");
  sgtest::Daemon d(box.gateway(), {sgtest::binary("smtpgated"), "--config", conf, "--interface", Sandbox::kGwIf,
                                   "--pin-dir", box.pin_dir(), "--state-dir", box.state_dir()});
  ASSERT_TRUE(d.ready()) << d.stderr_text();
  EXPECT_EQ(connect(kStrangerV4), ConnectResult::TimedOut);

  write("action = \"reject\"\n[feed]\nenabled = false\n[metrics]\nlisten = \"\"\n");
  d.signal(SIGHUP);
  ASSERT_TRUE(d.ready());  // READY=1 again once the reload is done
  EXPECT_EQ(connect(kStrangerV4, 2000), ConnectResult::Refused);

  write("action = \"block\"\n");
  d.signal(SIGHUP);
  ASSERT_TRUE(d.ready());
  EXPECT_EQ(ctl_json({"status"})["action"], "reject");
  EXPECT_EQ(d.stop(), 0);
  EXPECT_NE(d.stderr_text().find("reload refused"), std::string::npos) << d.stderr_text();
}

}  // namespace
