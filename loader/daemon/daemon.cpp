#include "daemon.hpp"

#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "desired_set.hpp"
#include "drops.hpp"
#include "error.hpp"
#include "feed_gap.hpp"
#include "feed_service.hpp"
#include "feed_settings.hpp"
#include "gate.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "links.hpp"
#include "metrics.hpp"
#include "state.hpp"
#include "upgrade.hpp"

#include "bring_up.hpp"
#include "startup_grace.hpp"

namespace smtpgate {

namespace {

// Publishing a large allowlist parses and compiles it in many small blocks,
// all freed when the publish ends; malloc keeps freed blocks mapped. Whole
// free pages go back to the kernel, so that what stays resident is what the
// daemon holds.
void release_freed_memory() { ::malloc_trim(0); }

// SIGTERM, SIGINT and SIGHUP, blocked and read from a signalfd.
class Signals {
 public:
  Signals() {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    fd_ = signalfd(-1, &mask, SFD_CLOEXEC);
    if (fd_ < 0) throw SystemError("signalfd", errno);
  }
  ~Signals() { ::close(fd_); }
  Signals(const Signals&) = delete;
  Signals& operator=(const Signals&) = delete;
  int fd() const { return fd_; }
  /// The signal read (0: none).
  int next() {
    signalfd_siginfo si{};
    return ::read(fd_, &si, sizeof(si)) == sizeof(si) ? static_cast<int>(si.ssi_signo) : 0;
  }

 private:
  int fd_ = -1;
};

// smtpgated from its start to its stop.
class Daemon {
 public:
  Daemon(DaemonConfig initial, std::string config_path)
      : config_path_(std::move(config_path)),
        cfg_(std::make_shared<const DaemonConfig>(std::move(initial))),
        current_(cfg_) {}

  int run() {
    publish_feed_settings();
    if (!first_feed_sync()) return 0;
    {
      StartupGrace grace("publishing the allowlist and attaching");
      bring_up(*cfg_);
    }
    release_freed_memory();
    start_metrics();
    write_textfile();
    sd_notify(0, "READY=1\nSTATUS=gate attached, allowlist loaded");
    spdlog::warn("smtpgated ready: guarding {} interface(s)", cfg_->interfaces.size());
    // Sources turned away are looked up (PTR, confirmed forward) on a
    // worker of their own: EOP sending from where it has not published.
    gaps_ = std::make_unique<FeedGapWatcher>(current_);
    serve();
    shut_down();
    return 0;
  }

 private:
  using Clock = std::chrono::steady_clock;

  // smtpgatectl's feed commands follow what runs (feed_settings.hpp).
  void publish_feed_settings() {
    try {
      write_daemon_feed_settings(*cfg_, config_path_);
    } catch (const std::exception& e) {
      spdlog::error("feed settings not written for smtpgatectl: {}", e.what());
    }
  }

  // With an allowlist in the state (last known good, operator ranges) the
  // gate comes up first, READY=1 follows at once and the feed's first check
  // runs from the loop: a feed server that hangs must hold neither the gate
  // nor the start. Without one, the first sync is what can fill it: it runs
  // here, with systemd told to wait for it; a SIGTERM still ends it (false:
  // the daemon stops, nothing attached).
  bool first_feed_sync() {
    bool have_allowlist = count_admits(desired_ranges(StateStore(cfg_->paths.state_dir))) > 0;
    feed_started_ = !have_allowlist;
    if (have_allowlist || !cfg_->feed.enabled) return true;
    StartupGrace grace("first feed sync: no allowlist in the state yet");
    feed_.start(cfg_, FeedOp::SyncNow);
    while (feed_.running()) {
      pollfd p[2] = {{signals_.fd(), POLLIN, 0}, {feed_.done_fd(), POLLIN, 0}};
      if (::poll(p, 2, 1000) < 0 && errno != EINTR) throw SystemError("poll", errno);
      if (p[1].revents & POLLIN) feed_.finish(cfg_);
      if (!(p[0].revents & POLLIN)) continue;
      int sig = signals_.next();
      if (sig == SIGHUP) {
        reload_pending_ = true;  // once the gate is up
      } else if (sig) {
        spdlog::warn("smtpgated stopping during the first feed sync; nothing was attached");
        feed_.stop(std::chrono::milliseconds(1500));
        return false;
      }
    }
    return true;
  }

  // Metrics are for watching the gate, never a reason to leave it down.
  void start_metrics() {
    if (cfg_->metrics.listen.empty()) return;
    try {
      metrics_ = std::make_unique<MetricsServer>(cfg_->metrics.listen, [this] {
        ConfigSnapshot c = current_.get();
        return collect_metrics(c->paths, c->interfaces, feed_.metrics());
      });
      spdlog::info("metrics on http://{}/metrics", cfg_->metrics.listen);
    } catch (const std::exception& e) {
      spdlog::error("metrics not served: {}", e.what());
    }
  }

  void write_textfile() {
    if (cfg_->metrics.textfile.empty()) return;
    try {
      ConfigSnapshot c = current_.get();
      write_metrics_textfile(cfg_->metrics.textfile, render_metrics(c->paths, c->interfaces, feed_.metrics()));
    } catch (const std::exception& e) {
      spdlog::error("metrics textfile not written: {}", e.what());
    }
  }

  // The one reader of the events ring buffer while it runs (see drops.hpp);
  // if `smtpgatectl drops --follow` holds it, taken over when that ends.
  void take_drops() { drops_ = drops_watch_.try_take(cfg_->paths); }
  void record_drops() {
    try {
      drops_->drain();
    } catch (const std::exception& e) {
      spdlog::error("drops not recorded: {}", e.what());
    }
  }

  // SIGHUP. A reload never waits long for the gate lock: the loop has
  // signals and the ring to serve.
  void reload() {
    sd_notify(0, "RELOADING=1");
    try {
      DaemonConfig next = *cfg_;
      if (!config_path_.empty()) load_config_file(config_path_, next);
      check_reload(*cfg_, next);
      validate_config(next);
      bring_up(next, FeedService::kLockWait);
      cfg_ = std::make_shared<const DaemonConfig>(std::move(next));
      current_.set(cfg_);
      publish_feed_settings();
      spdlog::warn("configuration reloaded");
    } catch (const std::exception& e) {
      spdlog::error("reload refused, running configuration kept: {}", e.what());
    }
    release_freed_memory();
    sd_notify(0, "READY=1");
  }

  // When the feed is next due (never while a check runs: its end wakes the
  // loop), and the textfile (node_exporter reads it when it is scraped:
  // refresh it often).
  Clock::time_point next_tick() const {
    int timeout_ms = feed_started_ ? feed_.ms_until_due(*cfg_) : 0;
    if (!cfg_->metrics.textfile.empty() && (timeout_ms < 0 || timeout_ms > 15000)) timeout_ms = 15000;
    return timeout_ms < 0 ? Clock::time_point::max() : Clock::now() + std::chrono::milliseconds(timeout_ms);
  }

  // How long the loop may wait: until the next tick, at most a second while
  // the ring is not ours (to take it over), none with a reload pending.
  int wait_ms() const {
    int ms = -1;
    if (tick_ != Clock::time_point::max())
      ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(tick_ - Clock::now()).count() + 1));
    if (!drops_ && (ms < 0 || ms > 1000)) ms = 1000;
    if (reload_pending_) ms = 0;
    return ms;
  }

  // The main loop: signals, the drops ring, the feed's checks and the
  // textfile, until SIGTERM or SIGINT.
  void serve() {
    tick_ = next_tick();
    take_drops();
    while (true) {
      if (!drops_) take_drops();
      pollfd p[3] = {
          {signals_.fd(), POLLIN, 0}, {drops_ ? drops_->epoll_fd() : -1, POLLIN, 0}, {feed_.done_fd(), POLLIN, 0}};
      int rc = ::poll(p, 3, wait_ms());
      if (rc < 0 && errno != EINTR) throw SystemError("poll", errno);
      if (rc > 0 && (p[1].revents & POLLIN)) record_drops();
      if (rc > 0 && (p[2].revents & POLLIN)) {
        feed_.finish(cfg_);
        release_freed_memory();
        write_textfile();
        tick_ = next_tick();
      }
      int sig = reload_pending_ ? SIGHUP : (rc > 0 && (p[0].revents & POLLIN)) ? signals_.next() : 0;
      reload_pending_ = false;
      if (sig == SIGHUP) {
        reload();
        tick_ = next_tick();
        continue;
      }
      if (sig) {
        spdlog::warn(
            "smtpgated stopping; the gate stays attached and filtering "
            "(smtpgatectl detach IF removes it)");
        sd_notify(0, "STOPPING=1");
        return;
      }
      if (Clock::now() < tick_) continue;
      if (!feed_.running()) {
        feed_.start(cfg_, feed_started_ ? FeedOp::Check : FeedService::first_op(*cfg_));
        feed_started_ = true;
      }
      write_textfile();
      tick_ = next_tick();
    }
  }

  // A fetch in flight is aborted (libcurl's progress callback) and waited
  // for briefly: SIGTERM ends the daemon within about two seconds.
  void shut_down() {
    feed_.stop(std::chrono::milliseconds(1500));
    gaps_.reset();
    if (drops_) record_drops();
    metrics_.reset();
  }

  const std::string config_path_;
  Signals signals_;
  // The configuration in force: the main loop's own snapshot, renewed by a
  // reload; the metrics thread and the feed's worker read theirs through
  // current_ and keep it whole while they use it.
  ConfigSnapshot cfg_;
  CurrentConfig current_;
  FeedService feed_;
  bool reload_pending_ = false;
  bool feed_started_ = false;  // the loop runs the feed's checks
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<FeedGapWatcher> gaps_;
  std::unique_ptr<DropRecorder> drops_;
  DropConsumerWatch drops_watch_;
  Clock::time_point tick_;
};

}  // namespace

int run_daemon(DaemonConfig initial, const std::string& config_path) {
  return Daemon(std::move(initial), config_path).run();
}

}  // namespace smtpgate
