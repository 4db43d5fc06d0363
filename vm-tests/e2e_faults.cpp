// Faults, at the daemon's level, on a real kernel: smtpgated killed with
// SIGKILL at random moments of feed updates, a feed server that hangs, resets,
// drips or answers late (at start and while the daemon serves), an answer in
// a foreign encoding, a state directory that is full or read-only, and two
// smtpgatectl writers racing the daemon. In every case the gate keeps
// filtering with one whole allowlist, errors are one line, nothing is lost,
// and nothing waits for the feed server.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "feed_sync.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "http_server.hpp"
#include "netns.hpp"
#include "packet_builder.hpp"
#include "state.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using sgtest::HttpServer;
using sgtest::Reply;
using sgtest::Sandbox;
namespace fs = std::filesystem;

namespace {

// The port-25 set's six published ranges, and one more per feed version:
// 40.95.N.0/24 is in version N only, so the allowlist names its version.
const std::vector<std::string> kBase = {"40.92.0.0/15",  "40.107.0.0/16",      "52.100.0.0/14",
                                        "104.47.0.0/17", "2a01:111:f400::/48", "2a01:111:f403::/48"};
std::string version_string(int n) { return std::to_string(2026010100LL + n); }
std::string extra_range(int n) { return "40.95." + std::to_string(n) + ".0/24"; }
std::string extra_source(int n) { return "40.95." + std::to_string(n) + ".9"; }

std::set<std::string> version_ranges(int n) {
  std::set<std::string> s(kBase.begin(), kBase.end());
  s.insert(extra_range(n));
  return s;
}

std::string endpoints_json(int n) {
  json sets = json::array();
  json ips = json::array();
  for (const auto& r : version_ranges(n)) ips.push_back(r);
  sets.push_back({{"id", 10},
                  {"serviceArea", "Exchange"},
                  {"serviceAreaDisplayName", "Exchange Online"},
                  {"urls", {"*.mail.protection.outlook.com", "*.mx.microsoft"}},
                  {"ips", ips},
                  {"tcpPorts", "25"},
                  {"expressRoute", false},
                  {"category", "Allow"},
                  {"required", false}});
  return sets.dump();
}

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    server = box.gateway().run<std::shared_ptr<HttpServer>>([] { return std::make_shared<HttpServer>(); });
    serve(0);
  }

  // The feed announces version n.
  void serve(int n) {
    server->route("/version/Worldwide",
                  Reply::json(R"({"instance":"Worldwide","latest":")" + version_string(n) + R"("})"));
    server->route("/endpoints/Worldwide", Reply::json(endpoints_json(n)));
    server->route("/changes/Worldwide", Reply::json("[]"));
  }

  // Each version's ranges are exactly what it lists: no removal grace.
  std::vector<std::string> daemon_argv() {
    if (config.empty()) {
      config = "/tmp/sgt" + std::to_string(::getpid()) + "faults.toml";
      smtpgate::write_file_atomic(config, "[feed]\nremoval_grace_days = 0\n");
    }
    return {sgtest::binary("smtpgated"),
            "--config",
            config,
            "--interface",
            Sandbox::kGwIf,
            "--pin-dir",
            box.pin_dir(),
            "--state-dir",
            box.state_dir(),
            "--action",
            "drop",
            "--feed-url",
            server->url(),
            "--metrics-listen",
            ""};
  }
  void TearDown() override {
    if (!config.empty()) ::unlink(config.c_str());
  }
  std::string config;
  // Started and ready, and the feed's first check done: with a last known
  // good it runs after READY=1.
  std::unique_ptr<sgtest::Daemon> start_ready() {
    auto d = std::make_unique<sgtest::Daemon>(box.gateway(), daemon_argv());
    if (!d->ready(60000)) ADD_FAILURE() << "smtpgated did not become ready:\n" << d->stderr_text();
    if (!first_check_done()) ADD_FAILURE() << "smtpgated did not check the feed:\n" << d->stderr_text();
    return d;
  }
  // A due check (make_check_due) sets the next one when it ends.
  bool first_check_done() {
    return wait_for([&] { return smtpgate::read_feed_status(box.state_dir()).next_check != 0; }, 120s);
  }

  sgtest::ProcResult ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir",
                                  box.state_dir()};
    argv.insert(argv.end(), args.begin(), args.end());
    return sgtest::run_in(box.gateway(), argv);
  }

  // What a restart after the feed's interval sees: the next check is due.
  void make_check_due() {
    smtpgate::FeedStatus s = smtpgate::read_feed_status(box.state_dir());
    s.next_check = 0;
    smtpgate::write_feed_status(box.state_dir(), s);
  }
  std::string applied_version() {
    auto s = smtpgate::read_feed_status(box.state_dir());
    return s.applied ? s.applied->version : "";
  }

  // The admitted prefixes the pinned maps hold now.
  std::set<std::string> active_admits() {
    std::set<std::string> out;
    for (const auto& e : smtpgate::GateMaps::open_pinned(box.pin_dir()).active_entries())
      if (e.kind == smtpgate::RuleKind::Admit) out.insert(e.prefix.str());
    return out;
  }

  // The version whose ranges the allowlist is, exactly; -1 if none of 0..upto.
  int active_version(int upto) {
    auto admits = active_admits();
    for (int n = 0; n <= upto; n++)
      if (admits == version_ranges(n)) return n;
    return -1;
  }

  // The program attached to the gateway's interface (its fd; -1 if none).
  int attached_prog_fd() {
    auto info = box.gateway().run<smtpgate::AttachedInfo>([] { return smtpgate::query_attached(Sandbox::kGwIf); });
    return info.attached ? bpf_prog_get_fd_by_id(info.prog_id) : -1;
  }

  // One SYN from src through that program.
  static uint32_t verdict(int prog_fd, const std::string& src) {
    auto frame = sgtest::Packet().eth().ipv4(src, Sandbox::kGwV4).tcp(40000, 25, sgtest::SYN).bytes();
    std::vector<uint8_t> out(frame.size() + 64);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()), .data_size_out = static_cast<uint32_t>(out.size()),
                .repeat = 1);
    return bpf_prog_test_run_opts(prog_fd, &opts) == 0 ? opts.retval : UINT32_MAX;
  }

  // The attached program admits version n's own range and none of the other
  // versions' in `others`.
  void expect_filters_as(int n, std::set<int> others, const std::string& when) {
    int fd = attached_prog_fd();
    ASSERT_GE(fd, 0) << when << ": no program attached";
    EXPECT_EQ(verdict(fd, "40.92.0.10"), XDP_PASS) << when;
    EXPECT_EQ(verdict(fd, "203.0.113.10"), XDP_DROP) << when;
    others.insert(n);
    for (int m : others)
      EXPECT_EQ(verdict(fd, extra_source(m)), m == n ? XDP_PASS : XDP_DROP)
          << when << ": source of version " << m << " with version " << n << " active";
    ::close(fd);
  }

  // Polls pred every 100 ms until it holds (true) or the time is up (false).
  template <typename Pred>
  static bool wait_for(Pred pred, std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= end) return false;
      std::this_thread::sleep_for(100ms);
    }
    return true;
  }

  // The state, not the lock files (empty; a daemon makes drops.lock when
  // it takes it, which may be after a test ended the one before).
  std::map<std::string, std::string> state_files() {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(box.state_dir()))
      if (e.is_regular_file() && e.path().extension() != ".lock")
        out[e.path().filename()] = smtpgate::read_file(e.path());
    return out;
  }

  Sandbox box;
  std::shared_ptr<HttpServer> server;
};

TEST_F(Faults, KilledDuringHundredFeedUpdatesAlwaysLeavesOneWholeAllowlist) {
  constexpr int kUpdates = 100;
  // Version 0 applied by a first start that is left alone; how long an
  // update takes sets the window the kills fall in.
  {
    auto d = start_ready();
    ASSERT_EQ(applied_version(), version_string(0));
    d->kill_hard();
  }
  serve(1);
  make_check_due();
  auto t0 = std::chrono::steady_clock::now();
  {
    sgtest::Daemon d(box.gateway(), daemon_argv());
    ASSERT_TRUE(d.ready(60000)) << d.stderr_text();
    ASSERT_TRUE(first_check_done()) << d.stderr_text();
    d.kill_hard();
  }
  auto full = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  ASSERT_EQ(applied_version(), version_string(1));

  // Kills fall uniformly in [0, 2w]; w follows the moment an update is
  // recorded (longer after a kill that came too early, shorter after one that
  // came late), so the kills straddle it whatever the machine's speed.
  std::mt19937 rng(::testing::UnitTest::GetInstance()->random_seed());
  double window = static_cast<double>(full.count()) / 2;
  int maps_version = 1, interrupted = 0, completed = 0;
  for (int n = 2; n < 2 + kUpdates; n++) {
    serve(n);
    make_check_due();
    int state_version = static_cast<int>(std::stoll(applied_version()) - 2026010100LL);
    int ms = std::uniform_int_distribution<int>(0, static_cast<int>(2 * window))(rng);
    {
      sgtest::Daemon d(box.gateway(), daemon_argv());
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      d.kill_hard();
    }
    std::string when = "update " + std::to_string(n) + ", killed after " + std::to_string(ms) + " ms";
    int v = active_version(n);
    // Whole and one of: what the maps held, what the state held, the new one.
    EXPECT_TRUE(v == maps_version || v == state_version || v == n)
        << when << ": allowlist is no version's (maps had " << maps_version << ", state " << state_version << ")";
    if (v < 0) continue;
    expect_filters_as(v, {maps_version, state_version, n}, when);
    maps_version = v;
    bool recorded = applied_version() == version_string(n);
    (recorded ? completed : interrupted)++;
    window *= recorded ? 0.9 : 1.1;
  }
  RecordProperty("kills", kUpdates);
  RecordProperty("kills_before_update_recorded", interrupted);
  RecordProperty("kills_after_update_recorded", completed);
  std::printf(
      "%d kills: %d before the update was recorded, %d after (a whole start took %lld ms, "
      "final window %.0f ms)\n",
      kUpdates, interrupted, completed, static_cast<long long>(full.count()), 2 * window);
  // The kills must land on both sides of the update, or they tested little.
  EXPECT_GT(interrupted, 10);
  EXPECT_GT(completed, 10);

  // The next start adopts the gate and converges to the latest version.
  make_check_due();
  auto d = start_ready();
  EXPECT_EQ(applied_version(), version_string(1 + kUpdates));
  EXPECT_EQ(active_version(1 + kUpdates), 1 + kUpdates);
  expect_filters_as(1 + kUpdates, {0, kUpdates / 2, kUpdates}, "after recovery");
  auto info = box.gateway().run<smtpgate::AttachedInfo>(
      [this] { return smtpgate::query_attached(Sandbox::kGwIf, box.pin_dir()); });
  EXPECT_TRUE(info.attached && info.uses_pinned_maps);
  EXPECT_EQ(d->stop(), 0);
}

// The daemon restarts while the feed server misbehaves: the gate comes up
// with the last known good, the error is reported, and a later check
// recovers. `first` is what the server does to the first request.
struct FeedFaultCase {
  const char* name;
  sgtest::Fault fault;
  bool recovers_in_same_start;  // curl's retry gets the good answer
};

TEST_F(Faults, FeedServerResetHangOrDripLeavesTheGateAndRecovers) {
  {
    auto d = start_ready();
    ASSERT_EQ(active_version(0), 0);
    d->kill_hard();
  }
  int n = 0;
  for (const FeedFaultCase& fc : {FeedFaultCase{"reset every time", sgtest::Fault::Reset, false},
                                  FeedFaultCase{"slow version answer", sgtest::Fault::Slow, true},
                                  FeedFaultCase{"hang once", sgtest::Fault::Hang, true}}) {
    SCOPED_TRACE(fc.name);
    n++;
    serve(n);
    Reply version = Reply::json(R"({"instance":"Worldwide","latest":")" + version_string(n) + R"("})");
    Reply faulty = version;
    faulty.fault = fc.fault;
    faulty.drip = 20ms;
    if (fc.recovers_in_same_start)
      server->route("/version/Worldwide", std::vector<Reply>{faulty, version});
    else
      server->route("/version/Worldwide", faulty);
    make_check_due();
    auto t0 = std::chrono::steady_clock::now();
    sgtest::Daemon d(box.gateway(), daemon_argv());
    // While the daemon waits on the server, the gate filters with the last
    // known good.
    std::this_thread::sleep_for(1500ms);
    EXPECT_EQ(active_version(n), n - 1);
    expect_filters_as(n - 1, {n}, "during the fault");
    ASSERT_TRUE(d.ready(5000)) << d.stderr_text();
    auto ready_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    // The first check runs after READY=1: wait for its outcome.
    ASSERT_TRUE(wait_for(
        [&] {
          return applied_version() == version_string(n) ||
                 !smtpgate::read_feed_status(box.state_dir()).last_error.empty();
        },
        120s))
        << d.stderr_text();
    auto check_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    std::printf("%s: READY after %lld ms, first check done after %lld ms\n", fc.name,
                static_cast<long long>(ready_ms.count()), static_cast<long long>(check_ms.count()));
    RecordProperty(std::string(fc.name) + " ready_ms", static_cast<int>(ready_ms.count()));
    RecordProperty(std::string(fc.name) + " check_ms", static_cast<int>(check_ms.count()));
    if (fc.recovers_in_same_start) {
      EXPECT_EQ(applied_version(), version_string(n)) << smtpgate::read_file(box.state_dir() + "/feed.json");
      EXPECT_EQ(active_version(n), n);
      expect_filters_as(n, {n - 1}, "after the retry");
      d.kill_hard();
      continue;
    }
    EXPECT_EQ(active_version(n), n - 1);
    EXPECT_EQ(applied_version(), version_string(n - 1));
    EXPECT_FALSE(smtpgate::read_feed_status(box.state_dir()).last_error.empty());
    // The status is written just before the outcome is logged.
    EXPECT_TRUE(wait_for([&] { return d.stderr_text().find("feed:") != std::string::npos; }, 5s)) << d.stderr_text();
    d.kill_hard();
    // The server is fixed; the next check applies the version.
    serve(n);
    make_check_due();
    auto again = start_ready();
    EXPECT_EQ(applied_version(), version_string(n));
    EXPECT_EQ(active_version(n), n);
    again->kill_hard();
  }
}

// A feed server that hangs on every request must not hold the start: with a
// last known good, READY=1 comes as soon as the gate is up, and the feed's
// first check runs after it (each hang costs curl's 30 s three times, longer
// than systemd's default start timeout).
TEST_F(Faults, HangingFeedDoesNotHoldReadyAndTheGateFiltersAtReady) {
  {
    auto d = start_ready();
    ASSERT_EQ(active_version(0), 0);
    d->kill_hard();
  }
  serve(1);
  Reply hang = Reply::json(R"({"instance":"Worldwide","latest":")" + version_string(1) + R"("})");
  hang.fault = sgtest::Fault::Hang;
  server->route("/version/Worldwide", hang);
  make_check_due();
  server->clear_requests();
  auto t0 = std::chrono::steady_clock::now();
  sgtest::Daemon d(box.gateway(), daemon_argv());
  ASSERT_TRUE(d.ready(5000)) << "no READY=1 within 5 s while the feed hangs:\n" << d.stderr_text();
  auto ready_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  std::printf("READY after %lld ms with the feed hanging\n", static_cast<long long>(ready_ms.count()));
  RecordProperty("ready_ms", static_cast<int>(ready_ms.count()));
  // At READY=1 the gate is attached, with the pinned maps, and filters with
  // the last known good.
  auto info = box.gateway().run<smtpgate::AttachedInfo>(
      [this] { return smtpgate::query_attached(Sandbox::kGwIf, box.pin_dir()); });
  EXPECT_TRUE(info.attached && info.uses_pinned_maps);
  EXPECT_EQ(active_version(1), 0);
  expect_filters_as(0, {1}, "at READY=1 with the feed hanging");
  // The check did start, and it is still waiting on the server.
  EXPECT_TRUE(wait_for([&] { return server->count("/version/Worldwide") >= 1; }, 5s));
  EXPECT_EQ(applied_version(), version_string(0));
  EXPECT_TRUE(smtpgate::read_feed_status(box.state_dir()).last_error.empty());
  d.kill_hard();
}

// A feed server that misbehaves while the daemon runs a check: the fetch
// runs on a worker with no lock held, so the main loop keeps reading the
// drops ring and serving SIGHUP, smtpgatectl's changes (the emergency
// switch included) do not wait for it, and SIGTERM ends the daemon within
// 2 s. `answers`: the fault ends in an answer (late), which is then applied.
struct StallCase {
  const char* name;
  sgtest::Fault fault;
  std::chrono::milliseconds drip;
  bool answers;
};

TEST_F(Faults, AMisbehavingFeedServerStallsNothing) {
  const char* kStranger = "203.0.113.77";
  box.add_sender_address(kStranger);
  {
    auto d = start_ready();
    ASSERT_EQ(active_version(0), 0);
    d->kill_hard();
  }
  int n = 0, applied = 0;
  for (const StallCase& c : {StallCase{"accepts, never answers", sgtest::Fault::Hang, 0ms, false},
                             StallCase{"trickles a byte every 300 ms", sgtest::Fault::Slow, 300ms, false},
                             StallCase{"resets every connection", sgtest::Fault::Reset, 0ms, false},
                             StallCase{"answers after 5 s", sgtest::Fault::Late, 5000ms, true}}) {
    SCOPED_TRACE(c.name);
    n++;
    serve(n);
    Reply version = Reply::json(R"({"instance":"Worldwide","latest":")" + version_string(n) + R"("})");
    version.fault = c.fault;
    version.drip = c.drip;
    server->route("/version/Worldwide", version);
    make_check_due();
    server->clear_requests();
    sgtest::Daemon d(box.gateway(), daemon_argv());
    ASSERT_TRUE(d.ready(5000)) << d.stderr_text();
    ASSERT_TRUE(wait_for([&] { return server->count("/version/Worldwide") >= 1; }, 5s)) << d.stderr_text();
    auto in_flight = std::chrono::steady_clock::now();

    // The ring is read: a refused SYN reaches the drops log.
    EXPECT_EQ(box.connect(kStranger, Sandbox::kGwV4, 25, 300), sgtest::ConnectResult::TimedOut);
    EXPECT_TRUE(wait_for(
        [&] {
          return smtpgate::file_exists(box.state_dir() + "/drops.log") &&
                 smtpgate::read_file(box.state_dir() + "/drops.log").find(kStranger) != std::string::npos;
        },
        2s))
        << "the refused SYN was not recorded while the feed was fetched";

    // The emergency switch and an operator range: no wait for the fetch.
    auto timed = [&](std::vector<std::string> args) {
      auto t0 = std::chrono::steady_clock::now();
      auto r = ctl(args);
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      EXPECT_LT(ms, 1000ms) << args[0] << " waited for the feed";
      return ms;
    };
    auto action_ms = timed({"action", "monitor"});
    EXPECT_EQ(smtpgate::GateMaps::open_pinned(box.pin_dir()).config().action, smtpgate::Action::Monitor);
    auto add_ms = timed({"ranges", "add", "45.3." + std::to_string(n) + ".0/24"});
    EXPECT_TRUE(active_admits().count("45.3." + std::to_string(n) + ".0/24"));
    EXPECT_EQ(ctl({"action", "drop"}).exit_code, 0);

    // A reload is served.
    d.signal(SIGHUP);
    EXPECT_TRUE(d.notified("READY=1", 2000)) << "SIGHUP not served while the feed was fetched";

    if (c.answers) {
      // The late answer is handed back to the loop and applied.
      EXPECT_TRUE(wait_for([&] { return applied_version() == version_string(n); }, 15s)) << d.stderr_text();
      expect_filters_as(n, {applied}, "after the late answer");
      applied = n;
    } else {
      EXPECT_EQ(applied_version(), version_string(applied));
      expect_filters_as(applied, {n}, "while the feed misbehaves");
    }
    auto before_stop = std::chrono::steady_clock::now();
    int code = d.stop_within(2000);
    auto stop_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - before_stop);
    EXPECT_EQ(code, 0) << "SIGTERM did not end smtpgated within 2 s:\n" << d.stderr_text();
    auto flight_ms = std::chrono::duration_cast<std::chrono::milliseconds>(before_stop - in_flight);
    std::printf("%s: action %lld ms, ranges add %lld ms, SIGTERM %lld ms, %lld ms into the check\n", c.name,
                static_cast<long long>(action_ms.count()), static_cast<long long>(add_ms.count()),
                static_cast<long long>(stop_ms.count()), static_cast<long long>(flight_ms.count()));
    RecordProperty(std::string(c.name) + " sigterm_ms", static_cast<int>(stop_ms.count()));
    // Stopped mid-check, the daemon records nothing about it: the next start
    // checks again.
    if (!c.answers) {
      EXPECT_TRUE(smtpgate::read_feed_status(box.state_dir()).last_error.empty());
    }
  }
}

// An answer in a foreign encoding is refused and backed off: asked once, not
// once a second, and counted as a failed check in the metrics.
TEST_F(Faults, AnAnswerInLatin1IsAskedForOncePerRetryInterval) {
  {
    auto d = start_ready();
    d->kill_hard();
  }
  server->route("/version/Worldwide", Reply::json("Fehler: Zugriff verweigert \xe4\xf6\xfc (Proxy)"));
  make_check_due();
  server->clear_requests();
  std::string textfile = box.state_dir() + "/metrics.prom";
  auto argv = daemon_argv();
  argv.insert(argv.end(), {"--metrics-textfile", textfile});
  sgtest::Daemon d(box.gateway(), argv);
  ASSERT_TRUE(d.ready(5000)) << d.stderr_text();
  ASSERT_TRUE(wait_for([&] { return !smtpgate::read_feed_status(box.state_dir()).last_error.empty(); }, 10s))
      << d.stderr_text();
  std::this_thread::sleep_for(5s);
  EXPECT_EQ(server->count("/version/Worldwide"), 1u) << d.stderr_text();
  auto s = smtpgate::read_feed_status(box.state_dir());
  EXPECT_NE(s.last_error.find("\\xe4"), std::string::npos) << s.last_error;
  EXPECT_GE(s.next_check, s.last_check + 600);
  std::string metrics = smtpgate::read_file(textfile);
  EXPECT_NE(metrics.find("smtpgate_feed_checks_total{outcome=\"failed\"} 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("smtpgate_feed_error 1\n"), std::string::npos) << metrics;
  EXPECT_EQ(d.stop_within(2000), 0);
}

// Without an allowlist the first sync must come first (it is what fills the
// allowlist): the daemon asks systemd for more start time before it.
TEST_F(Faults, WithoutAnAllowlistTheFirstSyncAsksForMoreStartTime) {
  Reply hang = Reply::json(R"({"instance":"Worldwide","latest":")" + version_string(0) + R"("})");
  hang.fault = sgtest::Fault::Hang;
  server->route("/version/Worldwide", hang);
  sgtest::Daemon d(box.gateway(), daemon_argv());
  EXPECT_TRUE(d.notified("EXTEND_TIMEOUT_USEC=60000000", 5000)) << d.stderr_text();
  EXPECT_FALSE(d.ready(2000)) << "READY=1 before the first sync filled the allowlist";
  EXPECT_TRUE(wait_for([&] { return server->count("/version/Worldwide") >= 1; }, 5s));
  EXPECT_FALSE(smtpgate::GateMaps::pinned_at(box.pin_dir()) &&
               smtpgate::GateMaps::open_pinned(box.pin_dir()).has_allowlist());
  d.kill_hard();
}

// A tmpfs or a read-only bind mount over the state directory, removed on
// exit (also when an assertion fails).
class StateMount {
 public:
  StateMount(const std::string& dir, bool read_only) : dir_(dir) {
    fs::path saved = dir + ".saved";
    fs::remove_all(saved);
    fs::copy(dir, saved, fs::copy_options::recursive);
    if (read_only) {
      sgtest::sh("mount --bind " + dir + " " + dir + " && mount -o remount,bind,ro " + dir);
    } else {
      sgtest::sh("mount -t tmpfs -o size=64k,mode=0755 smtpgate-test " + dir);
      fs::copy(saved, dir, fs::copy_options::recursive);
      // Fill it: every further write fails with ENOSPC.
      int fd = ::open((dir + "/filler").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      std::string block(4096, 'x');
      for (size_t n : {size_t{4096}, size_t{1}})
        while (::write(fd, block.data(), n) == static_cast<ssize_t>(n)) {
        }
      ::close(fd);
    }
    fs::remove_all(saved);
  }
  ~StateMount() {
    if (::umount2(dir_.c_str(), 0) != 0) ::umount2(dir_.c_str(), MNT_DETACH);
  }

 private:
  std::string dir_;
};

TEST_F(Faults, FullOrReadOnlyStateDirRefusesChangesAndKeepsTheGate) {
  {
    auto d = start_ready();
    ASSERT_EQ(active_version(0), 0);
    d->kill_hard();
  }
  for (bool read_only : {false, true}) {
    SCOPED_TRACE(read_only ? "read-only" : "full");
    serve(read_only ? 2 : 1);
    make_check_due();
    auto before = state_files();
    auto admits = active_admits();
    StateMount mount(box.state_dir(), read_only);
    before = read_only ? before : state_files();

    auto r = ctl({"ranges", "add", "45.1.0.0/16"});
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(box.state_dir()), std::string::npos) << "names the directory: " << r.err;
    EXPECT_EQ(active_admits(), admits);
    EXPECT_EQ(state_files(), before);

    auto f = ctl({"feed", "sync", "--feed-url", server->url()});
    EXPECT_NE(f.exit_code, 0) << f.out << f.err;
    EXPECT_EQ(std::count(f.err.begin(), f.err.end(), '\n'), 1) << f.err;
    EXPECT_EQ(active_admits(), admits) << "a feed update that cannot be recorded must not be published";
    EXPECT_EQ(state_files(), before);

    // The daemon's own update at start (after READY=1): reported, the gate
    // kept. Its status cannot be saved, so the log is what tells it ended.
    sgtest::Daemon d(box.gateway(), daemon_argv());
    ASSERT_TRUE(d.ready(60000)) << d.stderr_text();
    EXPECT_TRUE(wait_for([&] { return d.stderr_text().find("feed:") != std::string::npos; }, 120s)) << d.stderr_text();
    EXPECT_EQ(active_admits(), admits);
    d.kill_hard();
    EXPECT_EQ(state_files(), before);
  }
}

TEST_F(Faults, TwoWritersAndTheDaemonLoseNoUpdate) {
  auto d = start_ready();
  constexpr int kEach = 8;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0}, reloads{0};
  auto writer = [&](int first_octet) {
    for (int k = 0; k < kEach; k++) {
      auto r = ctl({"ranges", "add", std::to_string(first_octet) + ".0." + std::to_string(k) + ".0/24"});
      if (r.exit_code != 0) {
        failures++;
        ADD_FAILURE() << r.err;
      }
    }
  };
  // The daemon writes too: each SIGHUP re-reads the state and publishes it;
  // the next one is sent when it says it is done (READY=1 again).
  std::thread hup([&] {
    while (!done) {
      d->signal(SIGHUP);
      if (!d->notified("READY=1", 20000)) {
        failures++;
        break;
      }
      reloads++;
    }
  });
  std::thread a(writer, 45), b(writer, 46);
  a.join();
  b.join();
  done = true;
  hup.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(reloads.load(), 2);
  auto admits = active_admits();
  auto listed = smtpgate::StateStore(box.state_dir()).operator_ranges();
  EXPECT_EQ(listed.size(), 2u * kEach);
  for (int octet : {45, 46})
    for (int k = 0; k < kEach; k++) {
      std::string r = std::to_string(octet) + ".0." + std::to_string(k) + ".0/24";
      EXPECT_TRUE(admits.count(r)) << r << " lost from the allowlist";
      EXPECT_TRUE(std::any_of(listed.begin(), listed.end(), [&](const auto& o) { return o.cidr.str() == r; }))
          << r << " lost from the state";
    }
  for (const auto& r : version_ranges(0)) EXPECT_TRUE(admits.count(r)) << r;
  std::printf("%d ranges added by two writers during %d reloads\n", 2 * kEach, reloads.load());
  EXPECT_EQ(d->stop(), 0);
}

}  // namespace
