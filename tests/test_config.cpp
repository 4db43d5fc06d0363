// smtpgate.toml: the shipped file parses to the defaults, every key is read,
// and mistakes are refused with a message naming the key.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <fstream>

#include "config.hpp"
#include "error.hpp"
#include "metrics.hpp"

using namespace smtpgate;

namespace {
std::string write_tmp(const std::string& text) {
  std::string path = "/tmp/sgt" + std::to_string(::getpid()) + "-config.toml";
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& text) {
  DaemonConfig cfg;
  std::string path = write_tmp(text);
  std::string msg;
  try {
    load_config_file(path, cfg);
    validate_config(cfg);
  } catch (const InputError& e) {
    msg = e.what();
  }
  ::unlink(path.c_str());
  return msg;
}
}  // namespace

TEST(Config, ShippedFileIsAllDefaults) {
  DaemonConfig cfg;
  load_config_file(SG_SOURCE_DIR "/packaging/smtpgate.toml", cfg);
  validate_config(cfg);
  DaemonConfig def;
  EXPECT_EQ(cfg.ports, def.ports);
  EXPECT_EQ(cfg.paths.pin_dir, def.paths.pin_dir);
  EXPECT_EQ(cfg.feed.instance, def.feed.instance);
  EXPECT_FALSE(cfg.action.has_value());
  EXPECT_FALSE(cfg.feed.watch_other_instances);
}

TEST(Config, ShippedFileUncommentedIsValidAndReadsEveryKey) {
  std::ifstream in(SG_SOURCE_DIR "/packaging/smtpgate.toml");
  std::string text, line;
  while (std::getline(in, line)) {
    if (line.rfind("#", 0) == 0 && line.find(" = ") != std::string::npos && line[1] != ' ') line = line.substr(1);
    text += line + "\n";
  }
  DaemonConfig cfg;
  std::string path = write_tmp(text);
  load_config_file(path, cfg);
  ::unlink(path.c_str());
  validate_config(cfg);
  EXPECT_EQ(cfg.interfaces, std::vector<std::string>{"eth0"});
  EXPECT_EQ(cfg.action, Action::Drop);
  EXPECT_EQ(cfg.metrics.listen, "127.0.0.1:9725");
  EXPECT_EQ(cfg.table_chunks, uint32_t(SG_DEFAULT_TABLE_CHUNKS));
}

TEST(Config, MistakesNameTheKey) {
  struct Case {
    const char* toml;
    const char* expect;
  } cases[] = {
      {"interface = [\"eth0\"]\n", "unknown key 'interface'"},
      {"[feed]\ninterval = \"hourly\"\n", "key 'feed.interval' must be a whole number"},
      {"[feed]\nurls = \"x\"\n", "unknown key 'feed.urls'"},
      {"action = \"block\"\n", "unknown action 'block'"},
      {"mode = \"fast\"\n", "unknown XDP mode 'fast'"},
      {"ports = [25, 70000]\n", "key 'ports' must hold port numbers"},
      {"ports = [1,2,3,4,5,6,7,8,9]\n", "give 1 to 8 guarded ports"},
      {"[feed]\nmax_removal_share = 1.5\n", "max_removal_share"},
      {"allow_empty = yes\n", ":1:"},
      {"table_chunks = 8\n", "table_chunks must be 16..16777216"},
      {"max_rules = 20000000\n", "max_rules must be 16..16777216"},
      {"[feed]\nwatch_other_instances = \"yes\"\n", "key 'feed.watch_other_instances' must be true or false"},
      {"[feed]\ninstance = \"Germany\"\n", "Germany is retired"},
      // A share that compares false with everything would turn its check off.
      {"[feed]\nmax_removal_share = nan\n", "key 'feed.max_removal_share' must be a finite number"},
      {"[feed]\nmax_removal_share = -nan\n", "must be a finite number"},
      {"[feed]\nmax_removal_share = inf\n", "must be a finite number"},
      {"recent_sources = 4294967295\n", "recent_sources must be 16..16777216"},
      {"recent_sources = 0\n", "recent_sources must be 16..16777216"},
      // Listen addresses: an IP address and a port, nothing else.
      {"[metrics]\nlisten = \"localhost:9725\"\n", "the host must be an IP address, not a name"},
      {"[metrics]\nlisten = \"127.0.0.1:99999\"\n", "the port must be 1..65535"},
      {"[metrics]\nlisten = \"127.0.0.1:0\"\n", "the port must be 1..65535"},
      {"[metrics]\nlisten = \"127.0.0.1:+9725\"\n", "not a name"},
      {"[metrics]\nlisten = \"127.0.0.1\"\n", "no port"},
      {"[metrics]\nlisten = \"::1:9725\"\n", "an IPv6 address goes in brackets"},
      {"[metrics]\nlisten = \"[::1:9725\"\n", "no port after the bracketed address"},
      {"[metrics]\nlisten = \"127.0.0.1\\u0000junk:9725\"\n", "'127.0.0.1\\x00junk:9725'"},
      {"[metrics]\nlisten = \"0127.0.0.1:9725\"\n", "the host is not an IPv4 address"},
      {"state_dir = \"/tmp\"\n", "state_dir /tmp is writable by every user (mode 1777)"},
      {"interfaces = [\"eth0\\nsmtpgate_action 1\"]\n", "is not an interface name"},
      {"interfaces = [\"a-very-long-name0\"]\n", "is not an interface name"},
      {"[feed]\nmax_growth_share = nan\n", "key 'feed.max_growth_share' must be a finite number"},
      {"[feed]\nmax_growth_share = 0\n", "feed.max_growth_share must be a number in (0, 1000]"},
      {"[feed]\nmax_added_ranges = 100000\n", "feed.max_added_ranges must be 0..65536"},
      {"[feed]\nremoval_grace_days = 400\n", "feed.removal_grace_days must be 0..365"},
      {"[feed_gaps]\nresolver = \"dns.example.net\"\n", "feed_gaps.resolver 'dns.example.net' is not a list"},
      {"[feed_gaps]\nlookups_per_minute = 0\n", "feed_gaps.lookups_per_minute must be 1..600"},
      {"[feed_gaps]\ndeadline_ms = 60000\n", "feed_gaps.deadline_ms must be 100..10000"},
      {"[feed_gaps]\nservers = \"127.0.0.1\"\n", "unknown key 'feed_gaps.servers'"},
      {"[feed_gaps]\nadmit_confirmed_eop = \"16\"\n",
       "feed_gaps.admit_confirmed_eop must be \"off\", \"address\" or \"24\""},
      {"[feed_gaps]\nadmit_days = 0\n", "feed_gaps.admit_days must be 1..90"},
      {"[feed]\nmax_added_ranges = -1\n", "key 'feed.max_added_ranges' is out of range"},
      {"[feed]\nurl = \"http://mirror.example.net\"\n", "'http://mirror.example.net/' is plain http"},
      {"[feed]\nurl = \"https://u:secret@mirror.example.net\"\nca_file = \"/nonexistent/ca.pem\"\n",
       "feed.ca_file '/nonexistent/ca.pem' does not exist"},
  };
  for (const auto& c : cases) {
    std::string err = error_of(c.toml);
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.toml << " -> '" << err << "'";
  }
}

TEST(Config, PlainHttpToAMirrorNeedsTheSwitch) {
  EXPECT_EQ(error_of("[feed]\nurl = \"http://mirror.example.net\"\nallow_http = true\n"), "");
  EXPECT_EQ(error_of("[feed]\nurl = \"http://127.0.0.1:8080/o365\"\n"), "");
  std::string e = error_of("[feed]\nurl = \"http://user:secret@mirror.example.net/o365\"\n");
  EXPECT_NE(e.find("allow_http"), std::string::npos) << e;
  EXPECT_EQ(e.find("secret"), std::string::npos) << e;
}

TEST(Config, CheckConfigRefusesABadWatchOtherInstancesValue) {
  std::string path = write_tmp("[feed]\nwatch_other_instances = 1\n");
  std::string cmd = std::string(SG_SMTPGATED) + " --check-config -c " + path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int st = ::pclose(p);
  EXPECT_EQ(WEXITSTATUS(st), 1) << out;
  EXPECT_NE(out.find("feed.watch_other_instances' must be true or false"), std::string::npos) << out;
  std::ofstream(path) << "[feed]\nwatch_other_instances = true\n";
  p = ::popen(cmd.c_str(), "r");
  while (fread(buf, 1, sizeof(buf), p)) {
  }
  EXPECT_EQ(WEXITSTATUS(::pclose(p)), 0);
  ::unlink(path.c_str());
}

// Maps of gigabytes are refused with the key that sizes them and the limit;
// what a valid configuration implies is stated.
TEST(Config, MemoryAConfigurationImpliesIsStatedAndBounded) {
  DaemonConfig cfg;
  MemoryBudget def = memory_budget(cfg);
  EXPECT_GT(def.machine, 0u);
  EXPECT_LT(def.total(), def.limit());
  EXPECT_GT(def.maps_loaded, uint64_t(SG_PREFILTER_ELEMENTS) * sizeof(sg_chunk));  // the prefilter alone
  std::string text = describe(def);
  EXPECT_NE(text.find("recent_refused"), std::string::npos) << text;
  EXPECT_NE(text.find("half of this machine's"), std::string::npos) << text;
  // Per-CPU maps grow with the CPUs: recent_refused is sets of four 48-byte
  // sources per CPU.
  for (const auto& m : def.maps) {
    if (m.map == "recent_refused") {
      EXPECT_EQ(m.bytes, uint64_t(SG_DEFAULT_RECENT_SOURCES) * sizeof(sg_recent_source) * def.cpus);
    }
  }

  for (const char* toml : {"table_chunks = 16777216\n", "max_rules = 16777216\n"}) {
    std::string err = error_of(toml);
    std::string key = std::string(toml).substr(0, std::string(toml).find(' '));
    // Refused unless this machine could hold it (it cannot: tens of GiB).
    DaemonConfig big;
    std::string path = write_tmp(toml);
    load_config_file(path, big);
    ::unlink(path.c_str());
    MemoryBudget b = memory_budget(big);
    if (b.total() <= b.limit()) continue;
    EXPECT_NE(err.find("this configuration needs up to"), std::string::npos) << toml << err;
    EXPECT_NE(err.find("sized by " + key), std::string::npos) << err;
    EXPECT_NE(err.find("the limit is half of this machine's"), std::string::npos) << err;
    EXPECT_NE(err.find("lower " + key), std::string::npos) << err;
  }
}

TEST(Config, CheckConfigStatesTheMemory) {
  std::string path = write_tmp("max_rules = 1024\n");
  std::string cmd = std::string(SG_SMTPGATED) + " --check-config -c " + path + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  EXPECT_EQ(WEXITSTATUS(::pclose(p)), 0) << out;
  ::unlink(path.c_str());
  EXPECT_NE(out.find("configuration is valid\nmemory: up to "), std::string::npos) << out;
  EXPECT_NE(out.find("\nmaps: "), std::string::npos) << out;
}

TEST(Config, AReloadKeepsTheDirectories) {
  DaemonConfig a, b;
  EXPECT_NO_THROW(check_reload(a, b));
  b.paths.pin_dir = "/sys/fs/bpf/other";
  try {
    check_reload(a, b);
    ADD_FAILURE() << "a reload moved the pin dir";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("pin_dir changed"), std::string::npos) << e.what();
  }
}

// [v6]:port is the form for IPv6; this build's HTTP server may lack IPv6,
// and then --check-config says so rather than the start failing.
TEST(Config, AnIpv6ListenAddressIsServedOrRefusedAtCheckTime) {
  std::string err = error_of("[metrics]\nlisten = \"[::1]:9725\"\n");
  EXPECT_TRUE(err.empty() || err.find("has no IPv6; listen on an IPv4 address") != std::string::npos) << err;
  EXPECT_EQ(parse_listen_address("127.0.0.1:9725").str(), "127.0.0.1:9725");
}
