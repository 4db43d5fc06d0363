// smtpgatectl's contract with scripts: exit 0 ok, 1 error with one line on
// stderr naming the input and the fix (and nothing changed), 2 usage.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "fsutil.hpp"
#include "netns.hpp"
#include "process.hpp"

namespace {

struct Out {
  int code;
  std::string err;
};

Out ctl(const std::string& args, const std::string& state, const std::string& pins) {
  std::string errfile = state + "/.err";
  std::string cmd = sgtest::binary("smtpgatectl") + " --state-dir " + state + " --pin-dir " + pins + " " + args +
                    " >/dev/null 2>" + errfile;
  int st = std::system(cmd.c_str());
  Out o{WIFEXITED(st) ? WEXITSTATUS(st) : -1, smtpgate::read_file(errfile)};
  ::unlink(errfile.c_str());
  return o;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tag = "sgt" + std::to_string(::getpid()) + "cli";
    state = "/tmp/" + tag + "-state";
    pins = "/sys/fs/bpf/" + tag;
    std::filesystem::create_directories(state);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(state, ec);
    std::filesystem::remove_all(pins, ec);
  }
  std::string state, pins;
};

TEST_F(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(ctl("", state, pins).code, 2);
  EXPECT_EQ(ctl("frobnicate", state, pins).code, 2);
  EXPECT_EQ(ctl("ranges add", state, pins).code, 2);
  EXPECT_EQ(ctl("action block", state, pins).code, 2);
}

TEST_F(Cli, BadInputExitsOneWithOneActionableLineAndChangesNothing) {
  ASSERT_EQ(ctl("ranges add 40.92.0.0/15", state, pins).code, 0);
  std::string before = smtpgate::read_file(state + "/ranges.json");
  struct {
    std::string args;
    const char* says;
  } cases[] = {
      {"ranges add 10.0.0.0/8", "--allow-reserved"},
      {"ranges add 52.100.0.0/13", "did you mean 52.96.0.0/13?"},
      {"ranges add 40.92.0.0/33", "longer than the 32 bits"},
      {"ranges del 104.47.0.0/17", "not in the operator's ranges"},
      {"ranges import /nonexistent/ranges.txt", "/nonexistent/ranges.txt"},
      {"explain 40.92.0.10", "start smtpgated first"},
      {"explain 40.92.0.0/15", "is a range, not an address"},
      {"explain ::1.2.3.4", "IPv4-compatible IPv6 address"},
      {"ranges add ::1.2.3.4/128", "for the IPv4 address write 1.2.3.4/32"},
      {"ranges add 40.95.0.0/16 --comment " + std::string(300, 'x'), "is too long: keep it to 256 bytes"},
  };
  for (const auto& c : cases) {
    Out o = ctl(c.args, state, pins);
    EXPECT_EQ(o.code, 1) << c.args;
    EXPECT_NE(o.err.find(c.says), std::string::npos) << c.args << ": " << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << c.args << ": " << o.err;
  }
  EXPECT_EQ(smtpgate::read_file(state + "/ranges.json"), before);
}

// Arguments are text: a byte that is not UTF-8, a control character (a
// terminal escape in a comment) or an argument of megabytes is a usage error
// that quotes it cut short.
TEST_F(Cli, ArgumentsThatAreNotTextAreUsageErrors) {
  ASSERT_EQ(ctl("ranges add 40.92.0.0/15", state, pins).code, 0);
  std::string before = smtpgate::read_file(state + "/ranges.json");
  struct {
    std::string arg, says;
  } cases[] = {
      {"relay \xff pool", "'relay \\xff pool' is not text (byte 0xff at 7)"},
      {"\x1b[31mred", "is not text (byte 0x1b at 1)"},
      {"two\nlines", "is not text (byte 0x0a at 4)"},
      {std::string(5000, 'x'), "(cut; 5000 bytes in all) is longer than 4096 bytes"},
  };
  for (const auto& c : cases) {
    sgtest::ProcResult r = sgtest::run_here({sgtest::binary("smtpgatectl"), "--state-dir", state, "--pin-dir", pins,
                                             "ranges", "add", "40.95.0.0/16", "--comment", c.arg});
    EXPECT_EQ(r.exit_code, 2) << c.arg;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_LT(r.err.size(), 300u) << r.err;
  }
  EXPECT_EQ(smtpgate::read_file(state + "/ranges.json"), before);
}

}  // namespace
