// smtpgate.toml: the shipped file parses to the defaults, every key is read,
// and mistakes are refused with a message naming the key.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include <fstream>

#include "config.hpp"
#include "error.hpp"

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
      {"[feed]\nmax_growth_share = nan\n", "feed.max_growth_share must be a number in (0, 1000]"},
      {"[feed]\nmax_growth_share = 0\n", "feed.max_growth_share must be a number in (0, 1000]"},
      {"[feed]\nmax_added_ranges = 100000\n", "feed.max_added_ranges must be 0..65536"},
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
