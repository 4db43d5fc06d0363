// The HTTP client against a real server on loopback: what it sends, which
// failures it retries (and how long it waits between tries), that a 429 is
// never retried at once, that a hanging, resetting, dripping or truncating
// server costs a bounded time and ends in an error that says what happened,
// that only https leaves the machine (plain http to loopback, or when
// allowed), no redirect leaves https, a CA file trusts a private mirror,
// credentials in URLs are never shown, and another thread can stop a fetch.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>

#include "error.hpp"
#include "fsutil.hpp"
#include "http.hpp"
#include "http_server.hpp"
#include "log_capture.hpp"
#include "refusal_scene.hpp"

using namespace smtpgate;
using sgtest::Fault;
using sgtest::HttpServer;
using sgtest::LogCapture;
using sgtest::Reply;
using sgtest::TestPki;
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
  server.route(
      "/version/Worldwide",
      Reply::json(R"({"instance":"Worldwide","latest":"2025120100"})").header("Cache-Control", "public, max-age=3600"));
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
    struct tm tm {};
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
  o.allow_http = true;  // the test proxy speaks plain HTTP
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
  from_env.allow_http = true;
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

TEST(FeedHttp, ARedirectToAnotherProtocolIsRefused) {
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

TEST(FeedHttp, OnlyHttpsLeavesTheMachineUnlessPlainHttpIsAllowed) {
  struct {
    const char* url;
    bool allow_http;
    const char* refusal;  // nullptr: fetched
  } cases[] = {
      {"https://endpoints.office.com", false, nullptr},
      {"http://127.0.0.1:8080/o365", false, nullptr},
      {"http://127.9.9.9", false, nullptr},
      {"http://[::1]:8080", false, nullptr},
      {"http://localhost/o365", false, nullptr},
      {"http://mirror.example.net/o365", false, "is plain http"},
      {"http://127.0.0.1.mirror.example.net/", false, "is plain http"},
      {"http://[::ffff:10.0.0.1]/", false, "is plain http"},
      {"http://mirror.example.net/o365", true, nullptr},
      {"ftp://mirror.example.net/o365", true, "is not https"},
      {"endpoints.office.com", false, "is not"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.url);
    std::string e;
    try {
      check_fetch_url(c.url, c.allow_http);
    } catch (const InputError& err) {
      e = err.what();
    }
    if (!c.refusal) {
      EXPECT_EQ(e, "");
      continue;
    }
    EXPECT_NE(e.find(c.refusal), std::string::npos) << e;
  }
  // Refused before any byte is sent: the proxy that would carry it sees nothing.
  HttpServer proxy;
  proxy.route("/", Reply::json("{}"));
  Harness h;
  HttpOptions o = h.options();
  o.proxy = proxy.url();
  HttpClient client(o);
  EXPECT_THROW(client.get("http://feed.example.invalid/version/Worldwide"), InputError);
  EXPECT_EQ(proxy.requests().size(), 0u);
}

TEST(FeedHttp, AllowedPlainHttpIsWarnedAtEveryFetch) {
  HttpServer proxy;
  proxy.route("/", Reply::json("{}"));
  Harness h;
  HttpOptions o = h.options();
  o.proxy = proxy.url();
  o.allow_http = true;
  HttpClient client(o);
  LogCapture logs;
  client.get("http://feed.example.invalid/version/Worldwide");
  client.get("http://feed.example.invalid/endpoints/Worldwide");
  std::string text = logs.text();
  size_t warnings = 0;
  for (size_t p = text.find("warning GET http://feed.example.invalid/"); p != std::string::npos;
       p = text.find("warning GET http://feed.example.invalid/", p + 1))
    warnings++;
  EXPECT_EQ(warnings, 2u) << text;
  EXPECT_NE(text.find("plain http (allow_http)"), std::string::npos) << text;
  // Loopback is this machine: no warning.
  HttpServer local;
  local.route("/", Reply::json("{}"));
  o.proxy = "";
  HttpClient direct(o);
  direct.get(local.url() + "/version/Worldwide");
  EXPECT_EQ(logs.text().find("warning GET " + local.url()), std::string::npos) << logs.text();
}

TEST(FeedHttp, AMirrorBehindAnInternalCaIsTrustedThroughItsCaFile) {
  TestPki pki;
  HttpServer mirror(pki);
  mirror.route("/version/Worldwide", Reply::json(R"({"latest":"2025120100"})"));
  Harness h;
  HttpOptions o = h.options(1);
  HttpClient untrusted(o);
  std::string e = fetch_error(untrusted, mirror.url() + "/version/Worldwide");
  EXPECT_NE(e.find("certificate is not trusted"), std::string::npos) << e;
  o.ca_file = pki.ca_file();
  HttpClient trusted(o);
  EXPECT_EQ(trusted.get(mirror.url() + "/version/Worldwide").body, R"({"latest":"2025120100"})");
}

TEST(FeedHttp, ARedirectNeverLeavesHttpsAndIsCheckedHopByHop) {
  TestPki pki;
  HttpServer tls(pki), plain;
  plain.route("/", Reply::json(R"("plain")"));
  tls.route("/new", Reply::json(R"("tls")"));
  tls.route("/down", Reply::json("", 302).header("Location", plain.url() + "/x"));
  tls.route("/same", Reply::json("", 301).header("Location", "/new"));
  tls.route("/loop", Reply::json("", 302).header("Location", "/loop"));
  plain.route("/up", Reply::json("", 302).header("Location", tls.url() + "/new"));
  plain.route("/away", Reply::json("", 302).header("Location", "http://mirror.example.net/x"));
  Harness h;
  HttpOptions o = h.options(1);
  o.ca_file = pki.ca_file();
  HttpClient client(o);

  std::string e = fetch_error(client, tls.url() + "/down");
  EXPECT_NE(e.find("redirected to " + plain.url() + "/x, refused: a redirect never leaves https"), std::string::npos)
      << e;
  EXPECT_EQ(plain.count("/"), 0u);
  // Even where plain http is allowed.
  o.allow_http = true;
  HttpClient allowing(o);
  EXPECT_NE(fetch_error(allowing, tls.url() + "/down").find("never leaves https"), std::string::npos);
  EXPECT_EQ(plain.count("/"), 0u);

  EXPECT_EQ(client.get(tls.url() + "/same").body, R"("tls")");
  EXPECT_EQ(client.get(plain.url() + "/up").body, R"("tls")");  // loopback http up to https
  e = fetch_error(client, plain.url() + "/away");
  EXPECT_NE(e.find("redirected, refused: feed URL 'http://mirror.example.net/x' is plain http"), std::string::npos)
      << e;
  e = fetch_error(client, tls.url() + "/loop");
  EXPECT_NE(e.find("more than 5 redirects"), std::string::npos) << e;
  EXPECT_EQ(tls.count("/loop"), 6u);
}

TEST(FeedHttp, CredentialsInTheFeedOrProxyUrlAreNeverShown) {
  HttpServer server;
  server.route("/version/Worldwide", Reply::json("{}", 503));
  Harness h;
  HttpOptions o = h.options(2);
  HttpClient client(o);
  LogCapture logs;
  std::string url =
      "http://feeduser:Feed-S3cret@127.0.0.1:" + std::to_string(server.port()) + "/version/Worldwide?ClientRequestId=x";
  std::string e = fetch_error(client, url);
  EXPECT_NE(e.find("GET " + server.url() + "/version/Worldwide: HTTP 503"), std::string::npos) << e;
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[0].headers.count("authorization"), 1u) << "the credentials are used";

  std::string dead;
  {
    HttpServer gone;
    dead = "http://proxyuser:Proxy-S3cret@127.0.0.1:" + std::to_string(gone.port());
  }
  o.proxy = dead;
  o.allow_http = true;
  HttpClient proxied(o);
  std::string pe = fetch_error(proxied, "http://feed.example.invalid/version/Worldwide");
  EXPECT_FALSE(pe.empty());
  for (const std::string& text : {e, pe, logs.text()}) {
    EXPECT_EQ(text.find("S3cret"), std::string::npos) << text;
    EXPECT_EQ(text.find("feeduser"), std::string::npos) << text;
    EXPECT_EQ(text.find("proxyuser"), std::string::npos) << text;
  }
  EXPECT_EQ(display_url("https://u:p@mirror.example.net:8443/o365/version/Worldwide?ClientRequestId=x#f"),
            "https://mirror.example.net:8443/o365/version/Worldwide");
  EXPECT_EQ(display_url("not a url://u:p@host/x?y"), "not a url://host/x");
}

// The same through the commands an operator runs: nothing smtpgatectl
// prints or the state keeps names the credentials.
TEST(FeedHttp, CredentialsReachNeitherTheStateNorTheOutput) {
  sgtest::RefusalScene scene("fcred");
  HttpServer server;
  server.route("/version/Worldwide", Reply::json(R"({"instance":"Worldwide","latest":"2026030100"})"));
  server.route(
      "/endpoints/Worldwide",
      Reply::json(smtpgate::read_file(std::string(SG_FIXTURES_DIR) +
                                      "/m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json")));
  server.route("/changes/Worldwide", Reply::json("[]"));
  std::string url = "http://feeduser:Feed-S3cret@127.0.0.1:" + std::to_string(server.port());
  std::string output;
  auto run = [&](std::vector<std::string> args) {
    auto r = scene.ctl(args);
    output += r.out + r.err;
    return r;
  };
  auto ok = run({"feed", "sync", "-v", "--force", "--feed-url", url});  // the scene applied 2 of the 6 ranges
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  server.route("/version/Worldwide", Reply::json("{}", 503));
  auto failed = run({"feed", "sync", "-v", "--feed-url", url});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.err.find(server.url() + "/version/Worldwide"), std::string::npos) << failed.err;
  run({"feed", "status"});
  run({"-j", "feed", "status"});
  run({"-j", "status"});
  EXPECT_EQ(output.find("S3cret"), std::string::npos) << output;
  EXPECT_EQ(output.find("feeduser"), std::string::npos) << output;
  for (const auto& f : std::filesystem::directory_iterator(scene.paths().state_dir)) {
    std::string text = smtpgate::read_file(f.path());
    EXPECT_EQ(text.find("S3cret"), std::string::npos) << f.path();
    EXPECT_EQ(text.find("feeduser"), std::string::npos) << f.path();
  }
  EXPECT_NE(smtpgate::read_file(scene.paths().state_dir + "/feed.json").find(server.url() + "/endpoints/Worldwide"),
            std::string::npos);
}

// SIGTERM in the daemon comes down to this: another thread stops a fetch,
// whether the server says nothing or the client waits between tries.
TEST(FeedHttp, AnotherThreadStopsAFetchAtOnce) {
  for (Fault fault : {Fault::Hang, Fault::Reset}) {
    SCOPED_TRACE(static_cast<int>(fault));
    HttpServer server;
    server.route("/version", Reply::fault_reply(fault));
    HttpOptions o;
    o.proxy = "";
    o.total_timeout = seconds(30);
    o.backoff = seconds(20);  // a real wait between tries, no recorder
    o.cancel = std::make_shared<Cancellation>();
    HttpClient client(o);
    std::thread stopper([&] {
      while (server.count("/version") == 0) std::this_thread::sleep_for(milliseconds(10));
      std::this_thread::sleep_for(milliseconds(200));
      o.cancel->cancel();
    });
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(client.get(server.url() + "/version/Worldwide"), Cancelled);
    stopper.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(3));
    EXPECT_EQ(server.count("/version"), 1u);
  }
}
