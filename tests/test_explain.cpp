// The operator's question, answered from a real gate (maps pinned, SYNs run
// through the program): which sources were turned away (top), each SYN as it
// happened (drops), counters per origin (stats), and why an address is not
// admitted (explain). One story per test; see refusal_scene.hpp for the cast.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "drops.hpp"
#include "error.hpp"
#include "feed_sync.hpp"
#include "fsutil.hpp"
#include "gate.hpp"
#include "process.hpp"
#include "refusal_scene.hpp"

using namespace smtpgate;
using nlohmann::json;
using sgtest::RefusalScene;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> sources(const json& top) {
  std::vector<std::string> out;
  for (const auto& s : top["sources"]) out.push_back(s["source"]);
  return out;
}

std::vector<json> lines_json(const std::string& out) {
  std::vector<json> v;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    v.push_back(json::parse(out.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  return v;
}

TEST(Top, MicrosoftSourcesComeFirstThenByCount) {
  RefusalScene scene("top");
  scene.syn(RefusalScene::kStranger, 5);  // the most refused, but no feed lists it
  scene.syn(RefusalScene::kDod, 3);
  scene.syn(RefusalScene::kPending, 2);
  scene.syn(RefusalScene::kEop, 4);  // admitted: never in top
  json top = scene.ctl_json({"top"});
  EXPECT_EQ(sources(top),
            (std::vector<std::string>{RefusalScene::kDod, RefusalScene::kPending, RefusalScene::kStranger}));
  const json& dod = top["sources"][0];
  EXPECT_EQ(dod["count"], 3);
  EXPECT_EQ(dod["range"], "23.103.191.0/24");
  EXPECT_EQ(dod["origin"], "feed-other");
  EXPECT_EQ(dod["verdict"], "drop");
  EXPECT_TRUE(dod["microsoft"].get<bool>());
  EXPECT_TRUE(has(dod["note"], "USGovDoD version 2025120100"));
  EXPECT_FALSE(top["sources"][2]["microsoft"].get<bool>());
  EXPECT_EQ(top["sources"][2]["origin"], "default");
  EXPECT_LE(dod["first_seen"].get<std::string>(), dod["last_seen"].get<std::string>());

  EXPECT_EQ(sources(scene.ctl_json({"top", "--limit", "1"})), (std::vector<std::string>{RefusalScene::kDod}));
  EXPECT_EQ(sources(scene.ctl_json({"top", "--origin", "default"})),
            (std::vector<std::string>{RefusalScene::kStranger}));
  auto text = scene.ctl({"top"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_TRUE(has(text.out, "23.103.191.5 *")) << text.out;
}

TEST(Stats, GroupsCountersByOriginAndKeepsTheRanges) {
  RefusalScene scene("stats");
  scene.send_stories();
  json s = scene.ctl_json({"stats"});
  const json& o = s["by_origin"];
  EXPECT_EQ(o["feed-other"]["refuse_packets"], 3);
  EXPECT_EQ(o["feed-other"]["ranges"], 2);
  EXPECT_EQ(o["feed-pending"]["refuse_packets"], 2);
  EXPECT_EQ(o["default"]["refuse_packets"], 1);
  EXPECT_EQ(o["default"]["ranges"], 0);
  EXPECT_EQ(o["operator"]["refuse_packets"], 1);
  EXPECT_EQ(o["feed"]["admit_packets"], 2);
  uint64_t per_range = 0;
  for (const auto& r : s["rules"])
    if (r["origin"] == "feed-other") per_range += r["counters"]["refuse_packets"].get<uint64_t>();
  EXPECT_EQ(per_range, 3u);
  auto text = scene.ctl({"stats"});
  EXPECT_TRUE(has(text.out, "ORIGIN")) << text.out;
  EXPECT_TRUE(has(text.out, "23.103.191.0/24")) << text.out;
}

TEST(Explain, NamesAnotherInstancesRangeAndWhatToDo) {
  RefusalScene scene("exo");
  scene.syn(RefusalScene::kDod, 2);
  json e = scene.ctl_json({"explain", RefusalScene::kDod});
  EXPECT_EQ(e["verdict"], "drop");
  EXPECT_EQ(e["rule"]["range"], "23.103.191.0/24");
  EXPECT_EQ(e["rule"]["origin"], "feed-other");
  EXPECT_TRUE(e["microsoft"].get<bool>());
  EXPECT_TRUE(has(e["eop_code"], "4.4.315"));
  EXPECT_EQ(e["last_refused"]["count"], 2);
  EXPECT_EQ(e["rule"]["counters"]["refuse_packets"], 2);
  EXPECT_EQ(e["feed"]["other_instances"], json::array({"USGovDoD"}));
  ASSERT_FALSE(e["advice"].empty());
  EXPECT_TRUE(has(e["advice"].dump(), "USGovDoD instance's port-25 set")) << e["advice"].dump();
}

TEST(Explain, SaysTheAllowlistIsStaleAndWhyTheLatestVersionWasRejected) {
  RefusalScene scene("exs");
  json e = scene.ctl_json({"explain", RefusalScene::kPending});
  EXPECT_EQ(e["rule"]["origin"], "feed-pending");
  EXPECT_EQ(e["feed"]["latest_version"], RefusalScene::kRejectedVersion);
  EXPECT_EQ(e["feed"]["applied_version"], RefusalScene::kAppliedVersion);
  EXPECT_TRUE(e["feed"]["stale"].get<bool>());
  EXPECT_FALSE(e["feed"]["in_applied"].get<bool>());
  EXPECT_EQ(e["feed"]["in_rejected"]["version"], RefusalScene::kRejectedVersion);
  std::string advice = e["advice"].dump();
  EXPECT_TRUE(has(advice, "which validation rejected")) << advice;
  EXPECT_TRUE(has(advice, "max_removal_share")) << advice;
  // The announced version is the refused one: syncing would refuse it again.
  EXPECT_FALSE(has(advice, "run smtpgatectl feed sync")) << advice;
  auto text = scene.ctl({"explain", RefusalScene::kPending});
  EXPECT_TRUE(has(text.out, "advice:")) << text.out;

  // A newer version is announced and not yet fetched: that is staleness.
  FeedStatus f = read_feed_status(scene.paths().state_dir);
  f.latest_version = "2026020100";
  write_feed_status(scene.paths().state_dir, f);
  advice = scene.ctl_json({"explain", RefusalScene::kStranger})["advice"].dump();
  EXPECT_TRUE(has(advice,
                  "announces feed version 2026020100 but 2025120100 is applied: your allowlist is stale, "
                  "run smtpgatectl feed sync"))
      << advice;
}

TEST(Explain, AdmittedFeedRangeShowsVersionAndEffectiveDateAndNoCode) {
  RefusalScene scene("exa");
  json e = scene.ctl_json({"explain", RefusalScene::kEop});
  EXPECT_EQ(e["verdict"], "admit");
  EXPECT_EQ(e["rule"]["origin"], "feed");
  EXPECT_TRUE(has(e["rule"]["note"], "version 2025120100, effective 20251201")) << e["rule"]["note"];
  EXPECT_TRUE(e["eop_code"].is_null());
  EXPECT_TRUE(e["feed"]["in_applied"].get<bool>());
  EXPECT_TRUE(e["advice"].empty()) << e["advice"].dump();
}

TEST(Explain, OperatorDenyShowsTheCommentAndRejectGivesItsCode) {
  RefusalScene scene("exd");
  ASSERT_EQ(scene.ctl({"action", "reject"}).exit_code, 0);
  json e = scene.ctl_json({"explain", RefusalScene::kPartnerV6});
  EXPECT_EQ(e["verdict"], "reject");
  EXPECT_EQ(e["rule"]["kind"], "deny");
  EXPECT_EQ(e["rule"]["note"], "partner's old relay");
  EXPECT_TRUE(has(e["eop_code"], "4.4.316"));
  EXPECT_FALSE(e["microsoft"].get<bool>());
}

TEST(Drops, WithoutADaemonTheCommandReadsTheRingItselfAndKeepsTheHistory) {
  RefusalScene scene("drp");
  scene.send_stories();
  auto r = scene.ctl({"-j", "drops"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<json> recs = lines_json(r.out);
  ASSERT_EQ(recs.size(), 7u) << r.out << r.err;  // 3 + 2 + 1 + 1 refused; admitted ones are not drops
  EXPECT_EQ(recs[0]["source"], RefusalScene::kDod);
  EXPECT_EQ(recs[0]["range"], "23.103.191.0/24");
  EXPECT_EQ(recs[0]["origin"], "feed-other");
  EXPECT_EQ(recs[0]["verdict"], "drop");
  EXPECT_EQ(recs[0]["port"], 25);
  EXPECT_EQ(recs[6]["source"], RefusalScene::kPartnerV6);
  EXPECT_EQ(recs[6]["kind"], "deny");
  for (size_t i = 1; i < recs.size(); i++) EXPECT_LE(recs[i - 1]["unix_ns"], recs[i]["unix_ns"]);
  // The ring is empty now; the history is in the log.
  auto again = scene.ctl({"-j", "drops", "--since", "10m"});
  EXPECT_EQ(lines_json(again.out).size(), 7u);
  auto text = scene.ctl({"drops"});
  EXPECT_TRUE(has(text.out, "23.103.191.5 > port 25 drop range 23.103.191.0/24 origin feed-other")) << text.out;
  EXPECT_EQ(scene.ctl({"drops", "--since", "soon"}).exit_code, 1);
}

TEST(Drops, WhileAnotherProcessConsumesTheRingTheCommandReadsOnlyTheLog) {
  RefusalScene scene("drq");
  auto daemon_side = DropRecorder::try_take(scene.paths());
  ASSERT_TRUE(daemon_side);
  EXPECT_FALSE(DropRecorder::try_take(scene.paths())) << "a second consumer must not exist";
  scene.syn(RefusalScene::kStranger, 2);
  // Before the consumer moved them, the command cannot see them (and must
  // not take them from the ring).
  EXPECT_EQ(scene.ctl({"-j", "drops"}).out, "");
  EXPECT_EQ(daemon_side->drain().size(), 2u);
  EXPECT_EQ(lines_json(scene.ctl({"-j", "drops"}).out).size(), 2u);
}

TEST(Drops, FollowTailsTheLogAndTakesOverTheRingWhenTheConsumerGoes) {
  RefusalScene scene("drf");
  auto daemon_side = DropRecorder::try_take(scene.paths());
  ASSERT_TRUE(daemon_side);
  sgtest::LineReader follow({sgtest::binary("smtpgatectl"), "--pin-dir", scene.paths().pin_dir, "--state-dir",
                             scene.paths().state_dir, "-j", "drops", "--follow"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  scene.syn(RefusalScene::kStranger);
  daemon_side->drain();
  json first = json::parse(follow.line(3000));
  EXPECT_EQ(first["source"], RefusalScene::kStranger);
  daemon_side.reset();  // the daemon stops: the follower reads the ring itself
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  scene.syn(RefusalScene::kDod);
  std::string l = follow.line(3000);
  ASSERT_FALSE(l.empty());
  EXPECT_EQ(json::parse(l)["source"], RefusalScene::kDod);
}

TEST(Drops, RecordsOutOfOrderOrAlikeAreAllShown) {
  // Several CPUs write the ring, and one source can be refused twice in one
  // clock tick: the log may hold equal records and stamps that go back.
  RefusalScene scene("dro");
  int64_t now = int64_t(::time(nullptr)) * 1000000000;
  json r = {{"schema", 1}, {"time", "x"}, {"unix_ns", now - 5000}, {"source", "203.0.113.9"}, {"port", 25}};
  std::string line = r.dump() + "\n";
  r["unix_ns"] = now - 9000;
  write_file_atomic(drop_log_path(scene.paths().state_dir), line + line + r.dump() + "\n");
  EXPECT_EQ(lines_json(scene.ctl({"-j", "drops"}).out).size(), 3u);
  auto holder = DropRecorder::try_take(scene.paths());  // the command now reads the log only
  ASSERT_TRUE(holder);
  EXPECT_EQ(lines_json(scene.ctl({"-j", "drops", "--since", "1m"}).out).size(), 3u);
  sgtest::LineReader follow({sgtest::binary("smtpgatectl"), "--pin-dir", scene.paths().pin_dir, "--state-dir",
                             scene.paths().state_dir, "-j", "drops", "--follow", "--since", "1m"});
  for (int i = 0; i < 3; i++) EXPECT_FALSE(follow.line(3000).empty()) << i;
}

TEST(Drops, TheLogIsRotatedAtItsCapSoTheHistoryStaysBounded) {
  RefusalScene scene("drr");
  const size_t kCap = 4096;
  auto consumer = DropRecorder::try_take(scene.paths(), kCap);
  ASSERT_TRUE(consumer);
  size_t recorded = 0;
  for (int round = 0; round < 10; round++) {
    scene.syn(RefusalScene::kStranger, 10);
    recorded += consumer->drain().size();
  }
  EXPECT_EQ(recorded, 100u);
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat(drop_log_path(scene.paths().state_dir).c_str(), &a), 0);
  ASSERT_EQ(::stat((drop_log_path(scene.paths().state_dir) + ".1").c_str(), &b), 0);
  EXPECT_LE(size_t(a.st_size), kCap);
  EXPECT_LE(size_t(b.st_size), kCap);
  std::vector<json> kept = read_drop_log(scene.paths().state_dir, 0);
  EXPECT_GT(kept.size(), 0u);
  EXPECT_LT(kept.size(), 100u);
  for (size_t i = 1; i < kept.size(); i++) EXPECT_LE(kept[i - 1]["unix_ns"], kept[i]["unix_ns"]);
}

TEST(Drops, AfterAPublishRulesAreNamedAsTheNewAllowlistSays) {
  // The recorder names each rule once per publish from the event's source:
  // a publish that gives a range a new rule id, another origin and note, or
  // removes it, must show in the records that follow.
  RefusalScene scene("drn");
  auto consumer = DropRecorder::try_take(scene.paths());
  ASSERT_TRUE(consumer);
  scene.syn(RefusalScene::kDod);
  scene.syn(RefusalScene::kPending);
  std::vector<json> before = consumer->drain();
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(before[0]["kind"], "watch");
  EXPECT_EQ(before[0]["origin"], "feed-other");
  EXPECT_EQ(before[1]["range"], "52.100.0.0/14");
  EXPECT_EQ(before[1]["origin"], "feed-pending");
  uint32_t old_id = before[0]["rule_id"];

  scene.syn(RefusalScene::kPending);  // judged now, named after its range is gone
  add_range(scene.paths(), OperatorRange{Cidr::parse("23.103.191.0/24"), RuleKind::Deny, "DoD relay, refused", 0},
            true);  // the same prefix, now deny: a new rule id
  FeedStatus f = read_feed_status(scene.paths().state_dir);
  f.rejected.reset();  // the pending range leaves the allowlist
  write_feed_status(scene.paths().state_dir, f);
  {
    GateLock lock(scene.paths());
    ASSERT_TRUE(republish_if_pinned(scene.paths()));
  }
  scene.syn(RefusalScene::kDod);
  std::vector<json> after = consumer->drain();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0]["source"], RefusalScene::kPending);
  EXPECT_TRUE(after[0]["range"].is_null()) << after[0];
  EXPECT_EQ(after[0]["kind"], "unknown");
  EXPECT_EQ(after[0]["origin"], "unknown");
  EXPECT_EQ(after[1]["source"], RefusalScene::kDod);
  EXPECT_NE(after[1]["rule_id"].get<uint32_t>(), old_id);
  EXPECT_EQ(after[1]["range"], "23.103.191.0/24");
  EXPECT_EQ(after[1]["kind"], "deny");
  EXPECT_EQ(after[1]["origin"], "operator");
  // What stats says of that rule is what the record says.
  json stats = scene.ctl_json({"stats"});
  bool found = false;
  for (const auto& r : stats["rules"])
    if (r["rule_id"] == after[1]["rule_id"]) {
      found = true;
      EXPECT_EQ(r["range"], after[1]["range"]);
      EXPECT_EQ(r["kind"], after[1]["kind"]);
      EXPECT_EQ(r["origin"], after[1]["origin"]);
      EXPECT_EQ(r["note"], "DoD relay, refused");
    }
  EXPECT_TRUE(found) << stats["rules"].dump();
  // The same answers from top, which names rules the same way.
  json top = scene.ctl_json({"top"});
  ASSERT_FALSE(top["sources"].empty());
  EXPECT_EQ(top["sources"][0]["source"], RefusalScene::kDod);
  EXPECT_EQ(top["sources"][0]["origin"], "operator");
  EXPECT_EQ(top["sources"][0]["note"], "DoD relay, refused");
  EXPECT_TRUE(top["sources"][0]["microsoft"].get<bool>()) << "a feed still lists it";
}

TEST(Durations, ParseWithUnitsAndRefuseNonsense) {
  EXPECT_EQ(parse_duration_s("90"), 90);
  EXPECT_EQ(parse_duration_s("90s"), 90);
  EXPECT_EQ(parse_duration_s("15m"), 900);
  EXPECT_EQ(parse_duration_s("2h"), 7200);
  EXPECT_EQ(parse_duration_s("1d"), 86400);
  for (const char* bad : {"", "h", "5x", "-5m", "1.5h", "99999999999999999d"})
    EXPECT_THROW(parse_duration_s(bad), InputError) << bad;
}

TEST(Watch, RedrawsUntilInterrupted) {
  RefusalScene scene("wat");
  scene.syn(RefusalScene::kDod, 1);
  sgtest::LineReader w({sgtest::binary("smtpgatectl"), "--pin-dir", scene.paths().pin_dir, "--state-dir",
                        scene.paths().state_dir, "-j", "top", "--watch", "0.2"});
  json a = json::parse(w.line(3000));
  EXPECT_EQ(a["sources"][0]["count"], 1);
  scene.syn(RefusalScene::kDod, 1);
  // A later frame shows the new count.
  bool seen = false;
  for (int i = 0; i < 20 && !seen; i++) {
    std::string l = w.line(1000);
    if (!l.empty() && json::parse(l)["sources"][0]["count"] == 2) seen = true;
  }
  EXPECT_TRUE(seen);
}

TEST(Watch, WithoutSecondsRedrawsEveryTwo) {
  RefusalScene scene("wa2");
  sgtest::LineReader w({sgtest::binary("smtpgatectl"), "--pin-dir", scene.paths().pin_dir, "--state-dir",
                        scene.paths().state_dir, "-j", "stats", "--watch"});
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_FALSE(w.line(3000).empty());
  ASSERT_FALSE(w.line(4000).empty());
  auto gap = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(gap, std::chrono::milliseconds(1900));
  EXPECT_LE(gap, std::chrono::milliseconds(3500));
}

}  // namespace
