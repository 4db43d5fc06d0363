// The feed as data: every real fixture selects the right port-25 set, and a
// bad or dangerous response is refused with the running allowlist and the
// state on disk unchanged.
#include <gtest/gtest.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <filesystem>
#include <fstream>

#include "config.hpp"
#include "error.hpp"
#include "feed.hpp"
#include "feed_ranges.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "refusal_scene.hpp"

using namespace smtpgate;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
std::string fixture(const char* name) { return read_file(std::string(SG_FIXTURES_DIR) + "/" + name); }

std::vector<std::string> strs(const std::vector<Cidr>& v) {
  std::vector<std::string> o;
  for (const auto& c : v) o.push_back(c.str());
  return o;
}
}  // namespace

TEST(Feed, EachInstanceFixtureSelectsItsPort25Set) {
  const std::vector<std::string> eop_ww = {"40.92.0.0/15",  "40.107.0.0/16",      "52.100.0.0/14",
                                           "104.47.0.0/17", "2a01:111:f400::/48", "2a01:111:f403::/48"};
  struct {
    const char* file;
    Instance inst;
    int set_id;
  } cases[] = {
      {"m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json", Instance::Worldwide, 10},
      {"m365-endpoints-worldwide.2024-04-24.slivertea-axisO365App.json", Instance::Worldwide, 10},
      {"m365-endpoints-china.2025-12-01.deploymenttheory-tfprovider.json", Instance::China, 27},
      {"m365-endpoints-usgovdod.2025-12-01.deploymenttheory-tfprovider.json", Instance::USGovDoD, 6},
      {"m365-endpoints-usgovgcchigh.2025-12-01.deploymenttheory-tfprovider.json", Instance::USGovGCCHigh, 6},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    auto sets = parse_endpoints(fixture(c.file), c.file);
    Port25Selection sel = select_port25(sets, c.inst, c.file);
    ASSERT_EQ(sel.set_ids, std::vector<int>{c.set_id});
    EXPECT_TRUE(sel.warnings.empty());
    EXPECT_FALSE(sel.ranges.empty());
    if (c.inst == Instance::Worldwide) {
      EXPECT_EQ(strs(sel.ranges), eop_ww);
    }
    for (const auto& r : sel.ranges) EXPECT_NO_THROW(check_not_special(r, false)) << r.str();
    EXPECT_NO_THROW(validate_feed_update({}, sel.ranges, FeedPolicy{}, "fixture"));
  }
}

TEST(Feed, SelectsByContentNotById) {
  std::string moved = R"([{"id": 99, "serviceArea": "Exchange", "tcpPorts": "587,25-26", "ips": ["40.92.0.0/15"],
                           "notes": "", "newField": {"x": 1}},
                          {"id": 10, "serviceArea": "Exchange", "tcpPorts": "443,80", "ips": ["52.96.0.0/14"]}])";
  auto sel = select_port25(parse_endpoints(moved, "moved.json"), Instance::Worldwide, "moved.json");
  EXPECT_EQ(sel.set_ids, std::vector<int>{99});
  EXPECT_EQ(strs(sel.ranges), std::vector<std::string>{"40.92.0.0/15"});
  ASSERT_EQ(sel.warnings.size(), 1u);
  EXPECT_NE(sel.warnings[0].find("not the 10"), std::string::npos);
}

TEST(Feed, BadResponsesAreRefusedWithAClearLine) {
  struct {
    const char* body;
    const char* says;
  } cases[] = {
      {"", "is empty"},
      {"<html><body>Proxy error</body></html>", "looks like HTML"},
      {"[{\"id\": 10, \"serviceArea\": \"Exch", "is not JSON"},
      {"{\"instance\": \"Worldwide\", \"latest\": \"2025120100\"}", "not a list of endpoint sets"},
      {"[{\"id\": 10, \"ips\": \"40.92.0.0/15\"}]", "'ips' that is not a list"},
      {"[{\"id\": 10, \"ips\": [\"40.92.0.0/33\"]}]", "set 10: '40.92.0.0/33'"},
      {"[{\"id\": 10, \"serviceArea\": \"Exchange\", \"tcpPorts\": \"443\", \"ips\": [\"40.92.0.0/15\"]}]",
       "no port-25 set"},
  };
  for (const auto& c : cases) {
    try {
      select_port25(parse_endpoints(c.body, "resp.json"), Instance::Worldwide, "resp.json");
      ADD_FAILURE() << c.body;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

TEST(Feed, ValidationRefusesDangerousVersions) {
  auto C = [](std::vector<const char*> v) {
    std::vector<Cidr> o;
    for (auto s : v) o.push_back(Cidr::parse(s));
    return o;
  };
  auto current = C({"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17", "2a01:111:f400::/48",
                    "2a01:111:f403::/48", "40.95.0.0/16", "52.96.0.0/14", "157.55.0.0/16", "207.46.0.0/16"});
  struct {
    std::vector<Cidr> next;
    const char* says;
  } cases[] = {
      {{}, "empty"},
      {C({"40.92.0.0/15", "10.1.0.0/16"}), "10.0.0.0/8 Private-Use"},
      {C({"40.92.0.0/15", "0.0.0.0/0"}), "default route"},
      {C({"40.0.0.0/7"}), "shorter than /12"},
      {C({"2a00::/12"}), "shorter than /32"},
      {C({"40.92.0.0/15"}), "remove 9 of the 10"},
  };
  for (const auto& c : cases) {
    try {
      validate_feed_update(current, c.next, FeedPolicy{}, "feed version 2026010100");
      ADD_FAILURE() << c.says;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("feed version 2026010100"), std::string::npos);
    }
  }
  FeedPolicy force;
  force.force = true;
  EXPECT_NO_THROW(validate_feed_update(current, C({"40.92.0.0/15"}), force, "forced"));
}

// Microsoft's ranges plus 215 public IPv4 /8s and 16 IPv6 /16s (see
// fixtures/SYNTHETIC.md): every guard stops it on its own.
TEST(Feed, AForgedAnswerThatOpensTheGateIsRefusedByEachGuard) {
  const char* file = "endpoints-worldwide-forged-open-gate.synthetic.json";
  auto forged = select_port25(parse_endpoints(fixture(file), file), Instance::Worldwide, file).ranges;
  auto real = select_port25(parse_endpoints(
                                fixture("m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json"), "ww"),
                            Instance::Worldwide, "ww")
                  .ranges;
  ASSERT_EQ(forged.size(), 6u + 215 + 16);
  auto refusal = [&](const FeedPolicy& p) {
    try {
      validate_feed_update(real, forged, p, "feed version 2026010100");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  FeedPolicy p;  // the defaults: no /8 and no IPv6 /16 passes, even forced
  EXPECT_NE(refusal(p).find("1.0.0.0/8 is shorter than /12 (min_prefix_v4)"), std::string::npos) << refusal(p);
  p.force = true;
  EXPECT_NE(refusal(p).find("shorter than /12"), std::string::npos) << refusal(p);
  // With the minimums of earlier releases, the change rules stop it.
  p = FeedPolicy{};
  p.min_prefix_v4 = 8;
  p.min_prefix_v6 = 16;
  EXPECT_NE(refusal(p).find("it would add 231 new ranges to the 6 current ones (more than max_added_ranges 8)"),
            std::string::npos)
      << refusal(p);
  p.max_added_ranges = 1000;
  EXPECT_NE(refusal(p).find("grow the admitted IPv4 space from 491520 addresses by 3606609920 addresses"),
            std::string::npos)
      << refusal(p);
  EXPECT_NE(refusal(p).find("apply it anyway with --force"), std::string::npos) << refusal(p);
}

TEST(FeedImport, AppliesThroughTheGateAndRefusesBadFilesWithoutChange) {
  std::string tag = "sgt" + std::to_string(::getpid()) + "feed";
  DaemonConfig cfg;
  cfg.paths = Paths{"/sys/fs/bpf/" + tag, "/tmp/" + tag + "-state"};
  ensure_pin_dir(cfg.paths.pin_dir);
  make_dirs(cfg.paths.state_dir);
  {
    ProgramOptions o;
    o.pin_dir = cfg.paths.pin_dir;
    GateProgram p(o);
    p.load();
  }
  std::string ww =
      std::string(SG_FIXTURES_DIR) + "/m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json";
  SyncResult r = run_feed(cfg, FeedOp::Import, 1000, ww, "2025120100");
  ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  GateMaps maps = GateMaps::open_pinned(cfg.paths.pin_dir);
  EXPECT_EQ(maps.active_entries().size(), 6u);
  uint32_t gen = maps.generation();

  // Special-purpose space, then a version that drops 5 of the 6 ranges.
  std::string bad = cfg.paths.state_dir + "/bad.json";
  std::ofstream(bad) << R"([{"id": 10, "serviceArea": "Exchange", "tcpPorts": "25", "ips": ["10.0.0.0/8"]}])";
  EXPECT_EQ(run_feed(cfg, FeedOp::Import, 1010, bad).outcome, SyncOutcome::Rejected);
  std::ofstream(bad) << R"([{"id": 10, "serviceArea": "Exchange", "tcpPorts": "25", "ips": ["40.92.0.0/15"]}])";
  r = run_feed(cfg, FeedOp::Import, 1020, bad);
  EXPECT_EQ(r.outcome, SyncOutcome::Rejected);
  // The admitted set is unchanged; the refused version's range is watched.
  size_t admits = 0;
  for (const auto& e : maps.active_entries())
    if (e.kind == RuleKind::Admit) admits++;
  EXPECT_EQ(admits, 6u);
  EXPECT_GE(maps.generation(), gen);
  FeedStatus st = read_feed_status(cfg.paths.state_dir);
  ASSERT_TRUE(st.applied.has_value());
  EXPECT_EQ(st.applied->version, "2025120100");
  EXPECT_EQ(st.applied->ranges.size(), 6u);
  EXPECT_FALSE(st.last_error.empty());

  std::error_code ec;
  fs::remove_all(cfg.paths.pin_dir, ec);
  fs::remove_all(cfg.paths.state_dir, ec);
}

// The attack end to end, with the commands an operator (or an attacker's
// file) would use: smtpgatectl feed import of the forged answer is refused,
// also with --force and with the loose minimums of earlier releases, and the
// gate, the state and explain stay what they were.
TEST(FeedImport, AForgedAnswerLeavesTheGateShut) {
  sgtest::RefusalScene scene("ffg", 1024);  // room for every forged range: only validation stops them
  const std::string forged = std::string(SG_FIXTURES_DIR) + "/endpoints-worldwide-forged-open-gate.synthetic.json";
  auto admits = [&] {
    std::vector<std::string> v;
    for (const auto& e : scene.gate().maps().active_entries())
      if (e.kind == RuleKind::Admit) v.push_back(e.prefix.str());
    return v;
  };
  // No range of the forged version reaches the maps, not even to be watched.
  auto forged_in_maps = [&] {
    std::vector<std::string> v;
    for (const auto& e : scene.gate().maps().active_entries())
      if (e.prefix.prefix_len() <= (e.prefix.family() == Family::V4 ? 8u : 16u)) v.push_back(e.prefix.str());
    return v;
  };
  const auto before = admits();
  const std::string ranges_before = read_file(scene.paths().state_dir + "/ranges.json");
  const FeedSnapshot applied_before = *read_feed_status(scene.paths().state_dir).applied;
  ASSERT_EQ(scene.syn("8.8.8.8"), XDP_DROP);

  std::string loose = scene.paths().state_dir + "/loose.toml";
  std::ofstream(loose) << "[feed]\nmin_prefix_v4 = 8\nmin_prefix_v6 = 16\n";
  struct {
    std::vector<std::string> args;
    const char* says;
  } cases[] = {
      {{"feed", "import", forged, "--version", "2026010100"}, "1.0.0.0/8 is shorter than /12 (min_prefix_v4)"},
      {{"feed", "import", forged, "--version", "2026010100", "--force"}, "shorter than /12"},
      {{"feed", "import", forged, "--version", "2026010100", "--config", loose},
       "it would add 235 new ranges to the 2 current ones (more than max_added_ranges 8)"},
  };
  for (const auto& c : cases) {
    auto r = scene.ctl(c.args);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(admits(), before);
    EXPECT_EQ(forged_in_maps(), std::vector<std::string>{}) << "a forged version's ranges reached the maps";
  }
  EXPECT_EQ(scene.syn("8.8.8.8"), XDP_DROP);
  EXPECT_EQ(scene.syn("2a00::1"), XDP_DROP);
  json e = scene.ctl_json({"explain", "8.8.8.8"});
  EXPECT_EQ(e["verdict"], "drop");
  EXPECT_EQ(e["rule"]["origin"], "default");
  EXPECT_NE(e["advice"].dump().find("kept out of the gate: a forged or damaged answer looks like this"),
            std::string::npos)
      << e["advice"].dump();
  EXPECT_EQ(read_file(scene.paths().state_dir + "/ranges.json"), ranges_before);
  FeedStatus after = read_feed_status(scene.paths().state_dir);
  ASSERT_TRUE(after.applied.has_value());
  EXPECT_EQ(after.applied->version, applied_before.version);
  EXPECT_EQ(after.applied->ranges, applied_before.ranges);
  // The refusal is on record, its ranges are not watched.
  ASSERT_TRUE(after.rejected.has_value());
  EXPECT_EQ(after.rejected->version, "2026010100");
  EXPECT_FALSE(after.rejected->watched);
}
