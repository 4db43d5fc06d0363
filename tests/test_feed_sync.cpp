// Feed sync, one operator story per test, against a real HTTP server on
// loopback serving the real endpoints fixtures (and change lists built from the
// documented schema): when the service is asked, what reaches apply(), what is
// refused, and what feed.json remembers across restarts.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "feed_client.hpp"
#include "feed_ranges.hpp"
#include "feed_sync.hpp"
#include "fsutil.hpp"
#include "gate.hpp"
#include "http_server.hpp"
#include "log_capture.hpp"

using namespace smtpgate;
using nlohmann::json;
using sgtest::Fault;
using sgtest::HttpServer;
using sgtest::LogCapture;
using sgtest::Reply;
namespace fs = std::filesystem;

namespace {
constexpr int64_t T0 = 1767225600;  // 2026-01-01T00:00:00Z
constexpr const char* kWorldwide2025 = "m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json";

std::string fixture(const std::string& name) { return read_file(std::string(SG_FIXTURES_DIR) + "/" + name); }

std::vector<std::string> strs(const std::vector<Cidr>& v) {
  std::vector<std::string> o;
  for (const auto& c : v) o.push_back(c.str());
  return o;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The real 2025 worldwide response with set 10's ips replaced: every other
// byte is Microsoft's.
std::string worldwide_with_port25(const std::vector<std::string>& ips) {
  json doc = json::parse(fixture(kWorldwide2025));
  for (auto& set : doc)
    if (set.at("id") == 10) set["ips"] = ips;
  return doc.dump(2);
}

const std::vector<std::string> kReal = {"40.92.0.0/15",  "40.107.0.0/16",      "52.100.0.0/14",
                                        "104.47.0.0/17", "2a01:111:f400::/48", "2a01:111:f403::/48"};

std::vector<std::string> plus(std::vector<std::string> v, const std::vector<std::string>& more) {
  v.insert(v.end(), more.begin(), more.end());
  std::sort(v.begin(), v.end(),
            [](const std::string& a, const std::string& b) { return Cidr::parse(a) < Cidr::parse(b); });
  return v;
}

Reply version_reply(const std::string& v, int max_age = 3600) {
  return Reply::json(R"({"instance":"Worldwide","latest":")" + v + R"("})")
      .header("Cache-Control", "public, max-age=" + std::to_string(max_age));
}

// A state directory, a loopback feed server, a client and a sync whose
// apply() records what it was given (and fails on demand).
class FeedSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("smtpgate-feedsync-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    serve_version("2025120100");
    server_.route("/endpoints/Worldwide", Reply::json(fixture(kWorldwide2025)));
  }
  void TearDown() override { fs::remove_all(dir_); }

  void serve_version(const std::string& v, int max_age = 3600) {
    server_.route("/version/Worldwide", version_reply(v, max_age));
  }
  void serve_endpoints(const std::vector<std::string>& port25) {
    server_.route("/endpoints/Worldwide", Reply::json(worldwide_with_port25(port25)));
  }

  FeedClientOptions client_options(const std::string& url) {
    FeedClientOptions o;
    o.base_url = url;
    o.state_dir = dir_;
    o.http.proxy = "";
    o.http.attempts = 2;
    o.http.total_timeout = std::chrono::milliseconds(800);
    o.http.sleep = [](std::chrono::milliseconds) {};
    return o;
  }

  // (Re)starts client and sync, as a daemon start would.
  void start(const std::string& url = "", FeedSyncOptions o = {}) {
    client_ = std::make_unique<FeedClient>(client_options(url.empty() ? server_.url() : url));
    o.state_dir = dir_;
    sync_ = std::make_unique<FeedSync>(o, client_.get(), [this](const FeedSnapshot& s) {
      if (fail_apply_) throw std::runtime_error("map update failed");
      applied_.push_back(s);
    });
  }

  // The first sync of the real 2025 data, as the starting point of a story.
  void first_sync(int64_t now = T0) {
    start();
    SyncResult r = sync_->check(now);
    ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
    server_.clear_requests();
    applied_.clear();
  }

  FeedStatus on_disk() const { return read_feed_status(dir_); }

  std::string dir_;
  HttpServer server_;
  std::unique_ptr<FeedClient> client_;
  std::unique_ptr<FeedSync> sync_;
  std::vector<FeedSnapshot> applied_;
  bool fail_apply_ = false;
};
}  // namespace

TEST_F(FeedSyncTest, FirstSyncAppliesThePort25SetAndRemembersIt) {
  start();
  SyncResult r = sync_->check(T0);
  ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  ASSERT_EQ(applied_.size(), 1u);
  EXPECT_EQ(strs(applied_[0].ranges), kReal);
  EXPECT_EQ(applied_[0].set_ids, std::vector<int>{10});
  EXPECT_EQ(applied_[0].version, "2025120100");
  EXPECT_EQ(applied_[0].source, server_.url() + "/endpoints/Worldwide");
  EXPECT_EQ(r.added.size(), 6u);

  // What was asked: version, then endpoints of Exchange with IPv6, under the
  // machine's ClientRequestId; no changes call on a first sync.
  auto log = server_.requests();
  ASSERT_EQ(log.size(), 2u);
  std::string id = read_file(dir_ + "/client-request-id");
  id.pop_back();  // newline
  EXPECT_TRUE(is_guid(id)) << id;
  EXPECT_EQ(log[0].path, "/version/Worldwide");
  EXPECT_EQ(log[0].param("ClientRequestId"), id);
  EXPECT_EQ(log[1].path, "/endpoints/Worldwide");
  EXPECT_EQ(log[1].param("ClientRequestId"), id);
  EXPECT_EQ(log[1].param("ServiceAreas"), "Exchange");
  EXPECT_EQ(log[1].query.find("NoIPv6"), std::string::npos);

  FeedStatus s = on_disk();
  ASSERT_TRUE(s.applied.has_value());
  EXPECT_EQ(s.applied->version, "2025120100");
  EXPECT_EQ(strs(s.applied->ranges), kReal);
  EXPECT_EQ(s.applied->fetched_at, T0);
  EXPECT_EQ(s.latest_version, "2025120100");
  EXPECT_EQ(s.last_check, T0);
  EXPECT_EQ(s.last_success, T0);
  EXPECT_EQ(s.next_check, T0 + 3600);
  EXPECT_EQ(s.last_error, "");
  EXPECT_FALSE(s.stale());
}

TEST_F(FeedSyncTest, UnchangedVersionMakesNoEndpointsCall) {
  first_sync();
  EXPECT_EQ(sync_->check(T0 + 1800).outcome, SyncOutcome::NotDue);
  EXPECT_EQ(server_.requests().size(), 0u);  // not even the version, within the hour

  SyncResult r = sync_->check(T0 + 3600);
  EXPECT_EQ(r.outcome, SyncOutcome::Unchanged) << r.message;
  EXPECT_EQ(server_.count("/version"), 1u);
  EXPECT_EQ(server_.count("/endpoints"), 0u);
  EXPECT_EQ(server_.count("/changes"), 0u);
  EXPECT_TRUE(applied_.empty());
  EXPECT_EQ(on_disk().last_success, T0 + 3600);
  EXPECT_EQ(sync_->next_check(), T0 + 7200);

  // feed sync asks now, whatever the interval, and still only the version.
  EXPECT_EQ(sync_->sync_now(T0 + 3601).outcome, SyncOutcome::Unchanged);
  EXPECT_EQ(server_.count("/version"), 2u);
  EXPECT_EQ(server_.count("/endpoints"), 0u);
}

TEST_F(FeedSyncTest, CacheControlLongerThanTheIntervalIsHonoured) {
  struct {
    int max_age;
    int64_t next;
  } cases[] = {{7200, T0 + 7200}, {60, T0 + 3600}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.max_age);
    fs::remove(dir_ + "/feed.json");
    serve_version("2025120100", c.max_age);
    start();
    ASSERT_EQ(sync_->check(T0).outcome, SyncOutcome::Applied);
    EXPECT_EQ(sync_->next_check(), c.next);
    EXPECT_EQ(sync_->check(c.next - 1).outcome, SyncOutcome::NotDue);
  }
}

TEST_F(FeedSyncTest, NewVersionAddingARangeIsAdmittedAtOnceAndLoggedWithItsEffectiveDate) {
  first_sync();
  serve_version("2026010100");
  serve_endpoints(plus(kReal, {"40.94.0.0/16", "2a01:111:f404::/48"}));
  server_.route("/changes/Worldwide/2025120100",
                Reply::json(fixture("changes-worldwide-2025120100.synthetic-from-schema.json")));
  LogCapture logs;

  SyncResult r = sync_->check(T0 + 3600);
  ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  ASSERT_EQ(applied_.size(), 1u);
  EXPECT_EQ(strs(applied_[0].ranges), plus(kReal, {"40.94.0.0/16", "2a01:111:f404::/48"}));
  // Admitted now, weeks before 20260201: publishing early is the point.
  ASSERT_EQ(r.added.size(), 2u);
  EXPECT_EQ(r.added[0], std::make_pair(Cidr::parse("40.94.0.0/16"), std::string("20260201")));
  EXPECT_EQ(r.added[1], std::make_pair(Cidr::parse("2a01:111:f404::/48"), std::string("")));
  EXPECT_TRUE(r.removed.empty());
  EXPECT_EQ(server_.count("/changes/Worldwide/2025120100"), 1u);
  EXPECT_TRUE(has(logs.text(), "feed version 2026010100: adds 40.94.0.0/16 (effective 20260201)")) << logs.text();
  EXPECT_TRUE(has(logs.text(), "feed version 2026010100: adds 2a01:111:f404::/48\n")) << logs.text();
  // Set 1's change (40.95.0.0/16) is not the gate's business.
  EXPECT_FALSE(has(logs.text(), "40.95.0.0/16"));

  FeedStatus s = on_disk();
  EXPECT_EQ(s.applied->version, "2026010100");
  EXPECT_EQ(s.applied->effective_dates, (std::map<Cidr, std::string>{{Cidr::parse("40.94.0.0/16"), "20260201"}}));
}

TEST_F(FeedSyncTest, RemovalIsAppliedAndRememberedAsRecentlyRemoved) {
  first_sync();
  serve_version("2026010100");
  serve_endpoints(plus(kReal, {"40.94.0.0/16"}));
  server_.route("/changes/Worldwide/2025120100",
                Reply::json(fixture("changes-worldwide-2025120100.synthetic-from-schema.json")));
  ASSERT_EQ(sync_->check(T0 + 3600).outcome, SyncOutcome::Applied);

  serve_version("2026020100");
  std::vector<std::string> without = plus(kReal, {"40.94.0.0/16"});
  std::erase(without, "104.47.0.0/17");
  serve_endpoints(without);
  server_.route("/changes/Worldwide/2026010100",
                Reply::json(fixture("changes-worldwide-2026010100.synthetic-from-schema.json")));
  LogCapture logs;
  SyncResult r = sync_->check(T0 + 7200);
  ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  EXPECT_EQ(strs(applied_.back().ranges), without);
  EXPECT_EQ(strs(r.removed), std::vector<std::string>{"104.47.0.0/17"});
  EXPECT_TRUE(r.added.empty());
  EXPECT_TRUE(has(logs.text(), "feed version 2026020100: removes 104.47.0.0/17")) << logs.text();

  FeedStatus s = on_disk();
  ASSERT_EQ(s.recently_removed.size(), 1u);
  EXPECT_EQ(s.recently_removed[0].cidr.str(), "104.47.0.0/17");
  EXPECT_EQ(s.recently_removed[0].version, "2026020100");
  EXPECT_EQ(s.recently_removed[0].removed_at, T0 + 7200);
  // The effective date learnt a version ago stays with its range.
  EXPECT_EQ(s.applied->effective_dates.at(Cidr::parse("40.94.0.0/16")), "20260201");
}

TEST_F(FeedSyncTest, RateLimitWaitsWhatTheServiceAsksThenSucceeds) {
  struct {
    const char* what;
    std::optional<std::string> retry_after;
    int64_t wait;
  } cases[] = {{"Retry-After 120", "120", 120}, {"no Retry-After: an hour", std::nullopt, 3600}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    fs::remove(dir_ + "/feed.json");
    server_.clear_requests();
    applied_.clear();
    Reply limited = Reply::json(R"({"error":"rate limited"})", 429);
    if (c.retry_after) limited.header("Retry-After", *c.retry_after);
    server_.route("/endpoints/Worldwide", std::vector<Reply>{limited, Reply::json(fixture(kWorldwide2025))});
    start();

    SyncResult r = sync_->check(T0);
    EXPECT_EQ(r.outcome, SyncOutcome::RateLimited) << r.message;
    EXPECT_TRUE(applied_.empty());
    EXPECT_EQ(server_.count("/endpoints"), 1u);  // not retried at once
    FeedStatus s = on_disk();
    EXPECT_TRUE(has(s.last_error, "HTTP 429")) << s.last_error;
    EXPECT_EQ(s.next_check, T0 + c.wait);
    EXPECT_EQ(s.rate_limited_until, T0 + c.wait);

    EXPECT_EQ(sync_->check(T0 + c.wait - 1).outcome, SyncOutcome::NotDue);
    EXPECT_EQ(sync_->sync_now(T0 + c.wait - 1).outcome, SyncOutcome::RateLimited);
    EXPECT_EQ(server_.count("/endpoints"), 1u);

    r = sync_->check(T0 + c.wait);
    EXPECT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
    ASSERT_EQ(applied_.size(), 1u);
    EXPECT_EQ(on_disk().last_error, "");
  }
}

TEST_F(FeedSyncTest, ServerDownAtStartKeepsTheLastKnownGood) {
  first_sync();
  std::string gone_url;
  {
    HttpServer gone;
    gone_url = gone.url();
  }
  start(gone_url);  // a restart without network
  ASSERT_TRUE(sync_->last_known_good().has_value());
  EXPECT_EQ(strs(sync_->last_known_good()->ranges), kReal);
  EXPECT_EQ(sync_->last_known_good()->version, "2025120100");

  SyncResult r = sync_->check(T0 + 3600);
  EXPECT_EQ(r.outcome, SyncOutcome::Failed);
  EXPECT_TRUE(applied_.empty());
  FeedStatus s = on_disk();
  EXPECT_TRUE(has(s.last_error, "feed check failed: GET " + gone_url + "/version/Worldwide")) << s.last_error;
  EXPECT_EQ(s.next_check, T0 + 3600 + 600);  // retried sooner than the interval
  ASSERT_TRUE(s.applied.has_value());
  EXPECT_EQ(strs(s.applied->ranges), kReal);
  EXPECT_EQ(s.last_success, T0);
}

TEST_F(FeedSyncTest, BadAnswersAreRefusedAndTheRunningAllowlistStays) {
  // Ten ranges applied, so that "drops 90%" keeps one.
  const std::vector<std::string> ten =
      plus(kReal, {"40.94.0.0/16", "2a01:111:f404::/48", "52.238.78.0/24", "2a01:111:f405::/48"});
  struct {
    const char* what;
    Reply endpoints;
    SyncOutcome outcome;
    const char* error;
    std::vector<std::string> pending;  // ranges kept as pending (rejected version)
  } cases[] = {
      {"truncated body", Reply::fault_reply(Fault::Truncate), SyncOutcome::Failed, "the answer was cut short", {}},
      {"invalid JSON",
       Reply::json(R"([{"id": 10, "serviceArea": "Exchange", "ips": ["40.92.0.0/15")"),
       SyncOutcome::Failed,
       "is not JSON",
       {}},
      {"HTML error page",
       Reply::json("<html><body><h1>Access denied by proxy policy</h1></body></html>"),
       SyncOutcome::Failed,
       "looks like HTML",
       {}},
      {"server error", Reply::json("{}", 503), SyncOutcome::Failed, "HTTP 503 (after 2 tries)", {}},
      {"server hangs", Reply::fault_reply(Fault::Hang), SyncOutcome::Failed, "timed out", {}},
      {"server resets", Reply::fault_reply(Fault::Reset), SyncOutcome::Failed, "reset", {}},
      {"server drips", Reply::fault_reply(Fault::Slow), SyncOutcome::Failed, "timed out", {}},
      {"10.1.0.0/16 in the port-25 set", Reply::json(worldwide_with_port25(plus(ten, {"10.1.0.0/16"}))),
       SyncOutcome::Rejected, "feed version 2026010100 is refused: 10.1.0.0/16 is special-purpose space",
       plus(ten, {"10.1.0.0/16"})},
      {"the default route", Reply::json(worldwide_with_port25(plus(ten, {"0.0.0.0/0"}))), SyncOutcome::Rejected,
       "feed version 2026010100 is refused: it contains the default route 0.0.0.0/0", plus(ten, {"0.0.0.0/0"})},
      {"drops 90% of the ranges",
       Reply::json(worldwide_with_port25({"40.92.0.0/15"})),
       SyncOutcome::Rejected,
       "feed version 2026010100 is refused: it would remove 9 of the 10 current ranges",
       {"40.92.0.0/15"}},
      {"no port-25 set",
       Reply::json(R"([{"id":1,"serviceArea":"Exchange","tcpPorts":"443","ips":["52.96.0.0/14"]}])"),
       SyncOutcome::Rejected,
       "feed version 2026010100 is refused: ",
       {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    fs::remove(dir_ + "/feed.json");
    serve_version("2025120100");
    serve_endpoints(ten);
    first_sync();
    serve_version("2026010100");
    server_.route("/endpoints/Worldwide", c.endpoints);
    server_.route("/changes/Worldwide/2025120100", Reply::json("[]"));

    auto t0 = std::chrono::steady_clock::now();
    SyncResult r = sync_->check(T0 + 3600);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    EXPECT_EQ(r.outcome, c.outcome) << r.message;
    EXPECT_TRUE(has(r.message, c.error)) << r.message;
    EXPECT_TRUE(applied_.empty());

    FeedStatus s = on_disk();
    EXPECT_TRUE(has(s.last_error, c.error)) << s.last_error;
    ASSERT_TRUE(s.applied.has_value());
    EXPECT_EQ(s.applied->version, "2025120100");
    EXPECT_EQ(strs(s.applied->ranges), ten);
    EXPECT_EQ(s.latest_version, "2026010100");
    EXPECT_TRUE(s.stale());
    if (c.outcome == SyncOutcome::Rejected) {
      ASSERT_TRUE(s.rejected.has_value());
      EXPECT_EQ(s.rejected->version, "2026010100");
      EXPECT_EQ(s.rejected->reason, s.last_error);
      EXPECT_EQ(strs(s.rejected->ranges), c.pending);
      // Only a version refused for what it drops has its ranges watched.
      EXPECT_EQ(s.rejected->watched, has(c.error, "would remove"));
      EXPECT_EQ(s.next_check, T0 + 7200);  // nothing to retry before the next version
    } else {
      EXPECT_FALSE(s.rejected.has_value());
      EXPECT_EQ(s.next_check, T0 + 3600 + 600);
    }
  }
}

TEST_F(FeedSyncTest, ARejectedVersionIsNotFetchedAgainUntilANewOneComes) {
  first_sync();
  serve_version("2026010100");
  serve_endpoints(plus(kReal, {"10.0.0.0/8"}));
  server_.route("/changes/", Reply::json("[]"));
  ASSERT_EQ(sync_->check(T0 + 3600).outcome, SyncOutcome::Rejected);
  server_.clear_requests();

  SyncResult r = sync_->check(T0 + 7200);
  EXPECT_EQ(r.outcome, SyncOutcome::Rejected);
  EXPECT_TRUE(has(r.message, "feed version 2026010100 is still the latest and stays refused")) << r.message;
  EXPECT_EQ(server_.count("/version"), 1u);
  EXPECT_EQ(server_.count("/endpoints"), 0u);

  serve_version("2026010200");
  serve_endpoints(plus(kReal, {"40.94.0.0/16"}));
  r = sync_->check(T0 + 10800);
  ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  FeedStatus s = on_disk();
  EXPECT_FALSE(s.rejected.has_value());
  EXPECT_EQ(s.last_error, "");
  EXPECT_EQ(s.applied->version, "2026010200");
}

TEST_F(FeedSyncTest, AVersionThatFailsToApplyIsNotRecordedAndIsRetried) {
  first_sync();
  serve_version("2026010100");
  serve_endpoints(plus(kReal, {"40.94.0.0/16"}));
  server_.route("/changes/", Reply::json("[]"));
  fail_apply_ = true;
  SyncResult r = sync_->check(T0 + 3600);
  EXPECT_EQ(r.outcome, SyncOutcome::Failed);
  EXPECT_TRUE(has(r.message, "feed version 2026010100 passed validation but was not applied: map update failed"))
      << r.message;
  FeedStatus s = on_disk();
  EXPECT_EQ(s.applied->version, "2025120100");
  EXPECT_FALSE(s.rejected.has_value());
  EXPECT_EQ(s.next_check, T0 + 3600 + 600);

  fail_apply_ = false;
  r = sync_->check(T0 + 3600 + 600);
  ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  EXPECT_EQ(server_.count("/endpoints"), 2u);
  EXPECT_EQ(on_disk().applied->version, "2026010100");
}

TEST_F(FeedSyncTest, ACorruptFeedJsonIsSetAsideAndNeverTrusted) {
  const std::string file = dir_ + "/feed.json";
  struct {
    const char* what;
    std::string content;
  } cases[] = {
      {"not JSON", "{\"applied\": {\"instance\": \"Worldwide\", \"ran"},
      {"empty", ""},
      {"not an object", "[]"},
      {"a range that is not a CIDR",
       R"({"applied":{"instance":"Worldwide","version":"2025120100","ranges":["40.92.0.0/33"]}})"},
      {"a version that is not 10 digits",
       R"({"applied":{"instance":"Worldwide","version":"latest","ranges":["40.92.0.0/15"]}})"},
      {"an unknown instance", R"({"applied":{"instance":"Germany","version":"2025120100","ranges":["40.92.0.0/15"]}})"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().filename().string().rfind("feed.json", 0) == 0) fs::remove(e.path());
    std::ofstream(file) << c.content;
    applied_.clear();
    server_.clear_requests();
    start();
    EXPECT_FALSE(sync_->last_known_good().has_value());
    EXPECT_TRUE(has(sync_->status().last_error, file + " was corrupt")) << sync_->status().last_error;
    EXPECT_FALSE(fs::exists(file));
    size_t aside = 0;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().filename().string().rfind("feed.json.corrupt-", 0) == 0) {
        aside++;
        EXPECT_EQ(read_file(e.path().string()), c.content);
      }
    EXPECT_EQ(aside, 1u);
    // Fetched afresh, not taken from the file.
    ASSERT_EQ(sync_->check(T0).outcome, SyncOutcome::Applied);
    EXPECT_EQ(server_.count("/endpoints"), 1u);
    EXPECT_EQ(strs(applied_.at(0).ranges), kReal);
  }
}

TEST_F(FeedSyncTest, ImportAppliesASavedResponseThroughTheSameValidation) {
  start("", FeedSyncOptions{});
  std::string saved = std::string(SG_FIXTURES_DIR) + "/" + kWorldwide2025;
  SyncResult r = sync_->import_file(saved, T0, "2025120100");
  ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  ASSERT_EQ(applied_.size(), 1u);
  EXPECT_EQ(strs(applied_[0].ranges), kReal);
  EXPECT_EQ(applied_[0].source, "import " + saved);
  EXPECT_EQ(server_.requests().size(), 0u);

  std::string bad = dir_ + "/bad.json";
  std::ofstream(bad) << worldwide_with_port25({"40.92.0.0/15", "192.168.0.0/16"});
  r = sync_->import_file(bad, T0 + 10);
  EXPECT_EQ(r.outcome, SyncOutcome::Rejected);
  EXPECT_TRUE(has(r.message, "the feed in " + bad + " is refused: 192.168.0.0/16 is special-purpose")) << r.message;
  EXPECT_EQ(applied_.size(), 1u);
  std::ofstream(bad) << "<html>";
  EXPECT_EQ(sync_->import_file(bad, T0 + 20).outcome, SyncOutcome::Rejected);
  EXPECT_EQ(sync_->import_file(dir_ + "/missing.json", T0 + 30).outcome, SyncOutcome::Rejected);
  EXPECT_EQ(applied_.size(), 1u);
  EXPECT_EQ(on_disk().applied->source, "import " + saved);

  // Later online: the imported version is the latest, so nothing is fetched.
  EXPECT_EQ(sync_->check(T0 + 40).outcome, SyncOutcome::Unchanged);
  EXPECT_EQ(server_.count("/endpoints"), 0u);
}

TEST_F(FeedSyncTest, OtherInstancesAndIPv6Off) {
  server_.route("/version/China", Reply::json(R"({"instance":"China","latest":"2025112800"})"));
  server_.route("/endpoints/China",
                Reply::json(fixture("m365-endpoints-china.2025-12-01.deploymenttheory-tfprovider.json")));
  client_ = std::make_unique<FeedClient>([&] {
    FeedClientOptions o = client_options(server_.url());
    o.ipv6 = false;
    return o;
  }());
  FeedSyncOptions o;
  o.instance = Instance::China;
  o.state_dir = dir_;
  sync_ = std::make_unique<FeedSync>(o, client_.get(), [this](const FeedSnapshot& s) { applied_.push_back(s); });
  SyncResult r = sync_->check(T0);
  ASSERT_EQ(r.outcome, SyncOutcome::Applied) << r.message;
  EXPECT_EQ(applied_.at(0).set_ids, std::vector<int>{27});
  EXPECT_EQ(applied_.at(0).instance, Instance::China);
  auto log = server_.requests();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1].path, "/endpoints/China");
  EXPECT_EQ(log[1].param("NoIPv6"), "true");
  EXPECT_EQ(on_disk().instance, "China");
}

TEST_F(FeedSyncTest, StatusSurvivesTheRoundTripThroughJson) {
  first_sync();
  serve_version("2026010100");
  serve_endpoints(plus(kReal, {"10.0.0.0/8"}));
  server_.route("/changes/", Reply::json("[]"));
  sync_->check(T0 + 3600);
  FeedStatus s = on_disk();
  ASSERT_TRUE(s.rejected.has_value());
  json j = to_json(s);
  EXPECT_EQ(j, to_json(feed_status_from_json(j)));
  EXPECT_EQ(j["applied"]["version"], "2025120100");
  EXPECT_EQ(j["rejected"]["version"], "2026010100");
  EXPECT_EQ(j["stale"], true);
  EXPECT_EQ(j["next_check"], T0 + 7200);
}

TEST(FeedClientId, GeneratedOnceKeptAndReplacedWhenDamaged) {
  std::string dir = (fs::temp_directory_path() / ("smtpgate-clientid-" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  std::string a = load_or_create_client_request_id(dir);
  EXPECT_TRUE(is_guid(a));
  EXPECT_EQ(a[14], '4');                                          // version 4
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos);  // RFC 4122 variant
  EXPECT_EQ(load_or_create_client_request_id(dir), a);
  EXPECT_NE(random_uuid_v4(), random_uuid_v4());

  std::ofstream(dir + "/client-request-id") << "b10c5ed1-bad1-445f-b386";
  std::string b = load_or_create_client_request_id(dir);
  EXPECT_TRUE(is_guid(b));
  EXPECT_NE(b, a);
  size_t aside = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("client-request-id.corrupt-", 0) == 0) aside++;
  EXPECT_EQ(aside, 1u);
  fs::remove_all(dir);

  EXPECT_THROW((void)FeedClient(FeedClientOptions{"ftp://mirror.example", "", true, {}}), InputError);
}

// Whatever the service answers (random bytes, Latin-1 text, truncated or
// ill-typed JSON, an answer too large), a failed check is saved and backed
// off: at most one request per retry interval, however often the daemon
// asks whether a check is due, and feed.json stays a document that parses,
// with the applied version untouched. The bodies come from a seeded generator
// (the seed is printed; --gtest_random_seed=N repeats a run).
TEST_F(FeedSyncTest, AnyAnswerIsSavedAndBackedOffNeverHammered) {
  constexpr int64_t kRetry = 60, kStep = 7, kSpan = 400;
  const unsigned seed = ::testing::UnitTest::GetInstance()->random_seed();
  std::mt19937 rng(seed);
  RecordProperty("seed", static_cast<int>(seed));
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(pick(256));
    return s;
  };
  const std::string version_ok = R"({"instance":"Worldwide","latest":"2026010100"})";
  const std::string endpoints_ok = fixture(kWorldwide2025);
  // Bodies that are not a usable answer of either method.
  std::vector<std::function<std::string()>> kinds = {
      [&] { return random_bytes(pick(2000)); },
      [&] { return std::string("Fehler: Die Anfrage wurde abgelehnt \xe4\xf6\xfc \xa9 Proxy"); },  // Latin-1
      [&] { return std::string("\xff\xfe{\0\"\0l\0", 8) + random_bytes(pick(100)); },              // UTF-16 junk
      [&] { return version_ok.substr(0, pick(version_ok.size())); },
      [&] { return endpoints_ok.substr(0, pick(endpoints_ok.size())); },
      [&] {
        const char* wrong[] = {R"({"latest": 2026010100})",
                               R"({"latest": ["2026010100"]})",
                               "[]",
                               "\"x\"",
                               "null",
                               R"({"instance": 5, "latest": "2026010100"})",
                               R"([{"id": "10"}])",
                               R"([{"id": 10, "ips": "40.92.0.0/15"}])",
                               R"([{"id": 10, "ips": [{"x": 1}]}])",
                               R"({"instance": "Worldwide\u00e9", "latest": "2026010100"})",
                               R"([{"id": 10, "serviceArea": "Exchange", "tcpPorts": "25\u00e9", "ips": []}])"};
        return std::string(wrong[pick(std::size(wrong))]);
      },
      [&] { return std::string("<html><body>\xe9tat: Zugriff verweigert</body></html>"); },
      [&] { return std::string(70 * 1024, 'x'); },  // past max_body
  };
  for (int round = 0; round < 48; round++) {
    const std::string body = kinds[round % kinds.size()]();
    const bool at_endpoints = round % 2 == 1;  // the version moved, its endpoints are bad
    SCOPED_TRACE("seed " + std::to_string(seed) + ", round " + std::to_string(round) + ", bad " +
                 (at_endpoints ? "endpoints" : "version") + " answer of " + std::to_string(body.size()) + " bytes");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    FeedStatus st;
    st.instance = "Worldwide";
    FeedSnapshot applied;
    applied.version = "2025120100";
    applied.source = "https://endpoints.office.com/endpoints/Worldwide";
    applied.set_ids = {10};
    for (const auto& c : kReal) applied.ranges.push_back(Cidr::parse(c));
    st.applied = applied;
    write_feed_status(dir_, st);
    server_.route("/version/Worldwide", Reply::json(at_endpoints ? version_ok : body));
    server_.route("/endpoints/Worldwide", Reply::json(body));
    server_.route("/changes/Worldwide", Reply::json("[]"));
    server_.clear_requests();

    FeedClientOptions co = client_options(server_.url());
    co.http.max_body = 64 * 1024;
    FeedClient client(co);
    FeedSyncOptions so;
    so.state_dir = dir_;
    so.retry_s = kRetry;
    FeedSync sync(so, &client, [&](const FeedSnapshot&) { ADD_FAILURE() << "a bad answer was applied"; });
    // The daemon asks whether a check is due far more often than the interval.
    std::map<std::string, std::vector<int64_t>> asked;  // path -> when
    for (int64_t t = T0; t < T0 + kSpan; t += kStep) {
      size_t before = server_.requests().size();
      SyncResult r = sync.check(t);
      EXPECT_NE(r.outcome, SyncOutcome::Applied);
      auto reqs = server_.requests();
      for (size_t i = before; i < reqs.size(); i++) asked[reqs[i].path].push_back(t);
      if (t == T0) {
        // The first check failed and is on disk, as a document that parses.
        FeedStatus s = on_disk();
        EXPECT_FALSE(s.last_error.empty());
        EXPECT_GE(s.next_check, T0 + kRetry);
        EXPECT_EQ(s.last_check, T0);
        EXPECT_NO_THROW(json::parse(read_file(dir_ + "/feed.json")));
        EXPECT_EQ(s.last_error.find('\n'), std::string::npos) << s.last_error;
        EXPECT_TRUE(std::all_of(s.last_error.begin(), s.last_error.end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x80;
        })) << s.last_error;
        ASSERT_TRUE(s.applied.has_value());
        EXPECT_EQ(s.applied->version, "2025120100");
      }
    }
    ASSERT_FALSE(asked["/version/Worldwide"].empty());
    for (const auto& [path, times] : asked)
      for (size_t i = 1; i < times.size(); i++)
        EXPECT_GE(times[i] - times[i - 1], kRetry) << path << " asked again after " << times[i] - times[i - 1] << " s";
    for (const auto& e : fs::directory_iterator(dir_))
      EXPECT_EQ(e.path().filename().string().find(".corrupt-"), std::string::npos) << "feed.json did not parse";
  }
  std::printf("seed %u: 48 bad answers, each backed off\n", seed);
}

// A check is two halves: the fetch decides nothing, and the commit, under
// the lock, re-reads the state. A version another process applied while the
// service was asked is kept, never overwritten by the older answer.
TEST_F(FeedSyncTest, AFetchOvertakenByAnotherProcessIsDropped) {
  first_sync();
  serve_version("2026010100");
  serve_endpoints(plus(kReal, {"40.94.0.0/16"}));
  server_.route("/changes/Worldwide", Reply::json("[]"));
  FeedFetch fetched = sync_->fetch(T0 + 3600, false);
  ASSERT_TRUE(fetched.endpoints.has_value());
  EXPECT_EQ(on_disk().last_check, T0) << "the fetch wrote feed.json";

  // Meanwhile: smtpgatectl feed import of a newer version.
  std::string newer = dir_ + "/newer.json";
  std::ofstream(newer) << worldwide_with_port25(plus(kReal, {"40.95.0.0/16"}));
  FeedSyncOptions o;
  o.state_dir = dir_;
  FeedSync other(o, nullptr, [](const FeedSnapshot&) {});
  ASSERT_EQ(other.import_file(newer, T0 + 3610, "2026020100").outcome, SyncOutcome::Applied);

  SyncResult r = sync_->commit(fetched);
  EXPECT_EQ(r.outcome, SyncOutcome::NotDue) << r.message;
  EXPECT_TRUE(has(r.message, "another process applied or refused a feed version")) << r.message;
  EXPECT_TRUE(applied_.empty());
  EXPECT_EQ(on_disk().applied->version, "2026020100");
}

// The network half runs with no lock: it finishes while another process
// holds the gate lock; the local half waits for that lock only as long as
// it is told to.
TEST_F(FeedSyncTest, TheFetchTakesNoLockAndTheCommitWaitsABoundedTime) {
  DaemonConfig cfg;
  cfg.paths = Paths{"/sys/fs/bpf/sgt" + std::to_string(::getpid()) + "feedlock", dir_};
  cfg.feed.url = server_.url();
  cfg.feed.watch_other_instances = false;
  auto held = std::make_unique<GateLock>(cfg.paths);
  auto t0 = std::chrono::steady_clock::now();
  FeedFetched fetched = fetch_feed(cfg, FeedOp::SyncNow, T0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  ASSERT_TRUE(fetched.feed.endpoints.has_value()) << fetched.feed.error;
  std::string e;
  try {
    commit_feed(cfg, fetched, std::chrono::milliseconds(200));
  } catch (const std::exception& err) {
    e = err.what();
  }
  EXPECT_TRUE(has(e, "still held by another process after 200 ms")) << e;
  EXPECT_FALSE(on_disk().applied.has_value());
  held.reset();
  EXPECT_EQ(commit_feed(cfg, fetched, std::chrono::milliseconds(200)).outcome, SyncOutcome::Applied);
  EXPECT_EQ(on_disk().applied->version, "2025120100");
  fs::remove_all(cfg.paths.pin_dir);
}

// Without the lock a corrupt feed.json is read and left where it is: a
// writer may just have replaced it. The commit, under the lock, sets it aside.
TEST_F(FeedSyncTest, OnlyTheCommitSetsACorruptFeedJsonAside) {
  DaemonConfig cfg;
  cfg.paths = Paths{"/sys/fs/bpf/sgt" + std::to_string(::getpid()) + "feedcorrupt", dir_};
  cfg.feed.url = server_.url();
  std::ofstream(dir_ + "/feed.json") << "{\"applied\": {";
  FeedFetched fetched = fetch_feed(cfg, FeedOp::Check, T0);
  EXPECT_TRUE(fs::exists(dir_ + "/feed.json"));
  EXPECT_EQ(commit_feed(cfg, fetched).outcome, SyncOutcome::Applied);
  size_t aside = 0;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().filename().string().rfind("feed.json.corrupt-", 0) == 0) aside++;
  EXPECT_EQ(aside, 1u);
  EXPECT_EQ(on_disk().applied->version, "2025120100");
  fs::remove_all(cfg.paths.pin_dir);
}
