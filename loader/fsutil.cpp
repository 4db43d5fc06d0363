#include "fsutil.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

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
      struct sigaction sa{};
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
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw SystemError("create " + tmp, errno);
  try {
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
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

std::string set_aside(const std::string& path) {
  std::string dest = path + ".corrupt-" + std::to_string(::time(nullptr));
  if (::rename(path.c_str(), dest.c_str()) != 0) throw SystemError("rename " + path, errno);
  return dest;
}

void make_dirs(const std::string& path, unsigned mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw SystemError("create directory " + path, ec.value());
  ::chmod(path.c_str(), mode);
}

FileLock::FileLock(const std::string& path, std::optional<std::chrono::milliseconds> wait) {
  // A directory (the pin dir) is locked through a read-only fd, as xdp-tools do.
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  else
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) throw SystemError("open lock " + path, errno);
  std::optional<ThreadAlarm> alarm;
  if (wait) alarm.emplace(*wait);
  while (::flock(fd_, LOCK_EX) != 0) {
    int err = errno;
    if (err == EINTR && !(alarm && alarm->rang())) continue;
    ::close(fd_);
    throw SystemError(err == EINTR ? "lock " + path + ": still held by another process after " +
                                         std::to_string(wait->count()) + " ms"
                                   : "lock " + path,
                      err == EINTR ? EWOULDBLOCK : err);
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace smtpgate
