// The Prometheus exposition of a real gate (maps pinned, SYNs run through the
// program): the whole text, byte for byte, as scrapers and alert rules know
// it; the same text in the node_exporter textfile and over HTTP.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "error.hpp"
#include "feed_sync.hpp"
#include "fsutil.hpp"
#include "http.hpp"
#include "metrics.hpp"
#include "netns.hpp"
#include "refusal_scene.hpp"

using namespace smtpgate;
using namespace std::chrono_literals;
using sgtest::RefusalScene;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A TCP connection to 127.0.0.1:port that sends nothing (-1 if refused).
int idle_connection(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string scrape(uint16_t port) {
  HttpOptions o;
  o.proxy = "";
  o.attempts = 1;
  return HttpClient(o).get("http://127.0.0.1:" + std::to_string(port) + "/metrics").body;
}

// A namespace of the test's own with loopback up: the fixed port is ours.
struct LoopbackNs {
  sgtest::Netns ns{"sgt" + std::to_string(::getpid()) + "met"};
  LoopbackNs() { ns.ip("link set lo up"); }
};

// The scene's feed state with fixed times, so that the text is fixed too.
void fix_feed_times(const Paths& paths) {
  FeedStatus f = read_feed_status(paths.state_dir);
  f.last_check = 1767225600;
  f.last_success = 1767218400;
  write_feed_status(paths.state_dir, f);
}

// What the exposition says of RefusalScene after send_stories(): names,
// labels (sorted), HELP and TYPE lines, and the order of the families are
// what dashboards and packaging/prometheus/smtpgate-alerts.yml rely on.
const char* kSceneExposition =
    R"(# HELP smtpgate_program_attached 1 when the gate is attached to the interface and uses the pinned maps
# TYPE smtpgate_program_attached gauge
smtpgate_program_attached{interface="lo"} 0
# HELP smtpgate_range_admitted_syns_total Guarded SYNs admitted, by deciding range
# TYPE smtpgate_range_admitted_syns_total counter
smtpgate_range_admitted_syns_total{kind="watch",origin="feed-other",range="23.103.191.0/24"} 0
smtpgate_range_admitted_syns_total{kind="admit",origin="feed",range="40.92.0.0/15"} 2
smtpgate_range_admitted_syns_total{kind="watch",origin="feed-pending",range="52.100.0.0/14"} 0
smtpgate_range_admitted_syns_total{kind="deny",origin="operator",range="2001:db8:77::/48"} 0
smtpgate_range_admitted_syns_total{kind="watch",origin="feed-other",range="2001:489a:2202::/62"} 0
smtpgate_range_admitted_syns_total{kind="admit",origin="feed",range="2a01:111:f400::/48"} 0
smtpgate_range_admitted_syns_total{kind="default",origin="default",range="default"} 0
# HELP smtpgate_range_refused_syns_total Guarded SYNs refused (dropped, rejected or monitored), by deciding range
# TYPE smtpgate_range_refused_syns_total counter
smtpgate_range_refused_syns_total{kind="watch",origin="feed-other",range="23.103.191.0/24"} 3
smtpgate_range_refused_syns_total{kind="admit",origin="feed",range="40.92.0.0/15"} 0
smtpgate_range_refused_syns_total{kind="watch",origin="feed-pending",range="52.100.0.0/14"} 2
smtpgate_range_refused_syns_total{kind="deny",origin="operator",range="2001:db8:77::/48"} 1
smtpgate_range_refused_syns_total{kind="watch",origin="feed-other",range="2001:489a:2202::/62"} 0
smtpgate_range_refused_syns_total{kind="admit",origin="feed",range="2a01:111:f400::/48"} 0
smtpgate_range_refused_syns_total{kind="default",origin="default",range="default"} 1
# HELP smtpgate_feed_gap_sources Sources turned away in the last day whose PTR name, confirmed forward, is an EOP outbound host the published set does not hold
# TYPE smtpgate_feed_gap_sources gauge
smtpgate_feed_gap_sources 0
# HELP smtpgate_ranges Ranges in the published allowlist, by origin and kind
# TYPE smtpgate_ranges gauge
smtpgate_ranges{kind="admit",origin="feed"} 2
smtpgate_ranges{kind="watch",origin="feed-other"} 2
smtpgate_ranges{kind="watch",origin="feed-pending"} 1
smtpgate_ranges{kind="deny",origin="operator"} 1
# HELP smtpgate_packets_total Packets seen by the program, by verdict
# TYPE smtpgate_packets_total counter
smtpgate_packets_total{verdict="pass"} 0
smtpgate_packets_total{verdict="admit"} 2
smtpgate_packets_total{verdict="drop"} 7
smtpgate_packets_total{verdict="reject"} 0
smtpgate_packets_total{verdict="monitor"} 0
# HELP smtpgate_bytes_total Bytes seen by the program, by verdict
# TYPE smtpgate_bytes_total counter
smtpgate_bytes_total{verdict="pass"} 0
smtpgate_bytes_total{verdict="admit"} 108
smtpgate_bytes_total{verdict="drop"} 398
smtpgate_bytes_total{verdict="reject"} 0
smtpgate_bytes_total{verdict="monitor"} 0
# HELP smtpgate_reason_packets_total Packets seen by the program, by reason
# TYPE smtpgate_reason_packets_total counter
smtpgate_reason_packets_total{reason="not_ip"} 0
smtpgate_reason_packets_total{reason="not_tcp"} 0
smtpgate_reason_packets_total{reason="other_port"} 0
smtpgate_reason_packets_total{reason="not_syn"} 0
smtpgate_reason_packets_total{reason="later_fragment"} 0
smtpgate_reason_packets_total{reason="malformed"} 0
smtpgate_reason_packets_total{reason="rule_admit"} 2
smtpgate_reason_packets_total{reason="rule_deny"} 1
smtpgate_reason_packets_total{reason="rule_watch"} 5
smtpgate_reason_packets_total{reason="default"} 1
smtpgate_reason_packets_total{reason="no_allowlist"} 0
smtpgate_reason_packets_total{reason="reject_as_drop"} 0
smtpgate_reason_packets_total{reason="tag_limit"} 0
# HELP smtpgate_events_suppressed_total Refusal events held back by the in-kernel rate limit
# TYPE smtpgate_events_suppressed_total counter
smtpgate_events_suppressed_total 0
# HELP smtpgate_recent_skipped_total Default-rule refusals not recorded in the recently-refused table (its per-CPU budget was spent)
# TYPE smtpgate_recent_skipped_total counter
smtpgate_recent_skipped_total 0
# HELP smtpgate_recent_range_skipped_total Range refusals not recorded in the recently-refused table (the ranges' per-CPU budget was spent)
# TYPE smtpgate_recent_range_skipped_total counter
smtpgate_recent_range_skipped_total 0
# HELP smtpgate_allowlist_generation Publishes of the allowlist since the maps were created
# TYPE smtpgate_allowlist_generation gauge
smtpgate_allowlist_generation 2
# HELP smtpgate_action The action for refused sources (1 for the one in force)
# TYPE smtpgate_action gauge
smtpgate_action{action="drop"} 1
# HELP smtpgate_feed_info The feed version applied (1 for the one in force)
# TYPE smtpgate_feed_info gauge
smtpgate_feed_info{feed_instance="Worldwide",version="2025120100"} 1
# HELP smtpgate_feed_applied_version The feed version applied, as a number (YYYYMMDDNN)
# TYPE smtpgate_feed_applied_version gauge
smtpgate_feed_applied_version 2025120100
# HELP smtpgate_feed_announced_version The newest feed version the service announced, as a number (YYYYMMDDNN)
# TYPE smtpgate_feed_announced_version gauge
smtpgate_feed_announced_version 2026010100
# HELP smtpgate_feed_last_check_timestamp_seconds When the feed was last checked (0: never)
# TYPE smtpgate_feed_last_check_timestamp_seconds gauge
smtpgate_feed_last_check_timestamp_seconds 1767225600
# HELP smtpgate_feed_last_success_timestamp_seconds When a check last ended with the latest version applied (0: never)
# TYPE smtpgate_feed_last_success_timestamp_seconds gauge
smtpgate_feed_last_success_timestamp_seconds 1767218400
# HELP smtpgate_feed_error 1 when the last feed check failed or a version was refused
# TYPE smtpgate_feed_error gauge
smtpgate_feed_error 1
# HELP smtpgate_feed_stale 1 when the service announced a version that is not applied
# TYPE smtpgate_feed_stale gauge
smtpgate_feed_stale 1
# HELP smtpgate_drops_recording 1 when this smtpgated reads refused SYNs into the drop log (0: another process holds drops.lock, or it cannot be taken)
# TYPE smtpgate_drops_recording gauge
smtpgate_drops_recording 0
# HELP smtpgate_bpf_syscall_failures_total BPF syscalls that failed while reading the gate
# TYPE smtpgate_bpf_syscall_failures_total counter
smtpgate_bpf_syscall_failures_total 0
)";

}  // namespace

TEST(Metrics, ExpositionOfARealGateIsUnchanged) {
  RefusalScene scene("metrics");
  scene.send_stories();
  fix_feed_times(scene.paths());
  std::string text = render_metrics(scene.paths(), {"lo"});
  EXPECT_EQ(text, kSceneExposition);
}

TEST(Metrics, RangeRefusalsPastTheirRecordingBudgetAreCounted) {
  // The recently-refused table's budget is per CPU: one CPU for the burst.
  cpu_set_t before, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof(before), &before), 0);
  CPU_ZERO(&one);
  CPU_SET(0, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  RefusalScene scene("metrics-range");
  const uint64_t kBurst = 2 * SG_RECENT_RANGE_PER_SEC;
  const auto t0 = std::chrono::steady_clock::now();
  scene.syn(RefusalScene::kDod, int(kBurst));  // a watch range
  const bool one_window = std::chrono::steady_clock::now() - t0 < 900ms;
  sched_setaffinity(0, sizeof(before), &before);
  const uint64_t skipped = scene.gate().maps().range_skipped();
  if (one_window)
    EXPECT_EQ(skipped, kBurst - SG_RECENT_RANGE_PER_SEC);
  else
    std::cerr << "the burst took over 0.9 s: its exact count is not checked\n";
  EXPECT_GT(skipped, 0u);
  EXPECT_EQ(scene.gate().maps().recent_skipped(), 0u);
  std::string text = render_metrics(scene.paths(), {"lo"});
  EXPECT_TRUE(has(text, "\nsmtpgate_recent_range_skipped_total " + std::to_string(skipped) + "\n")) << text;
  EXPECT_TRUE(has(text, "\nsmtpgate_recent_skipped_total 0\n")) << text;
}

TEST(Metrics, TextfileAndScrapeCarryTheSameExposition) {
  RefusalScene scene("metrics-http");
  scene.send_stories();
  fix_feed_times(scene.paths());
  std::string text = render_metrics(scene.paths(), {"lo"});
  std::string file = scene.paths().state_dir + "/smtpgate.prom";
  write_metrics_textfile(file, text);
  EXPECT_EQ(read_file(file), text);

  LoopbackNs lo;
  std::string body = lo.ns.run<std::string>([&] {
    MetricsServer server("127.0.0.1:9725", [&] { return collect_metrics(scene.paths(), {"lo"}); });
    return scrape(server.port());
  });
  // Over HTTP the exposer puts its own families (exposer_*) first; the
  // gate's follow, exactly as in the textfile.
  ASSERT_GE(body.size(), text.size()) << body;
  EXPECT_EQ(body.substr(body.size() - text.size()), text);
  std::istringstream extra(body.substr(0, body.size() - text.size()));
  for (std::string line; std::getline(extra, line);)
    EXPECT_TRUE(line.rfind("exposer_", 0) == 0 || line.rfind("# HELP exposer_", 0) == 0 ||
                line.rfind("# TYPE exposer_", 0) == 0)
        << line;
}

// Each idle connection holds one of the exposer's threads until its request
// timeout: with fewer than MetricsServer::kThreads of them, a scrape waits
// for none. Stopping (SIGTERM) waits them out for at most that timeout.
TEST(Metrics, AScrapeAnswersWithinASecondWhileFiftyConnectionsIdle) {
  LoopbackNs lo;
  std::chrono::milliseconds scrape_took{}, stop_took{};
  std::string body;
  lo.ns.run<int>([&] {
    std::optional<MetricsServer> server;
    server.emplace("127.0.0.1:9725", [] { return collect_metrics(Paths{"/nonexistent", "/nonexistent"}, {}); });
    std::vector<int> idle;
    for (int i = 0; i < 50; i++) idle.push_back(idle_connection(server->port()));
    std::this_thread::sleep_for(200ms);  // accepted and handed to threads by now
    auto t0 = std::chrono::steady_clock::now();
    body = scrape(server->port());
    auto t1 = std::chrono::steady_clock::now();
    server.reset();
    auto t2 = std::chrono::steady_clock::now();
    scrape_took = std::chrono::duration_cast<std::chrono::milliseconds>(t1 - t0);
    stop_took = std::chrono::duration_cast<std::chrono::milliseconds>(t2 - t1);
    for (int fd : idle) {
      EXPECT_GE(fd, 0);
      if (fd >= 0) ::close(fd);
    }
    return 0;
  });
  EXPECT_TRUE(has(body, "smtpgate_bpf_syscall_failures_total")) << body;
  EXPECT_LT(scrape_took, 1000ms);
  EXPECT_LT(stop_took, std::chrono::milliseconds(MetricsServer::kRequestTimeoutMs + 500));
}

// A scrape that throws answers an empty exposition; the server lives on.
TEST(Metrics, AFailingScrapeLeavesTheServerServing) {
  LoopbackNs lo;
  std::string second = lo.ns.run<std::string>([] {
    int calls = 0;
    MetricsServer server("127.0.0.1:9725", [&]() -> MetricFamilies {
      if (calls++ == 0) throw std::runtime_error("maps gone");
      return collect_metrics(Paths{"/nonexistent", "/nonexistent"}, {});
    });
    std::string first = scrape(server.port());
    EXPECT_FALSE(has(first, "smtpgate_")) << first;
    return scrape(server.port());
  });
  EXPECT_TRUE(has(second, "smtpgate_bpf_syscall_failures_total")) << second;
}

TEST(Metrics, ABusyPortIsNamedInOneLine) {
  LoopbackNs lo;
  std::string err = lo.ns.run<std::string>([] {
    MetricsServer first("127.0.0.1:9725", [] { return MetricFamilies{}; });
    try {
      MetricsServer second("127.0.0.1:9725", [] { return MetricFamilies{}; });
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  });
  EXPECT_TRUE(has(err, "127.0.0.1:9725")) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
}
