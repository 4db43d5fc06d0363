// Feed gaps: EOP sending from addresses it has not published. A real DNS
// server (Debian's dnsmasq on a loopback port) answers PTR, A and AAAA for
// the sources the gate turned away; the scan confirms each PTR name forward
// and marks an EOP outbound host the published set does not hold. A PTR
// name that does not lead back is never trusted.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

#include "drops.hpp"
#include "fcrdns.hpp"
#include "feed_gap.hpp"
#include "metrics.hpp"
#include "netns.hpp"
#include "refusal_scene.hpp"

using namespace smtpgate;
using nlohmann::json;
using sgtest::RefusalScene;

namespace {

constexpr const char* kRelay = "40.95.1.10";  // EOP's relay pool: a feed gap
constexpr const char* kRelayName = "mail-am6eur05on2101.outbound.protection.outlook.com";
constexpr const char* kForged = "40.95.1.11";         // PTR under EOP's domain, A elsewhere
constexpr const char* kGccHigh = "23.103.209.74";     // GCC High's outbound host
constexpr const char* kRelayV6 = "2603:10a6:802::5";  // an IPv6 EOP host, unpublished
constexpr const char* kScanner = "203.0.113.9";       // RefusalScene::kStranger: a name, not EOP's

// dnsmasq serving only the records given, on 127.0.0.1:PORT, until destroyed.
class Dnsmasq {
 public:
  explicit Dnsmasq(const std::vector<std::string>& records) : port_(sgtest::free_loopback_port(SOCK_DGRAM)) {
    std::vector<std::string> args{"dnsmasq",
                                  "--keep-in-foreground",
                                  "--no-resolv",
                                  "--no-hosts",
                                  "--no-poll",
                                  "--bind-interfaces",
                                  "--listen-address=127.0.0.1",
                                  "--interface=lo",
                                  "--except-interface=eth0",
                                  "--port=" + std::to_string(port_),
                                  "--user=root",
                                  "--pid-file=",
                                  "--conf-file=/dev/null",
                                  "--log-facility=/dev/null"};
    args.insert(args.end(), records.begin(), records.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("dnsmasq", argv.data());
      ::_exit(127);
    }
    // Ready when it answers.
    FcrdnsResolver probe(server(), std::chrono::milliseconds(300));
    for (int i = 0; i < 50; i++) {
      if (probe.confirm(Cidr::parse_address(kScanner)).status != Fcrdns::Status::Failed) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw std::runtime_error("dnsmasq did not answer on " + server());
  }
  ~Dnsmasq() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  std::string server() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

std::vector<std::string> records() {
  return {"--host-record=" + std::string(kRelayName) + "," + kRelay,
          // A PTR under EOP's domain whose name points elsewhere.
          "--ptr-record=11.1.95.40.in-addr.arpa,mail-forged.outbound.protection.outlook.com",
          "--host-record=mail-forged.outbound.protection.outlook.com,198.51.100.7",
          "--host-record=mail-cy1usg02on0074.outbound.protection.office365.us," + std::string(kGccHigh),
          "--host-record=mail-db8eur05on0005.outbound.protection.outlook.com," + std::string(kRelayV6),
          "--host-record=scanner.example.net," + std::string(kScanner),
          // Answered here, and without a name: NXDOMAIN rather than REFUSED.
          "--local=/18.198.in-addr.arpa/"};
}

TEST(Fcrdns, ConfirmsForwardAndNeverTrustsANameThatDoesNotLeadBack) {
  Dnsmasq dns(records());
  FcrdnsResolver r(dns.server(), std::chrono::milliseconds(1500));
  Fcrdns relay = r.confirm(Cidr::parse_address(kRelay));
  EXPECT_EQ(relay.status, Fcrdns::Status::Confirmed) << relay.error;
  EXPECT_EQ(relay.name, kRelayName);
  Fcrdns v6 = r.confirm(Cidr::parse_address(kRelayV6));
  EXPECT_EQ(v6.status, Fcrdns::Status::Confirmed) << v6.error;
  Fcrdns forged = r.confirm(Cidr::parse_address(kForged));
  EXPECT_EQ(forged.status, Fcrdns::Status::NotConfirmed);
  EXPECT_EQ(forged.name, "mail-forged.outbound.protection.outlook.com");
  EXPECT_EQ(r.confirm(Cidr::parse_address("198.18.0.1")).status, Fcrdns::Status::NoName);
}

TEST(Fcrdns, EveryWaitHasADeadline) {
  // A resolver that never answers: a bound UDP socket nobody reads.
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  FcrdnsResolver r("127.0.0.1:" + std::to_string(ntohs(a.sin_port)), std::chrono::milliseconds(400));
  auto t0 = std::chrono::steady_clock::now();
  Fcrdns f = r.confirm(Cidr::parse_address(kRelay));
  auto took = std::chrono::steady_clock::now() - t0;
  ::close(fd);
  EXPECT_EQ(f.status, Fcrdns::Status::Failed);
  EXPECT_LT(took, std::chrono::milliseconds(900)) << "the 400 ms deadline was not kept";
}

TEST(Fcrdns, RefusesAResolverListThatDoesNotParse) {
  EXPECT_THROW(FcrdnsResolver("not an address", std::chrono::milliseconds(500)), InputError);
}

TEST(FeedGapDomain, OnlyEopOutboundDomainsOnALabelBoundary) {
  EXPECT_STREQ(eop_outbound_domain("mail-x.outbound.protection.outlook.com.")->domain,
               "outbound.protection.outlook.com");
  EXPECT_STREQ(eop_outbound_domain("MAIL-X.OUTBOUND.PROTECTION.OFFICE365.US")->domain,
               "outbound.protection.office365.us");
  EXPECT_STREQ(eop_outbound_domain("mail-x.outbound.protection.partner.outlook.cn")->domain,
               "outbound.protection.partner.outlook.cn");
  EXPECT_EQ(eop_outbound_domain("evil-outbound.protection.outlook.com"), nullptr);
  EXPECT_EQ(eop_outbound_domain("outbound.protection.outlook.com"), nullptr);
  EXPECT_EQ(eop_outbound_domain("mail-x.outbound.protection.outlook.com.evil.example"), nullptr);
}

TEST(FeedGap, TheWatcherAlsoLooksUpSourcesOnlyTheEventStreamNamed) {
  // Under a flood of strangers the recently-refused table can let an EOP
  // host go before the minute's scan; its event in the drop log still names
  // it. The table here is empty: only the drop log holds the source.
  Dnsmasq dns(records());
  RefusalScene scene("gaplog");
  auto cfg = std::make_shared<DaemonConfig>();
  cfg->paths = scene.paths();
  cfg->feed_gaps.resolver = dns.server();
  cfg->feed_gaps.interval_s = 1;
  CurrentConfig current(cfg);
  FeedGapWatcher watcher(current);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // its first scan: nothing to look up
  int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::ofstream(drop_log_path(scene.paths().state_dir), std::ios::app)
      << nlohmann::json{{"unix_ns", ns}, {"source", kRelay}, {"verdict", "drop"}}.dump() << "\n";
  bool found = false;
  for (int i = 0; i < 50 && !found; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    FeedGaps gaps = read_feed_gaps(scene.paths().state_dir);
    auto it = gaps.find(Cidr::parse_address(kRelay));
    found = it != gaps.end() && it->second.gap();
  }
  EXPECT_TRUE(found) << "the drop log's source was not looked up within 5 s";
}

TEST(FeedGap, TopDropsExplainAndTheMetricMarkAConfirmedEopHostTheFeedLacks) {
  Dnsmasq dns(records());
  RefusalScene scene("gap");
  for (const char* src : {kRelay, kForged, kGccHigh, kRelayV6, kScanner}) scene.syn(src, 2);

  FcrdnsResolver resolver(dns.server(), std::chrono::milliseconds(1500));
  int64_t now = ::time(nullptr);
  EXPECT_EQ(scan_feed_gaps(scene.paths(), resolver, now, 30), 5u);
  // Cached: nothing asked again within a day; at most the budget per scan.
  EXPECT_EQ(scan_feed_gaps(scene.paths(), resolver, now + 60, 30), 0u);
  EXPECT_EQ(scan_feed_gaps(scene.paths(), resolver, now + kFeedGapAnswerTtl + 1, 2), 2u);

  json top = scene.ctl_json({"top"});
  std::map<std::string, json> by_source;
  for (const auto& s : top["sources"]) by_source[s["source"]] = s;
  ASSERT_TRUE(by_source[kRelay]["feed_gap"].is_object()) << top.dump(2);
  EXPECT_EQ(by_source[kRelay]["feed_gap"]["name"], kRelayName);
  EXPECT_EQ(by_source[kRelay]["microsoft"], true);
  EXPECT_EQ(by_source[kGccHigh]["feed_gap"]["domain"], "outbound.protection.office365.us");
  EXPECT_TRUE(by_source[kRelayV6]["feed_gap"].is_object());
  EXPECT_TRUE(by_source[kForged]["feed_gap"].is_null()) << "a PTR that does not confirm forward was trusted";
  EXPECT_TRUE(by_source[kScanner]["feed_gap"].is_null());
  auto text = scene.ctl({"top"});
  EXPECT_NE(text.out.find(std::string("FEED GAP: EOP host ") + kRelayName), std::string::npos) << text.out;

  json e = scene.ctl_json({"explain", kRelay});
  EXPECT_EQ(e["feed_gap"]["name"], kRelayName);
  EXPECT_EQ(e["feed"]["in_applied"], false);
  bool advised = false;
  for (const auto& a : e["advice"])
    advised = advised || (a.get<std::string>().find("published port-25 set does not hold it") != std::string::npos &&
                          a.get<std::string>().find("smtpgatectl ranges add 40.95.1.0/24") != std::string::npos);
  EXPECT_TRUE(advised) << e["advice"].dump(2);
  EXPECT_TRUE(scene.ctl_json({"explain", kForged})["feed_gap"].is_null());

  auto drops = scene.ctl({"-j", "drops", "--since", "1h"});
  ASSERT_EQ(drops.exit_code, 0) << drops.err;
  size_t marked = 0, relay_lines = 0;
  for (size_t p = 0, n; p < drops.out.size(); p = n + 1) {
    n = drops.out.find('\n', p);
    if (n == std::string::npos) n = drops.out.size();
    if (n == p) continue;
    json r = json::parse(drops.out.substr(p, n - p));
    if (r["source"] == kRelay) relay_lines++;
    if (r["feed_gap"].is_object()) {
      marked++;
      EXPECT_NE(r["source"], kForged);
    }
  }
  EXPECT_EQ(relay_lines, 2u) << drops.out;
  EXPECT_EQ(marked, 6u) << drops.out;  // kRelay, kGccHigh, kRelayV6: two SYNs each

  std::string metrics = render_metrics(scene.paths(), {});
  EXPECT_NE(metrics.find("\nsmtpgate_feed_gap_sources 3\n"), std::string::npos) << metrics;
  // admit_confirmed_eop is off by default: marked, still turned away.
  EXPECT_EQ(scene.syn(kRelay), XDP_DROP);
}

TEST(FeedGap, AdmitConfirmedEopAdmitsTheHostUntilItGoesQuiet) {
  Dnsmasq dns(records());
  RefusalScene scene("admit");
  for (const char* src : {kRelay, kForged}) scene.syn(src);
  FcrdnsResolver resolver(dns.server(), std::chrono::milliseconds(1500));
  FeedGapConfig policy;
  policy.admit_confirmed_eop = "address";
  policy.admit_days = 7;
  const int64_t day = 24 * 3600, t0 = ::time(nullptr);

  scan_feed_gaps(scene.paths(), resolver, t0, 30, nullptr, policy);
  EXPECT_EQ(scene.syn(kRelay), XDP_PASS) << "a confirmed EOP host was not admitted";
  EXPECT_EQ(scene.syn(kForged), XDP_DROP) << "a PTR that does not confirm forward was admitted";

  json listed = scene.ctl_json({"ranges", "list"});
  bool in_list = false;
  for (const auto& r : listed["ranges"])
    in_list = in_list || (r["range"] == std::string(kRelay) + "/32" && r["origin"] == "eop-confirmed");
  EXPECT_TRUE(in_list) << listed.dump(2);
  json e = scene.ctl_json({"explain", kRelay});
  EXPECT_EQ(e["verdict"], "admit");
  EXPECT_EQ(e["rule"]["origin"], "eop-confirmed");
  EXPECT_NE(e["rule"]["note"].get<std::string>().find(std::string("EOP host ") + kRelayName), std::string::npos);
  EXPECT_NE(e["rule"]["note"].get<std::string>().find("admitted by admit_confirmed_eop until"), std::string::npos);

  // Seen again on day 6 (a SYN admitted since): renewed for 7 more days.
  scan_feed_gaps(scene.paths(), resolver, t0 + 6 * day, 30, nullptr, policy);
  scan_feed_gaps(scene.paths(), resolver, t0 + 12 * day, 30, nullptr, policy);
  EXPECT_EQ(scene.syn(kForged), XDP_DROP);
  ASSERT_EQ(read_feed_gaps(scene.paths().state_dir).at(Cidr::parse_address(kRelay)).admitted,
            std::string(kRelay) + "/32");
  // Quiet for 7 days after that: the admission ends and it is refused again.
  scan_feed_gaps(scene.paths(), resolver, t0 + 20 * day, 30, nullptr, policy);
  EXPECT_EQ(scene.syn(kRelay), XDP_DROP) << "an admission outlived admit_days without traffic";
  EXPECT_EQ(scene.ctl_json({"explain", kRelay})["rule"]["origin"], "default");
}

}  // namespace
