// What the gate keeps on disk, against other local users: the directories
// it trusts, the files it writes, the locks it takes.
#include <gtest/gtest.h>

#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "error.hpp"
#include "fsutil.hpp"

using namespace smtpgate;
namespace fs = std::filesystem;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

constexpr uid_t kNobody = 65534;

// A scratch directory of the test's own (root's, 0755), removed after.
class Scratch : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = "/tmp/sgt" + std::to_string(::getpid()) + "-fsutil";
    fs::remove_all(dir);
    fs::create_directory(dir);
    ::chmod(dir.c_str(), 0755);
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string sub(const std::string& name, mode_t mode, gid_t gid = 0) {
    std::string p = dir + "/" + name;
    fs::create_directories(p);
    EXPECT_EQ(::chown(p.c_str(), 0, gid), 0);
    EXPECT_EQ(::chmod(p.c_str(), mode), 0);
    return p;
  }
  std::string refusal(const std::string& path) {
    try {
      check_private_dir(path, "state_dir");
    } catch (const InputError& e) {
      return e.what();
    }
    return "";
  }
  mode_t mode_of(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }

  std::string dir;
};

using PrivateDir = Scratch;
using Files = Scratch;
using Locks = Scratch;

}  // namespace

TEST_F(PrivateDir, OnlyRootAndThisUserMayWriteIt) {
  EXPECT_EQ(refusal(sub("ok", 0755)), "");
  EXPECT_EQ(refusal(sub("root-group", 0775, 0)), "");  // root's group: root alone
  EXPECT_EQ(refusal(dir + "/ok/not-yet/made"), "");    // judged by where it would be made
  struct {
    std::string path, says;
  } cases[] = {
      {"/tmp", "state_dir /tmp is writable by every user (mode 1777)"},
      {sub("world", 0777), "is writable by every user (mode 0777)"},
      {sub("staff", 0775, 50), "is writable by group"},
      {sub("open/inner", 0755), ": its parent " + dir + "/open is writable by every user"},
      {dir + "/wide/not-yet", ": its parent " + dir + "/wide is writable by every user"},
  };
  ::chmod((dir + "/open").c_str(), 0777);
  sub("wide", 0777);
  for (const auto& c : cases) {
    std::string e = refusal(c.path);
    EXPECT_TRUE(has(e, c.says)) << c.path << " -> '" << e << "'";
    EXPECT_TRUE(has(e, "use a directory only root can write")) << e;
  }
  // Under a sticky parent (/tmp) a directory of root's own is private.
  std::string in_tmp = "/tmp/sgt" + std::to_string(::getpid()) + "-fsutil-sticky";
  fs::create_directory(in_tmp);
  EXPECT_EQ(refusal(in_tmp), "");
  // One another user owns is not, wherever it lies.
  ASSERT_EQ(::chown(in_tmp.c_str(), kNobody, kNobody), 0);
  EXPECT_TRUE(has(refusal(in_tmp), "is owned by ")) << refusal(in_tmp);
  fs::remove_all(in_tmp);
}

TEST_F(Files, MakeDirsSetsTheModeOfWhatItMakesOnly) {
  std::string kept = sub("kept", 0750);
  mode_t old = ::umask(077);
  make_dirs(kept + "/a/b", 0755);
  ::umask(old);
  EXPECT_EQ(mode_of(kept), 0750u);  // it existed: left as it was
  EXPECT_EQ(mode_of(kept + "/a"), 0755u);
  EXPECT_EQ(mode_of(kept + "/a/b"), 0755u);
}

TEST_F(Files, AnAtomicWriteNeverFollowsALinkAndHasItsMode) {
  std::string victim = dir + "/victim";
  std::ofstream(victim) << "precious\n";
  std::string path = dir + "/smtpgate.prom";
  // A link planted where the temporary file goes (the name is predictable).
  fs::create_symlink(victim, path + ".tmp." + std::to_string(::getpid()));
  mode_t old = ::umask(077);
  write_file_atomic(path, "metrics\n", 0644);
  ::umask(old);
  EXPECT_EQ(read_file(victim), "precious\n");
  EXPECT_EQ(read_file(path), "metrics\n");
  EXPECT_EQ(mode_of(path), 0644u);  // node_exporter reads it, whatever the umask
  EXPECT_FALSE(fs::is_symlink(path));
}

TEST_F(Locks, ALockFileOnlyItsOwnerCanOpen) {
  std::string path = dir + "/drops.lock";
  {
    std::optional<FileLock> l = FileLock::try_take(path);
    ASSERT_TRUE(l.has_value());
    EXPECT_EQ(mode_of(path), 0600u);
    auto holder = lock_holder(path);
    ASSERT_TRUE(holder.has_value());
    EXPECT_EQ(holder->pid, ::getpid());
    EXPECT_EQ(describe(holder).rfind("pid " + std::to_string(::getpid()) + " (", 0), 0u) << describe(holder);
    // Another open file description is another locker: it waits.
    int fd = ::open(path.c_str(), O_RDONLY);
    EXPECT_NE(::flock(fd, LOCK_EX | LOCK_NB), 0);
    ::close(fd);
  }
  EXPECT_FALSE(lock_holder(path).has_value());
}

TEST_F(Locks, ALockFileThatIsALinkOrAnotherUsersIsRefused) {
  std::string link = dir + "/link.lock";
  fs::create_symlink(dir + "/elsewhere", link);
  try {
    FileLock::try_take(link);
    ADD_FAILURE() << "a symbolic link was taken as a lock file";
  } catch (const InputError& e) {
    EXPECT_TRUE(has(e.what(), "is a symbolic link")) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir + "/elsewhere"));
  std::string theirs = dir + "/theirs.lock";
  std::ofstream(theirs).flush();
  ASSERT_EQ(::chown(theirs.c_str(), kNobody, kNobody), 0);
  try {
    FileLock::try_take(theirs);
    ADD_FAILURE() << "another user's file was taken as a lock file";
  } catch (const InputError& e) {
    EXPECT_TRUE(has(e.what(), "is owned by ")) << e.what();
  }
  // Nor in a directory others can write into.
  std::string open = sub("open", 0777);
  try {
    FileLock::try_take(open + "/drops.lock");
    ADD_FAILURE() << "a lock was taken in a world-writable directory";
  } catch (const InputError& e) {
    EXPECT_TRUE(has(e.what(), "lock directory " + open + " is writable by every user")) << e.what();
  }
}

// An earlier version left drops.lock 0644: a user who opened it then still
// holds a descriptor of it. The file is replaced, so that descriptor locks
// nothing the gate takes.
TEST_F(Locks, AWideLockFileIsReplacedNotReused) {
  std::string path = dir + "/drops.lock";
  std::ofstream(path).flush();
  ::chmod(path.c_str(), 0644);
  int theirs = ::open(path.c_str(), O_RDONLY);
  ASSERT_EQ(::flock(theirs, LOCK_EX | LOCK_NB), 0);
  std::optional<FileLock> ours = FileLock::try_take(path);
  EXPECT_TRUE(ours.has_value());
  EXPECT_EQ(mode_of(path), 0600u);
  ::close(theirs);
}
