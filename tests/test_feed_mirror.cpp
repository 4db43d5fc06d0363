// A feed mirror end to end: "the service" (a loopback HTTP server answering
// with real endpoints data), `smtpgatectl feed mirror DIR` writing its answers,
// a plain static web server (python3 -m http.server) serving DIR, and a
// gateway following the mirror with --feed-url through two versions.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "fsutil.hpp"
#include "http.hpp"
#include "http_server.hpp"
#include "netns.hpp"

using nlohmann::json;
using sgtest::Reply;

namespace {

// A static web server over a directory, as an operator would run one.
class StaticServer {
 public:
  explicit StaticServer(const std::string& dir) : port_(sgtest::free_loopback_port(SOCK_STREAM)) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string port = std::to_string(port_);
      ::execlp("python3", "python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir.c_str(),
               port.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    smtpgate::HttpOptions o;
    o.attempts = 1;
    smtpgate::HttpClient probe(o);
    for (int i = 0; i < 100; i++) {
      try {
        probe.get(url() + "/");
        return;
      } catch (const std::exception&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    throw std::runtime_error("the static web server did not start");
  }
  ~StaticServer() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

struct CtlRun {
  int code;
  std::string out, err;
};

class FeedMirror : public ::testing::Test {
 protected:
  void SetUp() override {
    base = "/tmp/sgt" + std::to_string(::getpid()) + "mirror";
    std::filesystem::create_directories(base);
    config = base + "/smtpgate.toml";
    smtpgate::write_file_atomic(config, "# defaults\n");
    dir = base + "/www";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(base, ec);
    for (const char* host : {"mirror", "gw"}) std::filesystem::remove_all(pins(host), ec);
  }
  std::string pins(const std::string& host) const {
    return "/sys/fs/bpf/sgt" + std::to_string(::getpid()) + "mirror-" + host;
  }

  // smtpgatectl as host `host` (its own state and pin directories).
  CtlRun ctl(const std::string& host, const std::string& args) {
    std::string out = base + "/out", err = base + "/err";
    std::string cmd = sgtest::binary("smtpgatectl") + " --state-dir " + base + "/" + host + "-state --pin-dir " +
                      pins(host) + " " + args + " >" + out + " 2>" + err;
    int st = std::system(cmd.c_str());
    return CtlRun{WIFEXITED(st) ? WEXITSTATUS(st) : -1, smtpgate::read_file(out), smtpgate::read_file(err)};
  }
  CtlRun mirror(const std::string& upstream) {
    return ctl("mirror", "feed mirror " + dir + " --config " + config + " --feed-url " + upstream);
  }
  CtlRun sync(const std::string& url) { return ctl("gw", "feed sync --config " + config + " --feed-url " + url); }

  std::string base, config, dir;
};

std::string version_doc(const std::string& v) { return json{{"instance", "Worldwide"}, {"latest", v}}.dump(); }

// The real 2025 Worldwide response, optionally with one more range in the
// port-25 set (what the changes fixture announces).
std::string endpoints_doc(const std::string& extra_range = "") {
  json sets = json::parse(smtpgate::read_file(
      sgtest::fixture_path("m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json")));
  if (!extra_range.empty())
    for (auto& s : sets)
      if (s["id"] == 10) s["ips"].push_back(extra_range);
  return sets.dump();
}

TEST_F(FeedMirror, GatewayFollowsTheServiceThroughAStaticMirror) {
  sgtest::HttpServer service;
  service.route("/version/Worldwide", Reply::json(version_doc("2025120100")));
  service.route("/endpoints/Worldwide", Reply::json(endpoints_doc()));
  service.route("/changes/Worldwide/", Reply::json("[]"));

  CtlRun m1 = mirror(service.url());
  ASSERT_EQ(m1.code, 0) << m1.err;
  EXPECT_NE(m1.out.find("version 2025120100"), std::string::npos) << m1.out;
  // The gateways' requests name the instance; the mirror asked as they do.
  EXPECT_EQ(service.requests().at(1).param("ServiceAreas"), "Exchange");

  StaticServer www(dir);
  CtlRun s1 = sync(www.url());
  ASSERT_EQ(s1.code, 0) << s1.err;
  json st = json::parse(ctl("gw", "-j feed status").out);
  EXPECT_EQ(st["applied"]["version"], "2025120100") << st.dump();
  json ranges = json::parse(ctl("gw", "-j ranges list").out)["ranges"];
  bool eop = false;
  for (const auto& r : ranges) eop |= r["range"] == "40.92.0.0/15" && r["origin"] == "feed";
  EXPECT_TRUE(eop) << ranges.dump();

  // Microsoft publishes 2026010100 (adding 40.94.0.0/16, effective 2026-02-01);
  // the mirror picks it up, with the change log the gateway asks for.
  service.route("/version/Worldwide", Reply::json(version_doc("2026010100")));
  service.route("/endpoints/Worldwide", Reply::json(endpoints_doc("40.94.0.0/16")));
  service.route("/changes/Worldwide/", Reply::json(smtpgate::read_file(sgtest::fixture_path(
                                           "changes-worldwide-2025120100.synthetic-from-schema.json"))));
  CtlRun m2 = mirror(service.url());
  ASSERT_EQ(m2.code, 0) << m2.err;
  EXPECT_TRUE(std::filesystem::exists(dir + "/changes/Worldwide/2025120100"));

  CtlRun s2 = sync(www.url());
  ASSERT_EQ(s2.code, 0) << s2.err;
  EXPECT_NE(s2.out.find("1 added"), std::string::npos) << s2.out;
  EXPECT_EQ(s2.err.find("not available"), std::string::npos)
      << "the change log should come from the mirror: " << s2.err;
  st = json::parse(ctl("gw", "-j feed status").out);
  EXPECT_EQ(st["applied"]["version"], "2026010100") << st.dump();
  EXPECT_NE(st.dump().find("20260201"), std::string::npos)
      << "effective date from the mirrored change log: " << st.dump();
}

TEST_F(FeedMirror, RefusesToServeWhatAGatewayWouldRefuseAndKeepsTheOldFiles) {
  sgtest::HttpServer service;
  service.route("/version/Worldwide", Reply::json(version_doc("2025120100")));
  service.route("/endpoints/Worldwide", Reply::json(endpoints_doc()));
  service.route("/changes/Worldwide/", Reply::json("[]"));
  ASSERT_EQ(mirror(service.url()).code, 0);
  std::string version_before = smtpgate::read_file(dir + "/version/Worldwide");
  std::string endpoints_before = smtpgate::read_file(dir + "/endpoints/Worldwide");

  service.route("/version/Worldwide", Reply::json(version_doc("2026010100")));
  service.route("/endpoints/Worldwide", Reply::json(endpoints_doc("10.0.0.0/8")));
  CtlRun bad = mirror(service.url());
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("10.0.0.0/8"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  EXPECT_EQ(smtpgate::read_file(dir + "/version/Worldwide"), version_before);
  EXPECT_EQ(smtpgate::read_file(dir + "/endpoints/Worldwide"), endpoints_before);
}

}  // namespace
