#include "netns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sgtest {

namespace fs = std::filesystem;

std::string binary(const std::string& name) {
  if (const char* dir = std::getenv("SMTPGATE_BIN_DIR")) return std::string(dir) + "/" + name;
  std::string built = name == "smtpgated" ? SG_SMTPGATED : SG_SMTPGATECTL;
  return built;
}

std::string bpf_object(const std::string& name) {
  if (const char* dir = std::getenv("SMTPGATE_BPF_DIR")) return std::string(dir) + "/" + name + ".bpf.o";
  return std::string(SG_BINARY_DIR) + "/bpf/" + name + ".bpf.o";
}

std::string fixture_path(const std::string& name) {
  if (const char* dir = std::getenv("SMTPGATE_FIXTURES_DIR")) return std::string(dir) + "/" + name;
  return std::string(SG_FIXTURES_DIR) + "/" + name;
}

void sh(const std::string& cmd) {
  std::string full = cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmd);
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int st = pclose(p);
  if (st != 0) throw std::runtime_error("command failed (" + std::to_string(st) + "): " + cmd + "\n" + out);
}

int sh_status(const std::string& cmd) {
  int st = std::system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Netns::Netns(std::string name) : name_(std::move(name)) { sh("ip netns add " + name_); }

Netns::~Netns() { sh_status("ip netns del " + name_); }

void Netns::ip(const std::string& args) const { sh("ip -n " + name_ + " " + args); }

void Netns::enter() const {
  std::string path = "/var/run/netns/" + name_;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  if (::setns(fd, CLONE_NEWNET) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error("setns " + path + ": " + std::strerror(e));
  }
  ::close(fd);
}

const char* to_string(ConnectResult r) {
  switch (r) {
    case ConnectResult::Connected: return "connected";
    case ConnectResult::Refused: return "refused";
    case ConnectResult::TimedOut: return "timed out";
    case ConnectResult::OtherError: return "other error";
  }
  return "?";
}

namespace {
std::string pin_root() { return "/sys/fs/bpf"; }

void remove_pin_dir(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}
}  // namespace

Sandbox::Sandbox() {
  reap_stale();
  static std::atomic<int> seq{0};
  prefix_ = "sgt" + std::to_string(::getpid()) + "x" + std::to_string(seq++);
  gw_ = std::make_unique<Netns>(prefix_ + "gw");
  tx_ = std::make_unique<Netns>(prefix_ + "tx");
  sh("ip -n " + gw_->name() + " link add " + kGwIf + " type veth peer name " + kTxIf + " netns " + tx_->name());
  for (Netns* ns : {gw_.get(), tx_.get()}) {
    ns->ip("link set lo up");
    sh("ip netns exec " + ns->name() + " sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
  }
  gw_->ip(std::string("addr add 192.0.2.1/24 dev ") + kGwIf);
  gw_->ip(std::string("addr add 2001:db8::1/64 dev ") + kGwIf + " nodad");
  gw_->ip(std::string("link set ") + kGwIf + " up");
  tx_->ip(std::string("addr add 192.0.2.2/24 dev ") + kTxIf);
  tx_->ip(std::string("addr add 2001:db8::2/64 dev ") + kTxIf + " nodad");
  tx_->ip(std::string("link set ") + kTxIf + " up");
  gw_->ip("route add default via 192.0.2.2");
  gw_->ip("-6 route add default via 2001:db8::2");
  // veth delivers XDP_TX frames (the gate's resets) only to a peer with
  // NAPI: an XDP program that passes everything turns it on.
  ip_load_xdp(*tx_,
              std::string("link set dev ") + kTxIf + " xdpdrv obj " + bpf_object("testprogs/xdp_pass") + " sec xdp");
  pin_dir_ = pin_root() + "/" + prefix_;
  state_dir_ = "/tmp/" + prefix_ + "-state";
  fs::create_directories(state_dir_);
}

Sandbox::~Sandbox() {
  // Detach first so libxdp's own pins go too, then the hosts, then our pins.
  run_in(*gw_, {binary("smtpgatectl"), "--pin-dir", pin_dir_, "detach", kGwIf});
  gw_.reset();
  tx_.reset();
  remove_pin_dir(pin_dir_);
  // libxdp's shared pin directory: removed only if nothing else uses it.
  ::rmdir((pin_root() + "/xdp").c_str());
  std::error_code ec;
  fs::remove_all(state_dir_, ec);
}

ProcResult Sandbox::ctl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{binary("smtpgatectl"), "--pin-dir", pin_dir_, "--state-dir", state_dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_in(*gw_, argv);
}

void Sandbox::add_sender_address(const std::string& addr) {
  bool v6 = addr.find(':') != std::string::npos;
  tx_->ip("addr add " + addr + (v6 ? "/128 dev " : "/32 dev ") + kTxIf + (v6 ? " nodad" : ""));
}

void ip_load_xdp(const Netns& ns, const std::string& args) {
  const std::string root = "/sys/fs/bpf";
  bool had = fs::exists(root + "/tc") || fs::exists(root + "/xdp") || fs::is_symlink(root + "/ip");
  ns.ip(args);
  if (had) return;
  std::error_code ec;
  for (const char* d : {"/tc/globals", "/xdp/globals", "/tc", "/xdp"}) fs::remove(root + d, ec);  // empty only
  if (!fs::exists(root + "/tc")) fs::remove(root + "/ip", ec);
}

uint16_t free_loopback_port(int socktype) {
  int fd = ::socket(AF_INET, socktype | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw std::runtime_error("no free loopback port");
  return ntohs(a.sin_port);
}

ConnectResult connect_from(const std::string& src, const std::string& dst, uint16_t port, int timeout_ms) {
  bool v6 = dst.find(':') != std::string::npos;
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ConnectResult::OtherError;
  sockaddr_storage s{}, d{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&s);
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, src.c_str(), &a->sin6_addr);
    auto* b = reinterpret_cast<sockaddr_in6*>(&d);
    b->sin6_family = AF_INET6;
    b->sin6_port = htons(port);
    inet_pton(AF_INET6, dst.c_str(), &b->sin6_addr);
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&s);
    a->sin_family = AF_INET;
    inet_pton(AF_INET, src.c_str(), &a->sin_addr);
    auto* b = reinterpret_cast<sockaddr_in*>(&d);
    b->sin_family = AF_INET;
    b->sin_port = htons(port);
    inet_pton(AF_INET, dst.c_str(), &b->sin_addr);
    len = sizeof(sockaddr_in);
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&s), len) != 0) {
    ::close(fd);
    return ConnectResult::OtherError;
  }
  ConnectResult r = ConnectResult::OtherError;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&d), len) == 0) {
    r = ConnectResult::Connected;
  } else if (errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, timeout_ms);
    if (n == 0) {
      r = ConnectResult::TimedOut;
    } else {
      int err = 0;
      socklen_t el = sizeof(err);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
      r = err == 0              ? ConnectResult::Connected
          : err == ECONNREFUSED ? ConnectResult::Refused
                                : ConnectResult::OtherError;
    }
  } else if (errno == ECONNREFUSED) {
    r = ConnectResult::Refused;
  }
  ::close(fd);
  return r;
}

ConnectResult Sandbox::connect(const std::string& src, const std::string& dst, uint16_t port, int timeout_ms) {
  return tx_->run<ConnectResult>([&] { return connect_from(src, dst, port, timeout_ms); });
}

struct Listener::Impl {
  int fd4 = -1, fd6 = -1;
  std::atomic<unsigned> count{0};
  std::atomic<bool> stop{false};
  std::thread thread;
};

Listener::Listener(const Netns& ns, uint16_t port) : impl_(std::make_unique<Impl>()) {
  ns.run<int>([&] {
    impl_->fd6 = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(impl_->fd6, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;  // dual-stack: IPv4 arrives as ::ffff:a.b.c.d
    a.sin6_port = htons(port);
    a.sin6_addr = in6addr_any;
    if (::bind(impl_->fd6, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(impl_->fd6, 512) != 0)
      throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
    return 0;
  });
  impl_->thread = std::thread([this] {
    while (!impl_->stop) {
      pollfd p{impl_->fd6, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(impl_->fd6, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        impl_->count++;
        ::close(c);
      }
    }
  });
}

Listener::~Listener() {
  impl_->stop = true;
  impl_->thread.join();
  ::close(impl_->fd6);
}

unsigned Listener::accepted() const { return impl_->count; }

unsigned Listener::accepted_when(unsigned want, int timeout_ms) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (impl_->count < want && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  // A little longer, so that one connection too many would show too.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return impl_->count;
}

namespace {
// Forks a child that joins ns's network namespace and execs argv.
pid_t spawn_in(const Netns& ns, const std::vector<std::string>& argv, int out_fd, int err_fd,
               const std::string& notify_path) {
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    try {
      ns.enter();
    } catch (...) {
      _exit(127);
    }
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    if (!notify_path.empty()) setenv("NOTIFY_SOCKET", notify_path.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

ProcResult run_in(const Netns& ns, const std::vector<std::string>& argv) {
  std::string base = "/tmp/sgt-run-" + std::to_string(::getpid());
  int out = ::open((base + ".out").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err = ::open((base + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  pid_t pid = spawn_in(ns, argv, out, err, "");
  ::close(out);
  ::close(err);
  int st = 0;
  waitpid(pid, &st, 0);
  ProcResult r;
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  ::unlink((base + ".out").c_str());
  ::unlink((base + ".err").c_str());
  return r;
}

Daemon::Daemon(const Netns& ns, const std::vector<std::string>& argv) {
  static std::atomic<int> seq{0};
  std::string base = "/tmp/sgt-daemon-" + std::to_string(::getpid()) + "-" + std::to_string(seq++);
  notify_path_ = base + ".sock";
  err_path_ = base + ".err";
  notify_fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, notify_path_.c_str(), sizeof(a.sun_path) - 1);
  ::unlink(notify_path_.c_str());
  if (::bind(notify_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    throw std::runtime_error("bind notify socket");
  int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  pid_ = spawn_in(ns, argv, -1, err, notify_path_);
  ::close(err);
}

Daemon::~Daemon() {
  if (pid_ > 0) stop();
  // A sanitizer build's report in smtpgated fails the test that ran it.
  std::string err = slurp(err_path_);
  size_t at = err.find("Sanitizer");
  if (at != std::string::npos) ADD_FAILURE() << "smtpgated: " << err.substr(at >= 40 ? at - 40 : 0, 4000);
  ::close(notify_fd_);
  ::unlink(notify_path_.c_str());
  ::unlink(err_path_.c_str());
}

void Daemon::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool Daemon::ready(int timeout_ms) { return notified("READY=1", timeout_ms); }

bool Daemon::notified(const std::string& what, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{notify_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      char buf[512];
      ssize_t n = ::recv(notify_fd_, buf, sizeof(buf) - 1, 0);
      if (n > 0) {
        buf[n] = 0;
        if (std::strstr(buf, what.c_str())) return true;
      }
    }
    if (!running()) return false;
  }
  return false;
}

int Daemon::stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int st = 0;
  waitpid(pid_, &st, 0);
  pid_ = -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int Daemon::stop_within(int timeout_ms) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int st = 0;
  while (waitpid(pid_, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill_hard();
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void Daemon::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int st;
  waitpid(pid_, &st, 0);
  pid_ = -1;
}

std::string Daemon::stderr_text() const { return slurp(err_path_); }

bool Daemon::running() {
  int st;
  if (pid_ > 0 && waitpid(pid_, &st, WNOHANG) == pid_) {
    pid_ = -1;
    exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  return pid_ > 0;
}

int Daemon::exited(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (running() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return running() ? -1 : exit_code_;
}

void reap_stale() {
  auto dead = [](const std::string& name) {
    // Names look like sgt<PID>x<N>...
    if (name.rfind("sgt", 0) != 0) return false;
    pid_t pid = std::atoi(name.c_str() + 3);
    return pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH;
  };
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/var/run/netns", ec))
    if (dead(e.path().filename())) sh_status("ip netns del " + e.path().filename().string());
  for (const auto& e : fs::directory_iterator(pin_root(), ec))
    if (dead(e.path().filename())) fs::remove_all(e.path(), ec);
  std::vector<std::string> users;
  ::setpwent();
  while (passwd* pw = ::getpwent())
    if (dead(pw->pw_name)) users.push_back(pw->pw_name);
  ::endpwent();
  for (const auto& u : users) sh_status("userdel " + u);
}

}  // namespace sgtest
