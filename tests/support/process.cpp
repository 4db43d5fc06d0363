#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace sgtest {

namespace {
std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> v;
  for (const auto& a : argv) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  return v;
}

std::string drain(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  return out;
}
}  // namespace

ProcResult run_here(const std::vector<std::string>& argv) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    auto v = c_argv(argv);
    ::execv(v[0], v.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  ProcResult r;
  // stderr is short (one line); read stdout to its end first.
  r.out = drain(out[0]);
  r.err = drain(err[0]);
  ::close(out[0]);
  ::close(err[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

LineReader::LineReader(const std::vector<std::string>& argv) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(p[1], 1);
    auto v = c_argv(argv);
    ::execv(v[0], v.data());
    ::_exit(127);
  }
  ::close(p[1]);
  fd_ = p[0];
}

LineReader::~LineReader() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 50; i++) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  if (fd_ >= 0) ::close(fd_);
}

std::string LineReader::line(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string l = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return l;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    char b[4096];
    ssize_t n = ::read(fd_, b, sizeof(b));
    if (n <= 0) return "";
    buf_.append(b, n);
  }
}

ThrowawayUser::ThrowawayUser() {
  reap_stale();
  static int seq = 0;
  name_ = "sgt" + std::to_string(::getpid()) + "u" + std::to_string(seq++);
  sh("useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin " + name_);
  passwd* pw = ::getpwnam(name_.c_str());
  if (!pw) throw std::runtime_error("useradd made no user " + name_);
  uid_ = pw->pw_uid;
}

ThrowawayUser::~ThrowawayUser() { sh_status("userdel " + name_); }

std::vector<std::string> ThrowawayUser::as(const std::vector<std::string>& argv) const {
  std::vector<std::string> v{"/usr/bin/setpriv",
                             "--reuid=" + name_,
                             "--regid=" + name_,
                             "--clear-groups",
                             "--inh-caps=-all",
                             "--bounding-set=-all",
                             "--"};
  v.insert(v.end(), argv.begin(), argv.end());
  return v;
}

}  // namespace sgtest
