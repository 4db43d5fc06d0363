// smtpgated's life beside other processes on a real kernel: one daemon per
// gate (a second one on the same pin or state directory exits naming the
// first, which goes on untouched), the consumer lock of refused SYNs no
// other user can take, a daemon that cannot take it saying so, and metrics
// that answer while connections idle.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "drops.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "http.hpp"
#include "netns.hpp"
#include "process.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using sgtest::ConnectResult;
using sgtest::Sandbox;

namespace {

constexpr const char* kStranger = "203.0.113.10";

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

template <typename F>
bool wait_for(F ok, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (ok()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return ok();
}

// What a local user runs to take a lock file and keep it: opened read-only
// (all a 0644 file allows), locked, then held by the one process the test
// ends (the shell becomes sleep), so nothing of the user outlives the test.
std::vector<std::string> hold_lock(const std::string& path) {
  return {"/bin/sh", "-c", "exec 9<'" + path + "' && /usr/bin/flock --exclusive 9 && echo held && exec sleep 60"};
}

class DaemonE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    box.add_sender_address(kStranger);
    auto r = ctl({"ranges", "add", "40.92.0.0/15"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  sgtest::ProcResult ctl(std::vector<std::string> args, const std::string& state_dir = "") {
    std::vector<std::string> argv{sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir",
                                  state_dir.empty() ? box.state_dir() : state_dir};
    argv.insert(argv.end(), args.begin(), args.end());
    return sgtest::run_in(box.gateway(), argv);
  }
  json status() {
    auto r = ctl({"-j", "status"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }

  std::vector<std::string> argv(const std::string& action, const std::string& pin_dir, const std::string& state_dir,
                                std::vector<std::string> extra = {}) {
    std::vector<std::string> v{sgtest::binary("smtpgated"),
                               "--interface",
                               Sandbox::kGwIf,
                               "--mode",
                               "skb",
                               "--pin-dir",
                               pin_dir,
                               "--state-dir",
                               state_dir,
                               "--action",
                               action,
                               "--no-feed"};
    if (std::find(extra.begin(), extra.end(), "--metrics-listen") == extra.end())
      extra.insert(extra.end(), {"--metrics-listen", ""});
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
  }
  std::unique_ptr<sgtest::Daemon> start(const std::string& action, std::vector<std::string> extra = {}) {
    auto d = std::make_unique<sgtest::Daemon>(box.gateway(), argv(action, box.pin_dir(), box.state_dir(), extra));
    if (!d->ready()) ADD_FAILURE() << "smtpgated did not become ready:\n" << d->stderr_text();
    return d;
  }

  // What the running gate is: its action, program, allowlist generation.
  struct Gate {
    smtpgate::Action action;
    uint32_t prog_id;
    uint32_t generation;
    bool operator==(const Gate&) const = default;
  };
  Gate gate() {
    auto maps = smtpgate::GateMaps::open_pinned(box.pin_dir());
    auto a = box.gateway().run<smtpgate::AttachedInfo>(
        [&] { return smtpgate::query_attached(Sandbox::kGwIf, box.pin_dir()); });
    return Gate{maps.config().action, a.prog_id, maps.generation()};
  }

  // Refused SYNs of kStranger in the drop log.
  size_t logged_refusals() {
    size_t n = 0;
    for (const auto& r : smtpgate::read_drop_log(box.state_dir(), 0))
      if (r["source"] == kStranger) n++;
    return n;
  }
  // One SYN from kStranger, turned away; true once the drop log has it.
  bool refusal_is_logged() {
    size_t before = logged_refusals();
    box.connect(kStranger, Sandbox::kGwV4, 25, 300);
    return wait_for([&] { return logged_refusals() > before; }, 3s);
  }

  // The daemon reads the ring once it is ready; true once it holds the lock.
  bool recording(const sgtest::Daemon& d) {
    return wait_for([&] { return status()["drops"]["recorded_by"].value("pid", 0) == d.pid(); }, 5s);
  }

  Sandbox box;
};

// A second daemon exits 1 (within seconds: it must not run on) with one
// line naming the first's pid. Its stderr is returned.
std::string expect_refused_naming(sgtest::Daemon& second, pid_t first) {
  EXPECT_EQ(second.exited(10000), 1) << "the second daemon runs on";
  second.stop();
  std::string err = second.stderr_text();
  EXPECT_TRUE(has(err, "another smtpgated (pid " + std::to_string(first) + ")")) << err;
  EXPECT_TRUE(has(err, "systemctl stop smtpgated")) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  return err;
}

TEST_F(DaemonE2E, ASecondDaemonOnTheSameDirectoriesExitsNamingTheFirst) {
  auto first = start("reject");
  Gate before = gate();
  ASSERT_EQ(before.action, smtpgate::Action::Reject);
  ASSERT_TRUE(refusal_is_logged());

  sgtest::Daemon second(box.gateway(), argv("drop", box.pin_dir(), box.state_dir()));
  expect_refused_naming(second, first->pid());
  EXPECT_TRUE(first->running());
  EXPECT_EQ(gate(), before);
  EXPECT_EQ(box.connect(kStranger, Sandbox::kGwV4, 25, 2000), ConnectResult::Refused);  // reject, as before
  EXPECT_TRUE(refusal_is_logged()) << "the first daemon no longer reads the ring";
  EXPECT_EQ(status()["drops"]["recorded_by"]["pid"], first->pid());
}

TEST_F(DaemonE2E, ASecondDaemonOnTheSamePinsWithItsOwnStateExits) {
  auto first = start("reject");
  Gate before = gate();
  std::string other_state = box.state_dir() + "-other";
  std::filesystem::create_directories(other_state);
  sgtest::Daemon second(box.gateway(), argv("drop", box.pin_dir(), other_state));
  std::string err = expect_refused_naming(second, first->pid());
  std::filesystem::remove_all(other_state);
  EXPECT_TRUE(has(err, "pin directory " + box.pin_dir())) << err;
  EXPECT_TRUE(first->running());
  EXPECT_EQ(gate(), before);
  EXPECT_TRUE(refusal_is_logged());
}

TEST_F(DaemonE2E, ASecondDaemonOnTheSameStateWithOtherPinsExits) {
  auto first = start("reject");
  Gate before = gate();
  // Another gate's maps, for a second daemon that only publishes to them.
  std::string other_pins = box.pin_dir() + "-other";
  {
    smtpgate::ensure_pin_dir(other_pins);
    smtpgate::ProgramOptions o;
    o.pin_dir = other_pins;
    smtpgate::GateProgram(o).load();
  }
  sgtest::Daemon second(box.gateway(), argv("drop", other_pins, box.state_dir(), {"--no-attach"}));
  std::string err = expect_refused_naming(second, first->pid());
  std::error_code ec;
  std::filesystem::remove_all(other_pins, ec);
  EXPECT_TRUE(has(err, "state directory " + box.state_dir())) << err;
  EXPECT_TRUE(first->running());
  EXPECT_EQ(gate(), before);
}

// The daemon's own lock is not the lock of changes: smtpgatectl changes the
// gate while it runs; once it stops, the next daemon starts.
TEST_F(DaemonE2E, TheDaemonsLockBlocksNoChangeAndEndsWithIt) {
  auto first = start("reject");
  auto t0 = std::chrono::steady_clock::now();
  auto r = ctl({"action", "monitor"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = ctl({"ranges", "add", "40.107.0.0/16"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(gate().action, smtpgate::Action::Monitor);
  EXPECT_EQ(first->stop(), 0);
  auto second = start("drop");
  EXPECT_TRUE(second->running());
  EXPECT_EQ(gate().action, smtpgate::Action::Drop);
}

// drops.lock was 0644: any local user could open it and take the lock, and
// the daemon then recorded no refusal. Now no other user can open it, and
// one that held the old file open locks nothing after an upgrade.
TEST_F(DaemonE2E, ALocalUserCannotTakeTheDropsLock) {
  sgtest::ThrowawayUser mallory;
  start("drop")->stop();  // the lock file exists, nobody holds it
  std::string lock = smtpgate::drops_lock_path(box.state_dir());
  struct stat st {};
  ASSERT_EQ(::stat(lock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The user tries to take it and keep it while the daemon starts.
  sgtest::LineReader holder(mallory.as(hold_lock(lock)));
  EXPECT_EQ(holder.line(3000), "") << "user " << mallory.name() << " holds " << lock;
  auto d = start("drop");
  EXPECT_TRUE(recording(*d)) << d->stderr_text();
  EXPECT_TRUE(refusal_is_logged());
}

TEST_F(DaemonE2E, AnOldWideLockFileHeldByAnotherUserIsReplaced) {
  sgtest::ThrowawayUser mallory;
  std::string lock = smtpgate::drops_lock_path(box.state_dir());
  { std::ofstream(lock).flush(); }
  ASSERT_EQ(::chmod(lock.c_str(), 0644), 0);  // as an earlier version left it
  sgtest::LineReader holder(mallory.as(hold_lock(lock)));
  ASSERT_EQ(holder.line(5000), "held");
  auto first = start("drop");
  ASSERT_TRUE(recording(*first)) << first->stderr_text();
  struct stat st {};
  ASSERT_EQ(::stat(lock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(refusal_is_logged()) << first->stderr_text();
}

// bpffs is often mounted 1777: a pin directory another user made before the
// daemon ever ran would be theirs (to flock, to empty). It is refused.
TEST_F(DaemonE2E, APinDirectoryAnotherUserOwnsIsRefused) {
  sgtest::ThrowawayUser mallory;
  std::error_code ec;
  std::filesystem::remove_all(box.pin_dir(), ec);  // SetUp's ranges add made it
  std::filesystem::create_directory(box.pin_dir());
  ASSERT_EQ(::chown(box.pin_dir().c_str(), mallory.uid(), 0), 0);
  sgtest::Daemon d(box.gateway(), argv("drop", box.pin_dir(), box.state_dir()));
  EXPECT_EQ(d.exited(10000), 1);
  std::string err = d.stderr_text();
  EXPECT_TRUE(has(err, "pin_dir " + box.pin_dir() + " is owned by user '" + mallory.name() + "'")) << err;
  EXPECT_FALSE(smtpgate::GateMaps::pinned_at(box.pin_dir()));
  auto r = ctl({"action", "monitor"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::filesystem::remove_all(box.pin_dir(), ec);
}

// Another root process (smtpgatectl drops --follow) holds the lock: the
// daemon says so in its log, status and metrics, and takes over when it ends.
TEST_F(DaemonE2E, ADaemonThatCannotTakeTheDropsLockSaysSo) {
  // drops --follow reads a pinned gate: a first run pins it.
  start("drop")->stop();
  auto follower = std::make_unique<sgtest::LineReader>(std::vector<std::string>{
      "/usr/bin/nsenter", "--net=/var/run/netns/" + box.gateway().name(), sgtest::binary("smtpgatectl"), "--pin-dir",
      box.pin_dir(), "--state-dir", box.state_dir(), "drops", "--follow"});
  ASSERT_TRUE(wait_for([&] { return !status()["drops"]["recorded_by"].is_null(); }, 5s));
  auto d = start("drop", {"--metrics-listen", "127.0.0.1:9725"});
  auto metric = [&] {
    return box.gateway().run<std::string>([] {
      smtpgate::HttpOptions o;
      o.proxy = "";
      o.attempts = 1;
      return smtpgate::HttpClient(o).get("http://127.0.0.1:9725/metrics").body;
    });
  };
  EXPECT_TRUE(has(metric(), "\nsmtpgate_drops_recording 0\n"));
  json s = status();
  EXPECT_EQ(s["drops"]["recorded_by"]["command"], "smtpgatectl") << s.dump();
  follower.reset();  // it ends: the daemon takes over within its retry second
  EXPECT_TRUE(wait_for([&] { return has(metric(), "\nsmtpgate_drops_recording 1\n"); }, 5s));
  EXPECT_EQ(status()["drops"]["recorded_by"]["pid"], d->pid());
  d->stop();
  std::string log = d->stderr_text();
  EXPECT_TRUE(has(log, "drops not recorded here: the events ring is read by pid")) << log;
  EXPECT_TRUE(has(log, "(smtpgatectl)")) << log;
  EXPECT_TRUE(has(log, "drops recorded again")) << log;
}

// Idle connections hold none of what a scrape needs (the metrics server's
// own test measures it; here the daemon's endpoint, as configured).
TEST_F(DaemonE2E, MetricsAnswerWithinASecondWhileFiftyConnectionsIdle) {
  auto d = start("drop", {"--metrics-listen", "127.0.0.1:9725"});
  auto took = box.gateway().run<std::chrono::milliseconds>([] {
    std::vector<int> idle;
    for (int i = 0; i < 50; i++) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(9725);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      idle.push_back(fd);
    }
    std::this_thread::sleep_for(200ms);
    smtpgate::HttpOptions o;
    o.proxy = "";
    o.attempts = 1;
    auto t0 = std::chrono::steady_clock::now();
    std::string body = smtpgate::HttpClient(o).get("http://127.0.0.1:9725/metrics").body;
    auto t = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    EXPECT_TRUE(has(body, "smtpgate_program_attached")) << body;
    for (int fd : idle) ::close(fd);
    return t;
  });
  EXPECT_LT(took, 1000ms);
  // SIGTERM ends it promptly although connections were open a moment ago.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(d->stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

}  // namespace
