// The feed as data: every real fixture selects the right port-25 set, and a
// bad or dangerous response is refused with the running allowlist and the
// state on disk unchanged.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "error.hpp"
#include "feed.hpp"
#include "config.hpp"
#include "feed_ranges.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"

using namespace smtpgate;
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
  const std::vector<std::string> eop_ww = {"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17",
                                           "2a01:111:f400::/48", "2a01:111:f403::/48"};
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
      {"[{\"id\": 10, \"serviceArea\": \"Exchange\", \"tcpPorts\": \"443\", \"ips\": [\"40.92.0.0/15\"]}]", "no port-25 set"},
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
      {C({"40.92.0.0/15", "10.0.0.0/8"}), "10.0.0.0/8 Private-Use"},
      {C({"40.92.0.0/15", "0.0.0.0/0"}), "default route"},
      {C({"40.0.0.0/7"}), "shorter than /8"},
      {C({"2a00::/12"}), "shorter than /16"},
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
  std::string ww = std::string(SG_FIXTURES_DIR) + "/m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json";
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
