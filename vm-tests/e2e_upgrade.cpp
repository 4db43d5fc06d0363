// Replacing a running gate whose maps have another layout, under traffic:
// mail servers of Exchange Online connect and a stranger sends SYNs while
// smtpgated of another layout takes over and while the first layout comes
// back (a downgrade). Every EOP connect succeeds, no stranger's SYN gets
// through, the counters go on from where they were. A replacement that
// cannot complete leaves the running gate exactly as it was, saying why in
// one line; a state directory of a newer format is refused.
//
// The two layouts are this build's maps at two sizes of rule_counters
// (max_rules): the pinned maps differ as maps of two versions do, and the
// daemon takes the same path. (Two builds whose value layouts differ are
// the package test's, tests/ship/package.sh; fields carried by name are
// test_map_carry's.) A release whose maps keep their layout and whose code
// differs is this build's program compiled with one instruction more
// (bpf/CMakeLists.txt, smtpgate_code_variant), put on the running gate's maps.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "netns.hpp"
#include "pin_generation.hpp"

using namespace std::chrono_literals;
using sgtest::ConnectResult;
using sgtest::Sandbox;

namespace {

constexpr const char* kEop = "40.92.0.10";         // in 40.92.0.0/15, the admitted range
constexpr const char* kStranger = "203.0.113.10";  // in no range

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string link_target(const std::string& path) {
  std::error_code ec;
  auto t = std::filesystem::read_symlink(path, ec);
  return ec ? "" : t.string();
}

// Connects from both sources in a loop on threads of the sender namespace,
// counting what happens, until stopped.
class Traffic {
 public:
  explicit Traffic(Sandbox& box) {
    eop_ = std::thread([this, &box] {
      box.sender().enter();
      while (!stop_) {
        ConnectResult r = sgtest::connect_from(kEop, Sandbox::kGwV4, 25, 2000);
        (r == ConnectResult::Connected ? eop_ok_ : eop_failed_)++;
      }
    });
    stranger_ = std::thread([this, &box] {
      box.sender().enter();
      while (!stop_) {
        ConnectResult r = sgtest::connect_from(kStranger, Sandbox::kGwV4, 25, 150);
        (r == ConnectResult::Connected ? stranger_admitted_ : stranger_refused_)++;
      }
    });
  }
  ~Traffic() { stop(); }
  void stop() {
    stop_ = true;
    if (eop_.joinable()) eop_.join();
    if (stranger_.joinable()) stranger_.join();
  }
  std::atomic<unsigned> eop_ok_{0}, eop_failed_{0}, stranger_admitted_{0}, stranger_refused_{0};

 private:
  std::atomic<bool> stop_{false};
  std::thread eop_, stranger_;
};

class UpgradeE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    box.add_sender_address(kEop);
    box.add_sender_address(kStranger);
    for (const char* r : {"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14"}) {
      auto res = ctl({"ranges", "add", r});
      ASSERT_EQ(res.exit_code, 0) << res.err;
    }
    // The two layouts: configurations that differ in max_rules only.
    for (auto [path, rules] : {std::pair{&small_, 1024}, std::pair{&large_, 65536}}) {
      *path = box.state_dir() + "-" + std::to_string(rules) + ".toml";
      std::ofstream(*path) << "max_rules = " << rules << "\n";
    }
  }
  void TearDown() override {
    std::filesystem::remove(small_);
    std::filesystem::remove(large_);
  }

  sgtest::ProcResult ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir",
                                  box.state_dir()};
    argv.insert(argv.end(), args.begin(), args.end());
    return sgtest::run_in(box.gateway(), argv);
  }
  std::vector<std::string> argv(const std::string& config) {
    return {sgtest::binary("smtpgated"),
            "-c",
            config,
            "--interface",
            Sandbox::kGwIf,
            "--mode",
            "skb",
            "--pin-dir",
            box.pin_dir(),
            "--state-dir",
            box.state_dir(),
            "--action",
            "drop",
            "--no-feed",
            "--metrics-listen",
            ""};
  }
  // Runs a daemon of that layout until it is ready, then stops it: the gate
  // it leaves is what the next one finds. Returns its stderr.
  std::string run_daemon(const std::string& config) {
    sgtest::Daemon d(box.gateway(), argv(config));
    bool ready = d.ready();
    EXPECT_EQ(d.stop(), 0);
    EXPECT_TRUE(ready) << d.stderr_text();
    return d.stderr_text();
  }

  struct Snapshot {
    uint32_t prog_id = 0;
    bool uses_pinned_maps = false;
    uint32_t max_rules = 0;
    uint64_t admitted = 0, dropped = 0, eop_rule_admitted = 0;
    bool stranger_recent = false;
  };
  Snapshot snapshot() {
    Snapshot s;
    auto a = box.gateway().run<smtpgate::AttachedInfo>(
        [&] { return smtpgate::query_attached(Sandbox::kGwIf, box.pin_dir()); });
    s.prog_id = a.prog_id;
    s.uses_pinned_maps = a.uses_pinned_maps;
    auto maps = smtpgate::GateMaps::open_pinned(box.pin_dir());
    s.max_rules = maps.max_rules();
    auto v = maps.verdict_counters();
    s.admitted = v[SG_VERDICT_ADMIT].packets;
    s.dropped = v[SG_VERDICT_DROP].packets;
    auto m = maps.match(smtpgate::Cidr::parse(kEop));
    if (m) s.eop_rule_admitted = maps.rule_counters(m->rule_id).admit_packets;
    for (const auto& r : maps.recent_refused())
      if (r.address.str() == std::string(kStranger) + "/32") s.stranger_recent = true;
    return s;
  }

  // Puts the code variant on the running gate's maps in place of its
  // program, as another release would have left it. Returns its program id.
  uint32_t run_code_variant() {
    return box.gateway().run<uint32_t>([&]() -> uint32_t {
      auto a = smtpgate::query_attached(Sandbox::kGwIf, box.pin_dir());
      if (!a.attached) return 0;
      bpf_object* obj = bpf_object__open_file(sgtest::bpf_object("testprogs/smtpgate_code_variant").c_str(), nullptr);
      if (!obj) return 0;
      std::string dir = smtpgate::live_maps_dir(box.pin_dir());
      bpf_map* map;
      bpf_object__for_each_map(map, obj) {
        int fd = bpf_obj_get((dir + "/" + bpf_map__name(map)).c_str());
        if (fd < 0) continue;  // the object's own sections
        bpf_map__reuse_fd(map, fd);
        ::close(fd);
      }
      int ifindex = int(if_nametoindex(Sandbox::kGwIf));
      xdp_attach_mode mode = a.mode == "native" ? XDP_MODE_NATIVE : XDP_MODE_SKB;
      int rc;
      if (a.dispatcher) {  // beside the old one, which then goes
        DECLARE_LIBXDP_OPTS(xdp_program_opts, popts, .obj = obj, .prog_name = smtpgate::kProgramName);
        xdp_program* xp = xdp_program__create(&popts);
        rc = libxdp_get_error(xp) ? -EINVAL : xdp_program__attach(xp, ifindex, mode, 0);
        if (xdp_multiprog* mp = xdp_multiprog__get_from_ifindex(ifindex); !rc && !libxdp_get_error(mp)) {
          for (xdp_program* p = xdp_multiprog__next_prog(nullptr, mp); p; p = xdp_multiprog__next_prog(p, mp))
            if (xdp_program__id(p) == a.prog_id) rc = xdp_program__detach(p, ifindex, mode, 0);
          xdp_multiprog__close(mp);
        }
        if (!libxdp_get_error(xp)) xdp_program__close(xp);
      } else {  // one atomic swap
        rc = bpf_object__load(obj);
        int old_fd = bpf_prog_get_fd_by_id(a.prog_id);
        LIBBPF_OPTS(bpf_xdp_attach_opts, xopts, .old_prog_fd = old_fd);
        uint32_t flags = XDP_FLAGS_REPLACE | (mode == XDP_MODE_NATIVE ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
        if (!rc)
          rc = bpf_xdp_attach(ifindex, bpf_program__fd(bpf_object__find_program_by_name(obj, smtpgate::kProgramName)),
                              flags, &xopts);
        if (old_fd >= 0) ::close(old_fd);
      }
      uint32_t id = rc ? 0 : smtpgate::query_attached(Sandbox::kGwIf, box.pin_dir()).prog_id;
      bpf_object__close(obj);  // the kernel keeps what is attached
      return id;
    });
  }

  Sandbox box;
  sgtest::Listener listener{box.gateway(), 25};
  std::string small_, large_;
};

TEST_F(UpgradeE2E, UpgradeAndDowngradeUnderTrafficLeaveNoGap) {
  run_daemon(small_);
  ASSERT_EQ(box.connect(kStranger, Sandbox::kGwV4, 25, 300), ConnectResult::TimedOut);
  ASSERT_EQ(box.connect(kEop, Sandbox::kGwV4, 25, 2000), ConnectResult::Connected);
  Snapshot first = snapshot();
  ASSERT_EQ(first.max_rules, 1024u);
  ASSERT_TRUE(first.stranger_recent);

  Traffic traffic(box);
  std::this_thread::sleep_for(300ms);
  Snapshot before_up = snapshot();
  std::string up = run_daemon(large_);  // the upgrade, while the traffic runs
  Snapshot after_up = snapshot();
  std::this_thread::sleep_for(300ms);
  std::string down = run_daemon(small_);  // and back
  Snapshot after_down = snapshot();
  std::this_thread::sleep_for(300ms);
  traffic.stop();

  EXPECT_TRUE(has(up, "replacing it without a gap")) << up;
  EXPECT_TRUE(has(up, "carried over gate_config (1 entries")) << up;
  EXPECT_TRUE(has(up, ", rule_counters (")) << up;
  EXPECT_TRUE(has(down, "replacing it without a gap")) << down;
  EXPECT_GT(traffic.eop_ok_.load(), 5u);
  EXPECT_EQ(traffic.eop_failed_.load(), 0u) << "an EOP connect failed during a replacement";
  EXPECT_GT(traffic.stranger_refused_.load(), 5u);
  EXPECT_EQ(traffic.stranger_admitted_.load(), 0u) << "a stranger's SYN got through during a replacement";

  // Each replacement runs a new program on the new generation's maps.
  EXPECT_EQ(after_up.max_rules, 65536u);
  EXPECT_EQ(after_down.max_rules, 1024u);
  EXPECT_NE(after_up.prog_id, before_up.prog_id);
  EXPECT_NE(after_down.prog_id, after_up.prog_id);
  EXPECT_TRUE(after_up.uses_pinned_maps);
  EXPECT_TRUE(after_down.uses_pinned_maps);
  // The counters go on: never below what they were before a replacement.
  EXPECT_GE(after_up.admitted, before_up.admitted);
  EXPECT_GE(after_up.dropped, before_up.dropped);
  EXPECT_GE(after_up.eop_rule_admitted, before_up.eop_rule_admitted);
  EXPECT_GE(after_down.admitted, after_up.admitted);
  EXPECT_GE(after_down.eop_rule_admitted, after_up.eop_rule_admitted);
  EXPECT_GE(after_down.dropped, after_up.dropped);
  EXPECT_GT(before_up.eop_rule_admitted, first.eop_rule_admitted);
  EXPECT_TRUE(after_down.stranger_recent) << "the recently-refused table was not carried";
  // Pins: one generation, named by `live`; the retired ones are gone.
  EXPECT_EQ(link_target(box.pin_dir() + "/live"), "gen-2");
  EXPECT_FALSE(std::filesystem::exists(box.pin_dir() + "/gen-1"));
  EXPECT_FALSE(std::filesystem::exists(box.pin_dir() + "/" + smtpgate::kConfigMapName));
  auto st = ctl({"status"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
}

// A release whose maps keep their layout but whose code differs (a fix to
// the parser, say): the new smtpgated runs its own program, swapped on the
// same maps under traffic, rather than adopting the running one.
TEST_F(UpgradeE2E, ARunningProgramOfOtherCodeIsReplacedOnTheSameMaps) {
  run_daemon(small_);
  ASSERT_EQ(box.connect(kEop, Sandbox::kGwV4, 25, 2000), ConnectResult::Connected);
  Snapshot ours = snapshot();
  std::string our_tag = smtpgate::program_tag(ours.prog_id);
  uint32_t variant = run_code_variant();
  ASSERT_NE(variant, 0u) << "the code variant was not put in place";
  ASSERT_NE(variant, ours.prog_id);
  std::string variant_tag = smtpgate::program_tag(variant);
  ASSERT_NE(variant_tag, our_tag) << "the code variant has this build's code";
  ASSERT_TRUE(snapshot().uses_pinned_maps);

  Traffic traffic(box);
  std::this_thread::sleep_for(300ms);
  Snapshot before = snapshot();
  std::string up = run_daemon(small_);  // the upgrade, while the traffic runs
  Snapshot after = snapshot();
  std::this_thread::sleep_for(300ms);
  std::string again = run_daemon(small_);  // this version's program: adopted
  Snapshot last = snapshot();
  traffic.stop();

  EXPECT_TRUE(has(up, "was replaced by this version's")) << up;
  EXPECT_TRUE(has(up, "tag " + variant_tag)) << up;
  EXPECT_NE(after.prog_id, variant) << "the running program of other code was adopted";
  EXPECT_EQ(smtpgate::program_tag(after.prog_id), our_tag);
  EXPECT_TRUE(after.uses_pinned_maps);
  EXPECT_FALSE(has(again, "was replaced")) << again;
  EXPECT_EQ(last.prog_id, after.prog_id);
  // The same maps: no new generation, the counters go on.
  EXPECT_FALSE(std::filesystem::exists(box.pin_dir() + "/live"));
  EXPECT_GE(after.admitted, before.admitted);
  EXPECT_GE(after.dropped, before.dropped);
  EXPECT_GE(after.eop_rule_admitted, before.eop_rule_admitted);
  EXPECT_GT(last.admitted, before.admitted);
  EXPECT_GT(traffic.eop_ok_.load(), 5u);
  EXPECT_EQ(traffic.eop_failed_.load(), 0u) << "an EOP connect failed during the replacement";
  EXPECT_GT(traffic.stranger_refused_.load(), 5u);
  EXPECT_EQ(traffic.stranger_admitted_.load(), 0u) << "a stranger's SYN got through during the replacement";
}

TEST_F(UpgradeE2E, AFailedReplacementLeavesTheRunningGateAsItWas) {
  // 19 ranges, one more than a gate of max_rules 16 holds.
  std::string more = box.state_dir() + "-more.txt";
  {
    std::ofstream f(more);
    for (int i = 0; i < 16; i++) f << "40.95." << i << ".0/24\n";
  }
  auto imported = ctl({"ranges", "import", more});
  std::filesystem::remove(more);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  run_daemon(large_);
  Snapshot before = snapshot();
  // A layout too small for the allowlist: the publish into the new maps
  // fails, after they were made and before anything was swapped.
  std::string tiny = box.state_dir() + "-16.toml";
  std::ofstream(tiny) << "max_rules = 16\n";
  sgtest::Daemon d(box.gateway(), argv(tiny));
  EXPECT_EQ(d.exited(20000), 1);
  d.stop();
  std::filesystem::remove(tiny);
  std::string err = d.stderr_text();
  std::string last = err.substr(err.rfind('\n', err.size() - 2) + 1);
  EXPECT_TRUE(has(last, "was not replaced and runs on as it was")) << err;
  EXPECT_TRUE(has(last, "max_rules")) << err;

  Snapshot after = snapshot();
  EXPECT_EQ(after.prog_id, before.prog_id);
  EXPECT_EQ(after.max_rules, before.max_rules);
  EXPECT_TRUE(after.uses_pinned_maps);
  EXPECT_FALSE(std::filesystem::exists(box.pin_dir() + "/live"));
  EXPECT_FALSE(std::filesystem::exists(box.pin_dir() + "/gen-1")) << "the new generation was left pinned";
  EXPECT_EQ(box.connect(kEop, Sandbox::kGwV4, 25, 2000), ConnectResult::Connected);
  EXPECT_EQ(box.connect(kStranger, Sandbox::kGwV4, 25, 300), ConnectResult::TimedOut);
}

// Two interfaces; the second runs another XDP program attached alone, which
// smtpgate never replaces: the swap on the first has happened when the
// second refuses, so the first gets its old program back.
TEST_F(UpgradeE2E, AnInterfaceThatRefusesGetsTheOldProgramsBack) {
  run_daemon(small_);
  Snapshot before = snapshot();
  box.gateway().ip("link add gw1 type veth peer name gw1p");
  box.gateway().ip("link set gw1 up");
  box.gateway().ip("link set gw1p up");
  sgtest::ip_load_xdp(box.gateway(),
                      "link set dev gw1 xdpgeneric obj " + sgtest::bpf_object("testprogs/xdp_pass") + " sec xdp");
  std::vector<std::string> both = argv(large_);
  both.insert(both.begin() + 5, {"--interface", "gw1"});  // after gw0
  sgtest::Daemon d(box.gateway(), both);
  EXPECT_EQ(d.exited(20000), 1);
  d.stop();
  std::string err = d.stderr_text();
  EXPECT_TRUE(has(err, "gw0 runs the old program again")) << err;
  std::string last = err.substr(err.rfind('\n', err.size() - 2) + 1);
  EXPECT_TRUE(has(last, "was not replaced and runs on as it was")) << err;
  EXPECT_TRUE(has(last, "gw1 already runs the XDP program")) << err;

  Snapshot after = snapshot();
  EXPECT_EQ(after.prog_id, before.prog_id);
  EXPECT_EQ(after.max_rules, before.max_rules);
  EXPECT_TRUE(after.uses_pinned_maps);
  EXPECT_FALSE(std::filesystem::exists(box.pin_dir() + "/gen-1")) << "the new generation was left pinned";
  EXPECT_EQ(box.connect(kEop, Sandbox::kGwV4, 25, 2000), ConnectResult::Connected);
  EXPECT_EQ(box.connect(kStranger, Sandbox::kGwV4, 25, 300), ConnectResult::TimedOut);
}

TEST_F(UpgradeE2E, AStateDirectoryOfANewerFormatIsRefused) {
  run_daemon(large_);
  std::string format = box.state_dir() + "/format.json";
  std::ifstream in(format);
  std::string recorded((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(has(recorded, "\"format\":2")) << recorded;
  Snapshot before = snapshot();

  std::ofstream(format) << R"({"format": 3, "written_by": "9.9.9"})"
                        << "\n";
  sgtest::Daemon d(box.gateway(), argv(large_));
  EXPECT_EQ(d.exited(20000), 1);
  d.stop();
  std::string err = d.stderr_text();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_TRUE(has(err, "is of format 3, written by 'smtpgate 9.9.9'")) << err;
  auto r = ctl({"ranges", "add", "40.93.0.0/16"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "reads formats up to 2")) << r.err;
  EXPECT_EQ(snapshot().prog_id, before.prog_id);
}

}  // namespace
