// The gate on a real NIC driver. This program is the NIC's peer: it runs on
// the host, inside the network namespace that holds the tap whose other end
// is the test VM's NIC (vm/run-vm-tests.sh --scenario nic starts both).
// smtpgated runs in the guest on that NIC, driven through the guest's command
// agent; every SYN below crosses the tap, qemu and the guest's driver
// (virtio_net, native XDP; or e1000, which has none, so generic XDP), and
// every reset comes back the same way.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "netns.hpp"
#include "packet_builder.hpp"
#include "process.hpp"
#include "smtpgate_abi.h"

using nlohmann::json;
using sgtest::ConnectResult;

namespace {

constexpr const char* kGuest = "192.0.2.1";  // the guest's NIC
constexpr const char* kTap = "sgtap0";       // its peer here
constexpr const char* kGuestMac = "52:54:00:53:47:01";
constexpr uint16_t kAgentPort = 7000;
constexpr const char* kEop = "40.92.0.10";         // in EOP's 40.92.0.0/15
constexpr const char* kStranger = "203.0.113.10";  // in no range
constexpr const char* kPins = "/sys/fs/bpf/sgnic";
constexpr const char* kState = "/run/sgnic-state";
constexpr const char* kLog = "/run/smtpgated.log";

std::string env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
// "virtio" or "e1000", as the runner booted the guest.
std::string nic() { return env("SMTPGATE_VM_NIC", "virtio"); }
bool native_nic() { return nic() == "virtio"; }

// Runs a shell command line in the guest through its agent (a shell per
// connection); returns its exit code and its output (stdout and stderr).
sgtest::ProcResult guest(const std::string& cmd, int timeout_ms = 60000) {
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + std::chrono::milliseconds(timeout_ms);
  sgtest::ProcResult r;
  int fd = -1;
  // Between two connections the agent listens again a moment later.
  while (clock::now() < deadline) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kAgentPort);
    inet_pton(AF_INET, kGuest, &a.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) break;
    ::close(fd);
    fd = -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (fd < 0) {
    r.err = "the guest's agent did not answer on " + std::string(kGuest) + ":" + std::to_string(kAgentPort);
    return r;
  }
  std::string script = "( " + cmd + "\n) 2>&1\necho \"@@rc=$?\"\n";
  ::send(fd, script.data(), script.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  while (clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count());
    if (::poll(&p, 1, std::max(left, 1)) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    r.out.append(buf, n);
  }
  ::close(fd);
  size_t at = r.out.rfind("@@rc=");
  if (at == std::string::npos) {
    r.err = "no exit code from the guest for: " + cmd + "\n" + r.out;
    return r;
  }
  r.exit_code = std::atoi(r.out.c_str() + at + 5);
  r.out.resize(at);
  return r;
}

std::string guest_ok(const std::string& cmd) {
  auto r = guest(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.out << r.err;
  return r.out;
}

std::string ctl_cmd(const std::string& args) {
  return std::string("smtpgatectl --pin-dir ") + kPins + " --state-dir " + kState + " " + args;
}
// JSON a command printed; a failure naming the command when it is not.
json parse(const std::string& text, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << " printed no JSON (" << e.what() << "):\n" << text;
    return json::object();
  }
}
json ctl_json(const std::string& args) { return parse(guest_ok(ctl_cmd("-j " + args + " 2>/dev/null")), args); }

// SYNs this namespace's TCP sent again (a SYN-ACK slower than the first
// retransmit): each one is a SYN the gate judged too.
long syn_retransmits() {
  std::ifstream f("/proc/net/netstat");
  std::string names, values;
  while (std::getline(f, names) && std::getline(f, values)) {
    if (names.rfind("TcpExt:", 0) != 0) continue;
    std::istringstream n(names), v(values);
    std::string name, value;
    while (n >> name && v >> value)
      if (name == "TCPSynRetrans") return std::atol(value.c_str());
  }
  return 0;
}

// The tap as ip sees it in this namespace (sysfs would show the host's).
json tap_link() {
  auto r = sgtest::run_here({"/usr/sbin/ip", "-j", "-s", "link", "show", "dev", kTap});
  return parse(r.out + r.err, "ip -j -s link show")[0];
}
long tap_tx_dropped() { return tap_link()["stats64"]["tx"]["dropped"].get<long>(); }

class NicGate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    for (const char* a : {kEop, kStranger}) sgtest::sh(std::string("ip addr replace ") + a + "/32 dev " + kTap);
  }

  void SetUp() override {
    reset();
    guest_ok(ctl_cmd("ranges add 40.92.0.0/15 --comment 'EOP port 25'"));
  }
  void TearDown() override { reset(); }

  // No daemon, no gate, no other XDP program, no pins: each test starts clean.
  void reset() {
    guest(
        "if [ -f /run/smtpgated.pid ]; then kill $(cat /run/smtpgated.pid); "
        "while kill -0 $(cat /run/smtpgated.pid) 2>/dev/null; do sleep 0.1; done; rm -f /run/smtpgated.pid; fi; " +
        ctl_cmd("detach eth0") + " >/dev/null 2>&1; xdp-filter unload eth0 --all >/dev/null 2>&1; " + "rm -rf " +
        kPins + " " + kState + "; true");
  }

  // Starts smtpgated on the guest's NIC; returns once status shows the gate
  // attached there.
  void start(const std::string& action) {
    std::string cmd =
        std::string("smtpgated --interface eth0 --pin-dir ") + kPins + " --state-dir " + kState +
        " --no-feed --action " + action + " </dev/null >" + kLog +
        " 2>&1 & echo $! >/run/smtpgated.pid; "
        "i=0; until " +
        ctl_cmd("-j status 2>/dev/null") +
        " | grep -q '\"prog_id\"'; do "
        "i=$((i+1)); [ $i -lt 300 ] || exit 1; kill -0 $(cat /run/smtpgated.pid) || exit 1; sleep 0.1; done";
    auto r = guest(cmd, 90000);
    ASSERT_EQ(r.exit_code, 0) << "smtpgated did not attach to eth0:\n" << guest(std::string("cat ") + kLog).out;
  }

  std::string daemon_log() { return guest(std::string("cat ") + kLog).out; }

  // One connect; counts the SYNs it cost (retransmits included) in syns.
  ConnectResult connect(const char* src, int timeout_ms, long* syns = nullptr) {
    long before = syn_retransmits();
    ConnectResult r = sgtest::connect_from(src, kGuest, 25, timeout_ms);
    if (syns) *syns += 1 + (syn_retransmits() - before);
    return r;
  }

  json rule_counters(const std::string& range) {
    json s = ctl_json("stats");
    if (range == "default") return s["default_rule"]["counters"];
    for (const auto& r : s["rules"])
      if (r["range"] == range) return r["counters"];
    ADD_FAILURE() << "no rule for " << range;
    return json::object();
  }
};

TEST_F(NicGate, AttachesInTheModeTheDriverOffers) {
  std::string driver = guest_ok("ethtool -i eth0 | sed -n 's/^driver: //p'");
  EXPECT_EQ(driver, native_nic() ? "virtio_net\n" : "e1000\n");
  start("drop");
  json st = ctl_json("status");
  ASSERT_EQ(st["interfaces"].size(), 1u) << st.dump();
  EXPECT_EQ(st["interfaces"][0]["name"], "eth0");
  EXPECT_EQ(st["interfaces"][0]["mode"], native_nic() ? "native" : "skb");
  // The kernel agrees: the program is attached in that mode.
  std::string link = guest_ok("ip -d link show eth0");
  EXPECT_NE(link.find(native_nic() ? "xdp " : "xdpgeneric"), std::string::npos) << link;
  // virtio_net found a free queue pair per CPU for XDP_TX: without one it
  // says so and sends resets through the shared, locked queues.
  EXPECT_EQ(guest("dmesg | grep 'locked tx mode'").out, "");
  // Falling back is worth exactly one warning, naming the fallback; a native
  // attach none.
  std::string log = daemon_log();
  std::istringstream lines(log);
  std::vector<std::string> warnings;
  for (std::string l; std::getline(lines, l);)
    if (l.find("warning: ") != std::string::npos && l.find("smtpgated ready") == std::string::npos)
      warnings.push_back(l);
  if (native_nic()) {
    EXPECT_TRUE(warnings.empty()) << log;
  } else {
    ASSERT_EQ(warnings.size(), 1u) << log;
    EXPECT_NE(warnings[0].find("falling back to skb (generic) mode"), std::string::npos) << log;
    std::cout << "the one warning: " << warnings[0] << "\n";
  }
}

TEST_F(NicGate, DropAdmitsEopAndTimesOutStrangers) {
  start("drop");
  const int kEach = 3;
  long eop_syns = 0, stranger_syns = 0;
  for (int i = 0; i < kEach; i++) {
    EXPECT_EQ(connect(kEop, 5000, &eop_syns), ConnectResult::Connected);
    // Shorter than the first retransmit (1 s): one SYN per attempt.
    EXPECT_EQ(connect(kStranger, 700, &stranger_syns), ConnectResult::TimedOut);
  }
  EXPECT_EQ(rule_counters("40.92.0.0/15")["admit_packets"], eop_syns);
  EXPECT_EQ(rule_counters("default")["refuse_packets"], stranger_syns);
  json stats = ctl_json("stats");
  EXPECT_EQ(stats["verdicts"]["drop"]["packets"], stranger_syns);
  EXPECT_EQ(stats["verdicts"]["admit"]["packets"], eop_syns);

  json e = ctl_json(std::string("explain ") + kEop);
  EXPECT_EQ(e["verdict"], "admit");
  EXPECT_EQ(e["rule"]["range"], "40.92.0.0/15");
  EXPECT_EQ(e["rule"]["counters"]["admit_packets"], eop_syns);
  json s = ctl_json(std::string("explain ") + kStranger);
  EXPECT_EQ(s["verdict"], "drop");
  EXPECT_EQ(s["rule"]["rule_id"], 0);
  ASSERT_FALSE(s["last_refused"].is_null()) << s.dump();
  EXPECT_EQ(s["last_refused"]["count"], stranger_syns);
  EXPECT_NE(s["eop_code"].get<std::string>().find("4.4.315"), std::string::npos) << s.dump();
}

TEST_F(NicGate, RejectSendsTheResetBackThroughTheDriver) {
  start("reject");
  const int kEach = 3;
  long refused = 0, admitted = 0;
  for (int i = 0; i < kEach; i++) {
    // The reset answers the first SYN at once; 5 s only bounds a lost one.
    EXPECT_EQ(connect(kStranger, 5000, &refused), ConnectResult::Refused);
    EXPECT_EQ(connect(kEop, 5000, &admitted), ConnectResult::Connected);
  }
  json stats = ctl_json("stats");
  EXPECT_EQ(stats["verdicts"]["reject"]["packets"], refused);
  EXPECT_EQ(stats["verdicts"]["admit"]["packets"], admitted);
  json s = ctl_json(std::string("explain ") + kStranger);
  EXPECT_EQ(s["verdict"], "reject");
  ASSERT_FALSE(s["last_refused"].is_null()) << s.dump();
  EXPECT_EQ(s["last_refused"]["count"], refused);
  EXPECT_NE(s["eop_code"].get<std::string>().find("4.4.316"), std::string::npos) << s.dump();
}

// Per CPU, the packets of one verdict in the pinned per-CPU counters, as
// bpftool reads them (no smtpgate code in between).
std::map<int, long> per_cpu_packets(int verdict) {
  std::string cmd = std::string("bpftool -j map dump pinned ") + kPins + "/packet_counters";
  json dump = parse(guest_ok(cmd), cmd);
  std::map<int, long> cpus;
  for (const auto& e : dump) {
    uint32_t key = e.contains("formatted") ? e["formatted"]["key"].get<uint32_t>() : e["key"].get<uint32_t>();
    if (key % SG_VERDICT_MAX != static_cast<uint32_t>(verdict)) continue;
    const json& values = e.contains("formatted") ? e["formatted"]["values"] : e["values"];
    for (const auto& v : values) cpus[v["cpu"].get<int>()] += v["value"]["packets"].get<long>();
  }
  return cpus;
}

// A SYN flood from many sources and ports: the tap spreads the flows over the
// guest's receive queues, each queue's interrupt goes to its own vCPU, and
// the per-CPU counters must add up to exactly what was sent.
TEST_F(NicGate, FloodOverTheQueuesIsCountedExactly) {
  start("drop");
  int sock = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0) << std::strerror(errno);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(if_nametoindex(kTap));
  to.sll_halen = ETH_ALEN;
  std::string tap_mac = tap_link()["address"];

  const int kSources = 64, kPerSource = 40;
  const long kSent = static_cast<long>(kSources) * kPerSource;
  long dropped_before = tap_tx_dropped();
  long sent = 0;
  for (int round = 0; round < kPerSource; round++) {
    for (int s = 0; s < kSources; s++) {
      std::string src = "198.51.100." + std::to_string(s + 1);
      auto frame = sgtest::Packet()
                       .eth(kGuestMac, tap_mac)
                       .ipv4(src, kGuest)
                       .tcp(static_cast<uint16_t>(20000 + round), 25, sgtest::SYN, 1000u + round)
                       .bytes();
      if (::sendto(sock, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
          static_cast<ssize_t>(frame.size()))
        sent++;
    }
    // Paced so that the tap's queues (the runner makes them 4096 frames
    // long) never overflow while the emulated guest drains them.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::close(sock);
  ASSERT_EQ(sent, kSent);
  ASSERT_EQ(tap_tx_dropped(), dropped_before) << "the tap dropped frames: slow the flood";

  // Wait until the guest has judged them all, or the count stood still for
  // 5 s (the emulated guest may lag far behind the sender).
  long total = -1;
  for (int still = 0; total != kSent && still < 10;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    long now = ctl_json("stats")["verdicts"]["drop"]["packets"].get<long>();
    still = now == total ? still + 1 : 0;
    total = now;
  }
  EXPECT_EQ(total, kSent);
  auto cpus = per_cpu_packets(SG_VERDICT_DROP);
  long sum = 0, busy = 0;
  std::ostringstream seen;
  for (auto [cpu, n] : cpus) {
    sum += n;
    busy += n > 0;
    seen << " cpu" << cpu << "=" << n;
  }
  EXPECT_EQ(sum, kSent) << seen.str();
  if (native_nic()) {
    EXPECT_GE(busy, 2) << "the flood should reach more than one CPU:" << seen.str() << "\n"
                       << guest("grep virtio0-input /proc/interrupts").out;
  }
  std::cout << "flood: " << kSent << " SYNs from " << kSources << " sources, per CPU:" << seen.str() << "\n";
}

// xdp-filter and smtpgate on one NIC, through libxdp's dispatcher, where the
// guest's kernel lets the dispatcher load; the other case is stated by what
// xdp-filter itself reports.
TEST_F(NicGate, SharesTheNicWithXdpFilter) {
  std::string mode = native_nic() ? "native" : "skb";
  guest_ok("xdp-filter load eth0 --mode " + mode);
  std::string st = guest_ok("xdp-loader status eth0");
  if (st.find("xdp_dispatcher") == std::string::npos)
    GTEST_SKIP() << "libxdp's dispatcher did not load on " << env("SMTPGATE_VM_KERNEL", "this kernel")
                 << " (xdp-filter attached alone):\n"
                 << st;
  // xdp-filter drops what reaches port 7001; without it the guest's stack
  // answers with a reset.
  EXPECT_EQ(sgtest::connect_from(kStranger, kGuest, 7001, 3000), ConnectResult::Refused);
  guest_ok("xdp-filter port 7001 --mode dst");
  EXPECT_EQ(sgtest::connect_from(kStranger, kGuest, 7001, 700), ConnectResult::TimedOut);

  start("drop");
  json s = ctl_json("status");
  ASSERT_EQ(s["interfaces"].size(), 1u);
  EXPECT_TRUE(s["interfaces"][0]["dispatcher"].get<bool>()) << s.dump();
  EXPECT_EQ(s["interfaces"][0]["mode"], mode);
  EXPECT_FALSE(s["interfaces"][0]["other_programs"].empty()) << s.dump();
  EXPECT_EQ(sgtest::connect_from(kEop, kGuest, 25, 5000), ConnectResult::Connected);
  EXPECT_EQ(sgtest::connect_from(kStranger, kGuest, 25, 700), ConnectResult::TimedOut);
  EXPECT_EQ(sgtest::connect_from(kStranger, kGuest, 7001, 700), ConnectResult::TimedOut);
  guest_ok(ctl_cmd("detach eth0"));
  st = guest_ok("xdp-loader status eth0");
  EXPECT_NE(st.find("xdpfilt"), std::string::npos) << "xdp-filter must survive smtpgate's detach:\n" << st;
  EXPECT_EQ(sgtest::connect_from(kStranger, kGuest, 7001, 700), ConnectResult::TimedOut);
}

}  // namespace
