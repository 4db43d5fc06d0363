// Test hosts for end-to-end runs: network namespaces joined by veth, created
// by the test and removed (with their veths and the gate's pins) when the
// object goes away, also when an assertion fails.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sgtest {

/// Path of one of the project's programs ("smtpgated", "smtpgatectl"): from
/// $SMTPGATE_BIN_DIR when set (the VM runner copies them elsewhere), else the
/// build tree.
std::string binary(const std::string& name);

/// Path of a BPF object the build makes ("testprogs/xdp_pass"): from
/// $SMTPGATE_BPF_DIR when set, else the build tree.
std::string bpf_object(const std::string& name);

class Netns;
/// Runs `ip ARGS` in ns to attach an XDP object with iproute2's loader, then
/// removes what that loader leaves in /sys/fs/bpf (its empty tc/globals and
/// xdp/globals directories and the ip link) when they were not there before.
void ip_load_xdp(const Netns& ns, const std::string& args);

/// Path of a file in tests/fixtures: from $SMTPGATE_FIXTURES_DIR when set.
std::string fixture_path(const std::string& name);

/// Runs a shell command line; throws std::runtime_error with its output on a
/// non-zero exit.
void sh(const std::string& cmd);
/// Runs a command line and returns its exit code (output discarded).
int sh_status(const std::string& cmd);

/// One network namespace, created now, deleted on destruction.
class Netns {
 public:
  explicit Netns(std::string name);
  ~Netns();
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  const std::string& name() const { return name_; }
  /// "ip -n NAME ARGS".
  void ip(const std::string& args) const;
  /// Runs fn on a thread that joined this namespace; returns its result.
  template <typename T>
  T run(const std::function<T()>& fn) const;
  /// Joins the calling thread to this namespace (for a thread of its own).
  void enter() const;

 private:
  std::string name_;
};

/// Result of one TCP connect attempt.
enum class ConnectResult { Connected, Refused, TimedOut, OtherError };
const char* to_string(ConnectResult r);

/// A port on 127.0.0.1 of the calling thread's namespace that nobody uses
/// now, for a socket of socktype (SOCK_STREAM or SOCK_DGRAM).
uint16_t free_loopback_port(int socktype);

/// Connects from src (an address of the calling thread's namespace) to
/// dst:port, waiting at most timeout_ms; the socket is closed again.
ConnectResult connect_from(const std::string& src, const std::string& dst, uint16_t port, int timeout_ms);

struct ProcResult;

/// Two hosts: a gateway and a sender joined by one veth pair.
///   gateway "gw0": 192.0.2.1/24, 2001:db8::1/64; default routes via sender
///   sender  "tx0": 192.0.2.2/24, 2001:db8::2/64, plus any extra source
///                  addresses the test adds
/// Names are unique per process so parallel test binaries do not collide.
class Sandbox {
 public:
  Sandbox();
  ~Sandbox();
  Netns& gateway() { return *gw_; }
  Netns& sender() { return *tx_; }
  static constexpr const char* kGwIf = "gw0";
  static constexpr const char* kTxIf = "tx0";
  static constexpr const char* kGwV4 = "192.0.2.1";
  static constexpr const char* kGwV6 = "2001:db8::1";
  /// Adds a source address (v4 or v6) on the sender.
  void add_sender_address(const std::string& addr);
  /// Connects from src (bound on the sender) to dst:port with a timeout.
  ConnectResult connect(const std::string& src, const std::string& dst, uint16_t port, int timeout_ms);
  /// A pin dir and a state dir of this sandbox's own, removed on destruction.
  const std::string& pin_dir() const { return pin_dir_; }
  const std::string& state_dir() const { return state_dir_; }
  /// smtpgatectl ARGS with this sandbox's dirs, run in the gateway.
  ProcResult ctl(const std::vector<std::string>& args);

 private:
  std::string prefix_;
  std::unique_ptr<Netns> gw_, tx_;
  std::string pin_dir_, state_dir_;
};

/// A TCP listener in a namespace that accepts and closes connections on a
/// thread, counting them, until destroyed.
class Listener {
 public:
  Listener(const Netns& ns, uint16_t port);
  ~Listener();
  unsigned accepted() const;
  /// Connections accepted once `want` have been or timeout_ms passed: a
  /// connect returns at the handshake, the accept follows a moment later.
  unsigned accepted_when(unsigned want, int timeout_ms = 2000) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Output of a finished process.
struct ProcResult {
  int exit_code = -1;
  std::string out, err;
};

/// Runs argv inside ns (network namespace only: bpffs pins stay visible)
/// and waits for it.
ProcResult run_in(const Netns& ns, const std::vector<std::string>& argv);

/// A long-running process inside a namespace (smtpgated). Stopped with
/// SIGTERM on destruction if still running.
class Daemon {
 public:
  /// Starts argv in ns with NOTIFY_SOCKET set; ready() waits for READY=1.
  Daemon(const Netns& ns, const std::vector<std::string>& argv);
  ~Daemon();
  /// Waits until the process sends READY=1 (true) or exits/times out (false).
  bool ready(int timeout_ms = 20000);
  /// SIGTERM and wait; returns the exit code.
  int stop();
  /// SIGTERM, then SIGKILL if it has not exited after timeout_ms; returns
  /// the exit code, or -1 when it had to be killed.
  int stop_within(int timeout_ms);
  /// SIGKILL and wait.
  void kill_hard();
  /// Sends a signal (SIGHUP: reload) without waiting.
  void signal(int sig);
  /// Waits for the next sd_notify message containing `what` (e.g. "READY=1").
  bool notified(const std::string& what, int timeout_ms = 10000);
  /// What it wrote to stderr so far (after stop()).
  std::string stderr_text() const;
  /// Its process id (-1 once it ended and was reaped).
  pid_t pid() const { return pid_; }
  /// True while it runs (reaps it when it has ended).
  bool running();
  /// Waits up to timeout_ms for it to end by itself; its exit code, or -1
  /// if it still runs (then it is left running).
  int exited(int timeout_ms);

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  int notify_fd_ = -1;
  std::string notify_path_, err_path_;
};

/// Removes namespaces, pin dirs and throwaway users left by earlier test
/// processes that died without cleaning up (names carry the pid; only dead
/// pids are removed).
void reap_stale();

}  // namespace sgtest

#include "netns_impl.hpp"
