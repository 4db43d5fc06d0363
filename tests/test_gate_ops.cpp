// Changes to a real gate (maps loaded and pinned in a test pin dir, no
// interface): what ranges add/del/import and action do to the state dir and
// the maps, and that bad input changes neither.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "error.hpp"
#include "feed_sync.hpp"
#include "fsutil.hpp"
#include "gate.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "state.hpp"

using namespace smtpgate;
namespace fs = std::filesystem;

namespace {

class GateOps : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tag = "sgt" + std::to_string(::getpid()) + "ops";
    paths.pin_dir = "/sys/fs/bpf/" + tag;
    paths.state_dir = "/tmp/" + tag + "-state";
    ensure_pin_dir(paths.pin_dir);
    make_dirs(paths.state_dir);
    ProgramOptions o;
    o.pin_dir = paths.pin_dir;
    o.max_rules = 64;
    GateProgram p(o);
    p.load();  // pins the maps; the program itself goes with p
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(paths.pin_dir, ec);
    fs::remove_all(paths.state_dir, ec);
  }
  std::vector<std::string> live() {
    std::vector<std::string> out;
    for (const auto& e : GateMaps::open_pinned(paths.pin_dir).active_entries()) out.push_back(e.prefix.str());
    return out;
  }
  std::string state_file() {
    std::string p = paths.state_dir + "/ranges.json";
    return file_exists(p) ? read_file(p) : "";
  }
  void add(const char* c, bool reserved = false) {
    add_range(paths, OperatorRange{Cidr::parse(c), RuleKind::Admit, "", 0}, reserved);
  }
  Paths paths;
};

using V = std::vector<std::string>;

TEST_F(GateOps, AddAndDelApplyToMapsAndState) {
  add("40.92.0.0/15");
  add("2a01:111:f400::/48");
  EXPECT_EQ(live(), (V{"40.92.0.0/15", "2a01:111:f400::/48"}));
  EXPECT_EQ(StateStore(paths.state_dir).operator_ranges().size(), 2u);
  del_range(paths, Cidr::parse("40.92.0.0/15"));
  EXPECT_EQ(live(), (V{"2a01:111:f400::/48"}));
  EXPECT_EQ(StateStore(paths.state_dir).operator_ranges().size(), 1u);
}

TEST_F(GateOps, BadInputChangesNothing) {
  add("40.92.0.0/15");
  std::string before = state_file();
  uint32_t gen = GateMaps::open_pinned(paths.pin_dir).generation();
  EXPECT_THROW(add("10.0.0.0/8"), InputError);                               // special-purpose
  EXPECT_THROW(del_range(paths, Cidr::parse("52.100.0.0/14")), InputError);  // not there
  std::string bad = paths.state_dir + "/bad.txt";
  std::ofstream(bad) << "40.107.0.0/16\n52.100.0.0/13\n";  // host bits on line 2
  EXPECT_THROW(import_ranges(paths, bad, RuleKind::Admit, false), InputError);
  EXPECT_EQ(state_file(), before);
  EXPECT_EQ(live(), (V{"40.92.0.0/15"}));
  EXPECT_EQ(GateMaps::open_pinned(paths.pin_dir).generation(), gen);
}

TEST_F(GateOps, TooManyRangesIsRefusedBeforeAnyWrite) {
  std::string file = paths.state_dir + "/many.txt";
  {
    std::ofstream f(file);
    for (int i = 0; i < 70; i++) f << "40.92." << i << ".0/24\n";
  }
  std::string before = state_file();
  try {
    import_ranges(paths, file, RuleKind::Admit, false);
    FAIL() << "70 ranges fit in a 64-rule gate";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("max_rules"), std::string::npos) << e.what();
  }
  EXPECT_EQ(state_file(), before);
  EXPECT_TRUE(live().empty());
}

// The ranges the feed brings count too: the operator's alone would fit, the
// two together do not. Nothing is written, nothing published.
TEST_F(GateOps, TooManyRangesWithTheFeedsIsRefusedAndChangesNothing) {
  FeedStatus feed;
  feed.applied = FeedSnapshot{};
  for (int i = 0; i < 40; i++) feed.applied->ranges.push_back(Cidr::parse("52.100." + std::to_string(i) + ".0/24"));
  write_feed_status(paths.state_dir, feed);
  add("40.92.0.0/15");
  std::string before = state_file();
  std::string file = paths.state_dir + "/many.txt";
  {
    std::ofstream f(file);
    for (int i = 0; i < 30; i++) f << "40.107." << i << ".0/24\n";
  }
  try {
    import_ranges(paths, file, RuleKind::Admit, false);
    FAIL() << "71 ranges fit in a 64-rule gate";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("max_rules"), std::string::npos) << e.what();
  }
  EXPECT_EQ(state_file(), before);
  EXPECT_EQ(live().size(), 41u);
}

// A publish the kernel refuses after ranges.json was written (here: allow_v4
// and its tries frozen, so neither the patch's insert nor installing new
// tries succeeds) puts ranges.json back: the state and the maps still agree.
TEST_F(GateOps, PublishRefusedAfterTheWritePutsTheStateBack) {
  add("40.92.0.0/15");
  std::string before = state_file();
  int fd = bpf_obj_get((paths.pin_dir + "/allow_v4").c_str());
  ASSERT_GE(fd, 0) << std::strerror(errno);
  for (uint32_t slot = 0; slot < SG_SLOTS; slot++) {
    uint32_t id = 0;
    if (bpf_map_lookup_elem(fd, &slot, &id) != 0) continue;
    int trie = bpf_map_get_fd_by_id(id);
    ASSERT_GE(trie, 0) << std::strerror(errno);
    ASSERT_EQ(bpf_map_freeze(trie), 0) << std::strerror(errno);
    ::close(trie);
  }
  ASSERT_EQ(bpf_map_freeze(fd), 0) << std::strerror(errno);
  ::close(fd);
  try {
    add("40.107.0.0/16");
    FAIL() << "published into a frozen allow_v4";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("install IPv4 allowlist"), std::string::npos) << e.what();
  }
  EXPECT_EQ(state_file(), before);
  EXPECT_EQ(live(), (V{"40.92.0.0/15"}));
}

TEST_F(GateOps, ImportIsAllOrNothingAndNamesTheLine) {
  std::string file = paths.state_dir + "/ranges.txt";
  std::ofstream(file) << "# EOP\n40.92.0.0/15  # main\n\n192.168.0.0/16\n";
  try {
    import_ranges(paths, file, RuleKind::Admit, false);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("ranges.txt:4"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(live().empty());
  std::ofstream(file) << "# EOP\n40.92.0.0/15  # main\n40.107.0.0/16\n";
  EXPECT_EQ(import_ranges(paths, file, RuleKind::Admit, false), 2u);
  EXPECT_EQ(live(), (V{"40.92.0.0/15", "40.107.0.0/16"}));
}

TEST_F(GateOps, ConcurrentWritersLoseNoUpdate) {
  // Separate processes, as smtpgatectl invocations are: each adds its ranges.
  const int kProcs = 4, kEach = 10;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; p++) {
    pid_t pid = ::fork();
    if (pid == 0) {
      try {
        for (int i = 0; i < kEach; i++) add(("40.92." + std::to_string(p * kEach + i) + ".0/24").c_str());
      } catch (...) {
        _exit(1);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int st;
    waitpid(k, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  EXPECT_EQ(live().size(), size_t(kProcs * kEach));
  EXPECT_EQ(StateStore(paths.state_dir).operator_ranges().size(), size_t(kProcs * kEach));
}

TEST_F(GateOps, CountersFollowTheirRangeAcrossPublishes) {
  add("40.92.0.0/15");
  GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
  uint32_t id = maps.match(Cidr::parse_address("40.92.1.1"))->rule_id;
  add("40.107.0.0/16");
  del_range(paths, Cidr::parse("40.107.0.0/16"));
  EXPECT_EQ(maps.match(Cidr::parse_address("40.92.1.1"))->rule_id, id);
}

TEST_F(GateOps, CorruptStateIsSetAsideNotTrusted) {
  add("40.92.0.0/15");
  std::ofstream(paths.state_dir + "/ranges.json") << "{\"ranges\": [ {\"cidr\": ";
  EXPECT_THROW(StateStore(paths.state_dir).operator_ranges(), InputError);
  bool aside = false;
  for (const auto& e : fs::directory_iterator(paths.state_dir))
    if (e.path().filename().string().rfind("ranges.json.corrupt-", 0) == 0) aside = true;
  EXPECT_TRUE(aside);
  EXPECT_FALSE(file_exists(paths.state_dir + "/ranges.json"));
}

// open_pinned refuses the pin directory as another version's, naming the map
// (`what` follows "(map " in the message) and the way out.
void expect_another_version(const std::string& pin_dir, const std::string& what) {
  try {
    GateMaps::open_pinned(pin_dir);
    ADD_FAILURE() << "opened " << pin_dir << ", expected another version's: map " << what;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("another version of smtpgate (map " + what), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("restart smtpgated of this version"), std::string::npos) << e.what();
  }
}

// Pins left by another version (here: a map it did not have) are named as
// such, with the way out, not mistaken for no gate at all.
TEST_F(GateOps, PinsOfAnotherVersionAreNamedWithTheFix) {
  fs::remove(paths.pin_dir + "/summary");
  expect_another_version(paths.pin_dir, "summary missing)");
}

// A map of the same name whose values have another size (here: cpu_state
// as it was before it grew a field) is from another version too: reading it
// with this version's layout would misread it.
TEST_F(GateOps, PinsWithValuesOfAnotherSizeAreNamedWithTheFix) {
  const std::string path = paths.pin_dir + "/cpu_state";
  fs::remove(path);
  int fd =
      bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "cpu_state", sizeof(uint32_t), sizeof(sg_cpu_state) - 8, 1, nullptr);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(bpf_obj_pin(fd, path.c_str()), 0) << std::strerror(errno);
  ::close(fd);
  expect_another_version(paths.pin_dir, "cpu_state is of type " + std::to_string(BPF_MAP_TYPE_PERCPU_ARRAY) +
                                            " with 4-byte keys and " + std::to_string(sizeof(sg_cpu_state) - 8) +
                                            "-byte values");
}

// A bitmap map of the same type and sizes but fewer elements (here:
// prefilter_v4 as it was when it held only the /24 bits, 2048 elements a
// slot) is from another version: this one would write past its end.
TEST_F(GateOps, PinsWithFewerElementsAreNamedWithTheFix) {
  const std::string path = paths.pin_dir + "/prefilter_v4";
  fs::remove(path);
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_MMAPABLE);
  const uint32_t before = SG_SLOTS * 2048;
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "prefilter_v4", sizeof(uint32_t), sizeof(sg_chunk), before, &opts);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(bpf_obj_pin(fd, path.c_str()), 0) << std::strerror(errno);
  ::close(fd);
  expect_another_version(paths.pin_dir, "prefilter_v4 has " + std::to_string(before) + " elements, this one expects " +
                                            std::to_string(SG_PREFILTER_ELEMENTS));
}

// The tries in allow_v4's slots are checked too: here the outer map of a
// version whose tries held 4-byte values.
TEST_F(GateOps, PinsWhoseTriesHaveAnotherShapeAreNamedWithTheFix) {
  const std::string path = paths.pin_dir + "/allow_v4";
  fs::remove(path);
  LIBBPF_OPTS(bpf_map_create_opts, trie_opts, .map_flags = BPF_F_NO_PREALLOC);
  int trie = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "old_trie", sizeof(sg_lpm_v4_key), 4, 16, &trie_opts);
  ASSERT_GE(trie, 0) << std::strerror(errno);
  LIBBPF_OPTS(bpf_map_create_opts, outer_opts, .inner_map_fd = uint32_t(trie));
  int outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "allow_v4", 4, 4, 2, &outer_opts);
  ASSERT_GE(outer, 0) << std::strerror(errno);
  uint32_t slot = 0;
  ASSERT_EQ(bpf_map_update_elem(outer, &slot, &trie, BPF_ANY), 0) << std::strerror(errno);
  ASSERT_EQ(bpf_obj_pin(outer, path.c_str()), 0) << std::strerror(errno);
  ::close(outer);
  ::close(trie);
  expect_another_version(paths.pin_dir, "allow_v4's trie is of type " + std::to_string(BPF_MAP_TYPE_LPM_TRIE));
}

TEST_F(GateOps, ActionPersistsAndReachesTheMap) {
  set_action(paths, Action::Reject);
  EXPECT_EQ(GateMaps::open_pinned(paths.pin_dir).config().action, Action::Reject);
  EXPECT_EQ(StateStore(paths.state_dir).runtime().action, Action::Reject);
  EXPECT_THROW(parse_action("block"), InputError);
}

}  // namespace
