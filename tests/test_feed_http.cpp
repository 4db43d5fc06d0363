// The HTTP client against a real server on loopback: what it sends, which
// failures it retries (and how long it waits between tries), that a 429 is
// never retried at once, and that a hanging, resetting, dripping or truncating
// server costs a bounded time and ends in an error that says what happened.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include <curl/curl.h>

#include "http.hpp"
#include "http_server.hpp"

using namespace smtpgate;
using sgtest::Fault;
using sgtest::HttpServer;
using sgtest::Reply;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {
// Direct connections (no proxy from the environment), short timeouts, and
// waits recorded instead of slept.
struct Harness {
  std::vector<milliseconds> sleeps;
  HttpOptions options(unsigned attempts = 3) {
    HttpOptions o;
    o.proxy = "";
    o.attempts = attempts;
    o.backoff = milliseconds(100);
    o.backoff_max = milliseconds(250);
    o.connect_timeout = milliseconds(2000);
    o.total_timeout = milliseconds(800);
    o.sleep = [this](milliseconds d) { sleeps.push_back(d); };
    return o;
  }
};

std::string fetch_error(HttpClient& c, const std::string& url) {
  try {
    c.get(url);
  } catch (const RateLimited&) {
    return "rate limited";
  } catch (const FetchError& e) {
    return e.what();
  }
  return "";
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};
}  // namespace

TEST(FeedHttp, GetsBodyAndTheHeadersThatMatter) {
  HttpServer server;
  server.route("/version/Worldwide",
               Reply::json(R"({"instance":"Worldwide","latest":"2025120100"})").header("Cache-Control",
                                                                                        "public, max-age=3600"));
  Harness h;
  HttpClient c(h.options());
  HttpResponse r = c.get(server.url() + "/version/Worldwide?ClientRequestId=x");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"instance":"Worldwide","latest":"2025120100"})");
  EXPECT_EQ(r.max_age, seconds(3600));
  EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
  EXPECT_EQ(r.attempts, 1u);
  auto log = server.requests();
  ASSERT_EQ(log.size(), 1u);
  const auto& req = log[0];
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.path, "/version/Worldwide");
  EXPECT_EQ(req.param("ClientRequestId"), "x");
  EXPECT_EQ(req.headers.at("user-agent"), std::string("smtpgate/") + SMTPGATE_VERSION);
  EXPECT_TRUE(h.sleeps.empty());
}

TEST(FeedHttp, RetriesServerErrorsWithDoublingBackoff) {
  HttpServer server;
  server.route("/e", std::vector<Reply>{Reply::json("{}", 503), Reply::json("{}", 502), Reply::json("{}", 500),
                                        Reply::json("[]")});
  Harness h;
  HttpClient c(h.options(4));
  HttpResponse r = c.get(server.url() + "/e");
  EXPECT_EQ(r.body, "[]");
  EXPECT_EQ(r.attempts, 4u);
  EXPECT_EQ(server.count("/e"), 4u);
  // 100 ms, doubled, capped at backoff_max.
  EXPECT_EQ(h.sleeps, (std::vector<milliseconds>{milliseconds(100), milliseconds(200), milliseconds(250)}));
}

TEST(FeedHttp, GivesUpAfterTheBoundedNumberOfTries) {
  HttpServer server;
  server.route("/e", Reply::json("{}", 500));
  Harness h;
  HttpClient c(h.options(3));
  try {
    c.get(server.url() + "/e?ClientRequestId=x");
    FAIL() << "no error";
  } catch (const FetchError& e) {
    EXPECT_EQ(std::string(e.what()), "GET " + server.url() + "/e: HTTP 500 (after 3 tries)");
    EXPECT_EQ(e.status(), 500);
  }
  EXPECT_EQ(server.count("/e"), 3u);
  EXPECT_EQ(h.sleeps.size(), 2u);
}

TEST(FeedHttp, RateLimitIsNotRetriedAndSaysHowLongToWait) {
  std::string in_two_hours;
  {
    char buf[64];
    time_t t = ::time(nullptr) + 7200;
    struct tm tm{};
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    in_two_hours = buf;
  }
  struct {
    const char* what;
    std::optional<std::string> retry_after;
    long min_s, max_s;
  } cases[] = {
      {"Retry-After in seconds", "120", 120, 120},
      {"no Retry-After: one hour", std::nullopt, 3600, 3600},
      {"Retry-After as an HTTP date", in_two_hours, 7190, 7200},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    HttpServer server;
    Reply r = Reply::json(R"({"error":"too many requests"})", 429);
    if (c.retry_after) r.header("Retry-After", *c.retry_after);
    server.route("/endpoints", r);
    Harness h;
    HttpClient client(h.options(4));
    try {
      client.get(server.url() + "/endpoints/Worldwide");
      ADD_FAILURE() << "no error";
    } catch (const RateLimited& e) {
      EXPECT_GE(e.wait().count(), c.min_s);
      EXPECT_LE(e.wait().count(), c.max_s);
      EXPECT_EQ(e.status(), 429);
      EXPECT_NE(std::string(e.what()).find("HTTP 429"), std::string::npos) << e.what();
    }
    EXPECT_EQ(server.count("/endpoints"), 1u);
    EXPECT_TRUE(h.sleeps.empty());
  }
}

TEST(FeedHttp, ClientErrorsAreNotRetried) {
  struct {
    int status;
    const char* says;
  } cases[] = {{404, "HTTP 404"}, {400, "HTTP 400"}, {407, "the proxy wants credentials"}};
  for (const auto& c : cases) {
    HttpServer server;
    server.route("/", Reply::json("{}", c.status));
    Harness h;
    HttpClient client(h.options(4));
    std::string e = fetch_error(client, server.url() + "/version/Worldwide");
    EXPECT_NE(e.find(c.says), std::string::npos) << e;
    EXPECT_EQ(server.count("/"), 1u) << c.status;
  }
}

TEST(FeedHttp, FaultyServersCostABoundedTime) {
  struct {
    Fault fault;
    const char* says;
  } cases[] = {
      {Fault::Hang, "timed out"},
      {Fault::Reset, "reset"},
      {Fault::Slow, "timed out"},
      {Fault::Truncate, "the answer was cut short"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(static_cast<int>(c.fault));
    HttpServer server;
    Reply r = Reply::json(std::string(200, ' ') + "[]");
    r.fault = c.fault;
    server.route("/endpoints", r);
    Harness h;
    HttpClient client(h.options(2));  // total timeout 800 ms per try
    auto t0 = std::chrono::steady_clock::now();
    std::string e = fetch_error(client, server.url() + "/endpoints/Worldwide");
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_NE(e.find(c.says), std::string::npos) << e;
    EXPECT_NE(e.find("GET " + server.url() + "/endpoints/Worldwide"), std::string::npos) << e;
    EXPECT_EQ(server.count("/endpoints"), 2u);  // retried once, then given up
    EXPECT_LT(took, seconds(4));
  }
}

TEST(FeedHttp, ServerDownIsRetriedThenReported) {
  std::string url;
  {
    HttpServer gone;
    url = gone.url() + "/version/Worldwide";
  }
  Harness h;
  HttpClient client(h.options(3));
  std::string e = fetch_error(client, url);
  EXPECT_NE(e.find("after 3 tries"), std::string::npos) << e;
  EXPECT_NE(e.find("reachable"), std::string::npos) << e;  // the hint
  EXPECT_EQ(h.sleeps.size(), 2u);
}

TEST(FeedHttp, OversizedAnswersAreRefused) {
  HttpServer server;
  server.route("/endpoints", Reply::json(std::string(5000, ' ') + "[]"));
  Harness h;
  HttpOptions o = h.options();
  o.max_body = 1000;
  HttpClient client(o);
  std::string e = fetch_error(client, server.url() + "/endpoints/Worldwide");
  EXPECT_NE(e.find("larger than 1000 bytes"), std::string::npos) << e;
  EXPECT_EQ(server.count("/endpoints"), 1u);
}

TEST(FeedHttp, ConfiguredProxyCarriesTheRequest) {
  // The loopback server plays the proxy: it sees the absolute-form target, and
  // the feed host is never resolved here.
  HttpServer proxy;
  proxy.route("/version", Reply::json(R"({"latest":"2025120100"})"));
  Harness h;
  HttpOptions o = h.options();
  o.proxy = proxy.url();
  HttpClient client(o);
  HttpResponse r = client.get("http://feed.example.invalid/version/Worldwide?ClientRequestId=x");
  EXPECT_EQ(r.body, R"({"latest":"2025120100"})");
  ASSERT_EQ(proxy.requests().size(), 1u);
  EXPECT_EQ(proxy.requests()[0].target, "http://feed.example.invalid/version/Worldwide?ClientRequestId=x");
  EXPECT_EQ(proxy.requests()[0].host, "feed.example.invalid");
}

TEST(FeedHttp, ProxyFromTheEnvironmentUnlessTurnedOff) {
  HttpServer proxy, direct;
  proxy.route("/", Reply::json(R"("via proxy")"));
  direct.route("/", Reply::json(R"("direct")"));
  ScopedEnv p("http_proxy", proxy.url().c_str());
  ScopedEnv n1("no_proxy", nullptr);
  ScopedEnv n2("NO_PROXY", nullptr);
  Harness h;

  HttpOptions from_env = h.options();
  from_env.proxy.reset();
  HttpClient a(from_env);
  EXPECT_EQ(a.get("http://feed.example.invalid/version/Worldwide").body, R"("via proxy")");
  EXPECT_EQ(proxy.count("/version"), 1u);

  HttpOptions none = h.options();
  none.proxy = "";
  HttpClient b(none);
  EXPECT_EQ(b.get(direct.url() + "/version/Worldwide").body, R"("direct")");
  EXPECT_EQ(direct.count("/version"), 1u);
  EXPECT_EQ(proxy.count("/version"), 1u);
}

TEST(FeedHttp, RedirectsAreFollowedOnlyToHttp) {
  HttpServer server;
  server.route("/old", Reply::json("", 302).header("Location", server.url() + "/new"));
  server.route("/new", Reply::json(R"("moved")"));
  server.route("/ftp", Reply::json("", 302).header("Location", "ftp://127.0.0.1/x"));
  Harness h;
  HttpClient client(h.options(1));
  EXPECT_EQ(client.get(server.url() + "/old").body, R"("moved")");
  std::string e = fetch_error(client, server.url() + "/ftp");
  EXPECT_FALSE(e.empty());
  EXPECT_EQ(server.count("/ftp"), 1u);
}
