#include "fsutil.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "error.hpp"

namespace smtpgate {

namespace {
void on_alarm(int) {}

// Interrupts a blocking system call of this thread (flock) once `after` has
// passed, and every 50 ms after that (a signal that came just before the
// call began is not lost). Waiting in flock keeps the waiter's place among
// the kernel's waiters; polling with LOCK_NB would lose the lock to them
// each time it changes hands. The signal's handler does nothing and is
// installed without SA_RESTART, once, for this use only.
class ThreadAlarm {
 public:
  explicit ThreadAlarm(std::chrono::milliseconds after) : deadline_(std::chrono::steady_clock::now() + after) {
    static const int sig = [] {
      struct sigaction sa {};
      sa.sa_handler = on_alarm;
      sigemptyset(&sa.sa_mask);
      ::sigaction(SIGRTMIN, &sa, nullptr);
      return SIGRTMIN;
    }();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    ::pthread_sigmask(SIG_UNBLOCK, &set, &old_mask_);
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = sig;
    ev._sigev_un._tid = static_cast<pid_t>(::gettid());  // sigev_notify_thread_id, which glibc 2.36 lacks
    if (::timer_create(CLOCK_MONOTONIC, &ev, &timer_) != 0) throw SystemError("timer_create", errno);
    itimerspec when{};
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(after).count();
    when.it_value = {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    if (when.it_value.tv_sec == 0 && when.it_value.tv_nsec == 0) when.it_value.tv_nsec = 1;
    when.it_interval = {0, 50000000};
    ::timer_settime(timer_, 0, &when, nullptr);
  }
  ~ThreadAlarm() {
    ::timer_delete(timer_);
    ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  ThreadAlarm(const ThreadAlarm&) = delete;
  ThreadAlarm& operator=(const ThreadAlarm&) = delete;
  bool rang() const { return std::chrono::steady_clock::now() >= deadline_; }

 private:
  std::chrono::steady_clock::time_point deadline_;
  sigset_t old_mask_{};
  timer_t timer_{};
};

std::string parent_dir(const std::string& path) {
  auto p = std::filesystem::path(path).parent_path();
  return p.empty() ? "." : p.string();
}

void write_all(int fd, const std::string& content, const std::string& path) {
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SystemError("write " + path, errno);
    }
    off += static_cast<size_t>(n);
  }
}
}  // namespace

void write_file_atomic(const std::string& path, const std::string& content, unsigned mode) {
  // A new file, never one found there (a link another user planted in a
  // shared directory would make this write through it); its mode is exactly
  // mode, whatever the umask (node_exporter reads the metrics textfile).
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0 && errno == EEXIST && ::unlink(tmp.c_str()) == 0)  // left by a crash of an earlier process
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) throw SystemError("create " + tmp, errno);
  try {
    if (::fchmod(fd, mode) != 0) throw SystemError("chmod " + tmp, errno);
    write_all(fd, content, tmp);
    if (::fsync(fd) != 0) throw SystemError("fsync " + tmp, errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw SystemError("rename " + tmp + " to " + path, err);
  }
  int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SystemError("read " + path, errno ? errno : ENOENT);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string set_aside(const std::string& path) {
  std::string dest = path + ".corrupt-" + std::to_string(::time(nullptr));
  if (::rename(path.c_str(), dest.c_str()) != 0) throw SystemError("rename " + path, errno);
  return dest;
}

void make_dirs(const std::string& path, unsigned mode) {
  std::filesystem::path built;
  for (const auto& part : std::filesystem::path(path)) {
    built /= part;
    if (::mkdir(built.c_str(), mode) == 0) {
      ::chmod(built.c_str(), mode);  // ours: the mode asked for, not the umask's
      continue;
    }
    int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(built.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) continue;
    throw SystemError("create directory " + built.string(), err == EEXIST ? ENOTDIR : err);
  }
}

namespace {

std::string mode_str(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", unsigned(m & 07777));
  return buf;
}

std::string user_name(uid_t uid) {
  std::vector<char> buf(4096);
  passwd pw{}, *res = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res)
    return "user '" + std::string(pw.pw_name) + "' (uid " + std::to_string(uid) + ")";
  return "uid " + std::to_string(uid);
}

std::string group_name(gid_t gid) {
  std::vector<char> buf(4096);
  group gr{}, *res = nullptr;
  if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &res) == 0 && res)
    return "group '" + std::string(gr.gr_name) + "'";
  return "gid " + std::to_string(gid);
}

}  // namespace

void check_private_dir(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path target = fs::absolute(path, ec).lexically_normal();
  if (ec || target.empty()) throw InputError(what + " " + quote_input(path) + " is not a usable path");
  // Judge what exists: the directory, or the parents it would be made in.
  fs::path existing = target;
  while (!fs::exists(existing, ec) && existing.has_relative_path()) existing = existing.parent_path();
  fs::path dir = fs::canonical(existing, ec);
  if (ec) throw SystemError("resolve " + existing.string(), ec.value());
  bool itself = existing == target;
  const std::string fix =
      ": another user could plant or replace the files the gate trusts; use a directory only "
      "root can write, such as /var/lib/smtpgate";
  while (true) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) throw SystemError("stat " + dir.string(), errno);
    std::string where =
        itself ? what + " " + dir.string() : what + " " + target.string() + ": its parent " + dir.string();
    if (!S_ISDIR(st.st_mode)) throw InputError(where + " is not a directory");
    if (st.st_uid != 0 && st.st_uid != ::geteuid())
      throw InputError(where + " is owned by " + user_name(st.st_uid) + ", not by root" + fix);
    // A sticky parent (/tmp) lets nobody rename or remove what another user made in it.
    bool sticky_parent = !itself && (st.st_mode & S_ISVTX);
    if ((st.st_mode & S_IWOTH) && !sticky_parent)
      throw InputError(where + " is writable by every user (mode " + mode_str(st.st_mode) + ")" + fix);
    if ((st.st_mode & S_IWGRP) && st.st_gid != 0 && !sticky_parent)
      throw InputError(where + " is writable by " + group_name(st.st_gid) + " (mode " + mode_str(st.st_mode) + ")" +
                       fix);
    if (dir == dir.root_path()) break;
    dir = dir.parent_path();
    itself = false;
  }
}

namespace {

// Opens the lock file at path (see FileLock) and returns its fd.
int open_lock_file(const std::string& path) {
  check_private_dir(parent_dir(path), "lock directory");
  for (int attempt = 0;; attempt++) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EROFS)  // a read-only state directory: an flock needs no write access
      fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ELOOP)
      throw InputError(path + " is a symbolic link; a lock file never is: remove it (smtpgate makes it again)");
    if (fd < 0) throw SystemError("open lock " + path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw SystemError("stat lock " + path, err);
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
      ::close(fd);
      throw InputError(path +
                       (S_ISREG(st.st_mode) ? " is owned by " + user_name(st.st_uid) : " is not a regular file") +
                       ": another user could hold the lock; remove it (smtpgate makes it again)");
    }
    if ((st.st_mode & 077) == 0) return fd;
    ::close(fd);
    if (attempt > 0) throw InputError(path + " keeps mode " + mode_str(st.st_mode) + " after being replaced");
    // Left with a wider mode by an earlier version: a fresh file takes its
    // place, so that an fd another user opened on the old one locks nothing.
    write_file_atomic(path, "", 0600);
    spdlog::info("{}: replaced (mode {} let other users open it) by one only this user can open", path,
                 mode_str(st.st_mode));
  }
}

// The lock is on the file path names now (a process that replaced it
// meanwhile locked another inode).
bool still_named(int fd, const std::string& path) {
  struct stat a {
  }, b{};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Opens path and flocks it (flags: LOCK_EX, or LOCK_EX | LOCK_NB); -1 when
// LOCK_NB finds it held. With `wait`, a blocking lock gives up after that
// long (SystemError, EWOULDBLOCK, naming the path).
int lock_path(const std::string& path, int flags, std::optional<std::chrono::milliseconds> wait = std::nullopt) {
  std::optional<ThreadAlarm> alarm;
  if (wait) alarm.emplace(*wait);
  while (true) {
    bool dir = is_dir(path);
    int fd = dir ? ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : open_lock_file(path);
    if (fd < 0) throw SystemError("open lock " + path, errno);
    int rc;
    while ((rc = ::flock(fd, flags)) != 0 && errno == EINTR && !(alarm && alarm->rang())) {
    }
    if (rc != 0) {
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return -1;
      if (err == EINTR)
        throw SystemError(
            "lock " + path + ": still held by another process after " + std::to_string(wait->count()) + " ms",
            EWOULDBLOCK);
      throw SystemError("lock " + path, err);
    }
    if (dir || still_named(fd, path)) return fd;
    ::close(fd);
  }
}

}  // namespace

FileLock::FileLock(const std::string& path, std::optional<std::chrono::milliseconds> wait)
    : fd_(lock_path(path, LOCK_EX, wait)) {}

std::optional<FileLock> FileLock::try_take(const std::string& path) {
  int fd = lock_path(path, LOCK_EX | LOCK_NB);
  if (fd < 0) return std::nullopt;
  FileLock l;
  l.fd_ = fd;
  return l;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

std::optional<LockHolder> lock_holder(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  std::ifstream in("/proc/locks");
  std::string line;
  while (std::getline(in, line)) {
    // "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF"; "1: -> FLOCK ..." is a waiter.
    if (line.find("->") != std::string::npos) continue;
    char kind[16], mode[16], rw[16];
    int pid = 0;
    unsigned maj = 0, min = 0;
    unsigned long ino = 0;
    if (std::sscanf(line.c_str(), "%*d: %15s %15s %15s %d %x:%x:%lu", kind, mode, rw, &pid, &maj, &min, &ino) != 7)
      continue;
    if (std::string(kind) != "FLOCK" || ino != st.st_ino || maj != major(st.st_dev) || min != minor(st.st_dev) ||
        pid <= 0)
      continue;
    LockHolder h;
    h.pid = pid;
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::getline(comm, h.command);
    return h;
  }
  return std::nullopt;
}

std::string describe(const std::optional<LockHolder>& holder) {
  if (!holder) return "a process not visible from here";
  return "pid " + std::to_string(holder->pid) + (holder->command.empty() ? "" : " (" + holder->command + ")");
}

}  // namespace smtpgate
