#include "daemon.hpp"

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

#include "drops.hpp"
#include "desired_set.hpp"
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

namespace smtpgate {

namespace {

ProgramOptions program_options(const DaemonConfig& cfg) {
  ProgramOptions o;
  o.pin_dir = cfg.paths.pin_dir;
  o.max_rules = cfg.max_rules;
  o.recent_sources = cfg.recent_sources;
  o.table_chunks = cfg.table_chunks;
  return o;
}

// The action to run with: config/flag if given, else the last one chosen with
// smtpgatectl action, else what a running gate has, else drop.
Action choose_action(const DaemonConfig& cfg, const StateStore& store, const std::optional<GateConfig>& running) {
  if (cfg.action) return *cfg.action;
  if (auto rt = store.runtime(); rt.action) return *rt.action;
  if (running) return running->action;
  return Action::Drop;
}

size_t count_admits(const std::vector<DesiredRange>& desired) {
  size_t n = 0;
  for (const auto& d : desired)
    if (d.kind == RuleKind::Admit) n++;
  return n;
}

// While a start-up step of unbounded length runs (the first sync, when only
// the feed can fill the allowlist), asks systemd for more start time
// (sd_notify EXTEND_TIMEOUT_USEC) at once and every kGraceS / 3 seconds, so
// that a slow feed server does not make it kill the daemon at
// TimeoutStartSec. At most kMaxS in all: a start that hangs longer still
// times out. Outside systemd sd_notify does nothing.
class StartupGrace {
 public:
  static constexpr int kGraceS = 60;
  static constexpr int kMaxS = 900;

  explicit StartupGrace(const char* step) : step_(step) {
    extend();
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      auto end = std::chrono::steady_clock::now() + std::chrono::seconds(kMaxS - kGraceS);
      while (!done_ && std::chrono::steady_clock::now() < end)
        if (!cv_.wait_for(lock, std::chrono::seconds(kGraceS / 3), [this] { return done_; })) extend();
    });
  }
  ~StartupGrace() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  StartupGrace(const StartupGrace&) = delete;
  StartupGrace& operator=(const StartupGrace&) = delete;

 private:
  void extend() {
    sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=%s", static_cast<unsigned long long>(kGraceS) * 1000000ULL,
               step_);
  }
  const char* step_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

void bring_up(const DaemonConfig& cfg, std::optional<std::chrono::milliseconds> lock_wait) {
  validate_config(cfg);
  if (cfg.interfaces.empty() && !cfg.no_attach)
    throw InputError("no interface to guard: pass --interface IF or set interfaces in smtpgate.toml");
  GateLock lock(cfg.paths, lock_wait);
  StateStore store(cfg.paths.state_dir);
  make_dirs(cfg.paths.state_dir, 0755);
  check_state_format(cfg.paths.state_dir);  // records the format in a new directory

  std::vector<DesiredRange> desired = desired_ranges(store);
  if (count_admits(desired) == 0 && !cfg.allow_empty)
    throw InputError("refusing to attach with an empty allowlist: it would refuse all mail on port 25; "
                     "add ranges (smtpgatectl ranges add, smtpgatectl feed import) or pass --allow-empty");

  // Maps first: pinned (or adopted), configured and holding the allowlist
  // before any interface runs the program, so no packet meets an empty gate.
  // A running gate of another map layout (another version, or another
  // max_rules) is replaced beside itself: see upgrade.hpp.
  bool adopted = GateMaps::pinned_at(cfg.paths.pin_dir);
  std::optional<NextGeneration> next;
  std::string why = adopted && !cfg.no_attach ? pinned_layout_difference(program_options(cfg)) : "";
  try {
    if (!why.empty()) {
      spdlog::warn("the running gate's maps have another layout ({}): replacing it without a gap", why);
      next.emplace(program_options(cfg));
    }
    std::optional<GateConfig> running;
    if (next) {
      running = next->open().config();  // carried over from the running gate
    } else if (adopted) {
      running = GateMaps::open_pinned(cfg.paths.pin_dir).config();
    } else {
      GateProgram seed(program_options(cfg));
      seed.load();
    }
    GateMaps maps = next ? next->open() : GateMaps::open_pinned(cfg.paths.pin_dir);
    GateConfig gc;
    gc.action = choose_action(cfg, store, running);
    gc.ports = cfg.ports;
    gc.events_per_sec = cfg.events_per_sec;
    maps.set_config(gc);
    PublishResult pr = publish_desired(maps, desired, next ? next->running_allowlist() : std::nullopt);
    spdlog::info("allowlist published: {} ranges (generation {}), action {}", pr.entries, pr.generation,
                 to_string(gc.action));

    if (cfg.no_attach) return;  // the other loader attaches; interfaces are only watched
    if (next) {
      next->switch_over(cfg.interfaces, cfg.mode);
      for (const auto& t : unguarded_tunnels()) spdlog::warn("{}", tunnel_advice(t));
      return;
    }
  } catch (const std::exception& e) {
    if (why.empty()) throw;
    throw InputError("the running gate was not replaced and runs on as it was: " + std::string(e.what()));
  }
  // A running program on these maps is adopted when it is this version's
  // (the same tag); another version's code (a fix to the parser, say) is
  // swapped atomically for this version's on the same maps.
  std::string ours;
  for (const auto& ifname : cfg.interfaces) {
    AttachedInfo a = query_attached(ifname, cfg.paths.pin_dir);
    if (a.attached && a.uses_pinned_maps) {
      if (ours.empty()) ours = this_build_program_tag(program_options(cfg));
      std::string theirs = program_tag(a.prog_id);
      if (theirs == ours) {
        spdlog::info("{}: adopted the running gate (program id {}, {} mode)", ifname, a.prog_id, a.mode);
        continue;
      }
      XdpMode used = attach(program_options(cfg), ifname, cfg.mode);
      spdlog::warn("{}: the running program (id {}, tag {}) was replaced by this version's (tag {}, {} mode) "
                   "on the same maps: its code differs", ifname, a.prog_id, theirs, ours, to_string(used));
      continue;
    }
    XdpMode used = attach(program_options(cfg), ifname, cfg.mode);
    spdlog::info("{}: gate attached in {} mode", ifname, to_string(used));
  }
  for (const auto& t : unguarded_tunnels()) spdlog::warn("{}", tunnel_advice(t));
}

int run_daemon(DaemonConfig initial, const std::string& config_path) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) throw SystemError("signalfd", errno);
  auto next_signal = [&] {
    signalfd_siginfo si{};
    return ::read(sfd, &si, sizeof(si)) == sizeof(si) ? static_cast<int>(si.ssi_signo) : 0;
  };

  // The configuration in force: the main loop's own snapshot, renewed by a
  // reload; the metrics thread and the feed's worker read theirs through
  // `current` and keep it whole while they use it.
  ConfigSnapshot cfg = std::make_shared<const DaemonConfig>(std::move(initial));
  CurrentConfig current(cfg);
  FeedService feed;
  bool reload_pending = false;
  // smtpgatectl's feed commands follow what runs (feed_settings.hpp).
  auto publish_feed_settings = [&config_path](const DaemonConfig& c) {
    try {
      write_daemon_feed_settings(c, config_path);
    } catch (const std::exception& e) {
      spdlog::error("feed settings not written for smtpgatectl: {}", e.what());
    }
  };
  publish_feed_settings(*cfg);

  // With an allowlist in the state (last known good, operator ranges) the
  // gate comes up first, READY=1 follows at once and the feed's first check
  // runs from the loop below: a feed server that hangs must hold neither the
  // gate nor the start. Without one, the first sync is what can fill it: it
  // runs first, with systemd told to wait for it; a SIGTERM still ends it.
  bool have_allowlist = count_admits(desired_ranges(StateStore(cfg->paths.state_dir))) > 0;
  bool feed_started = !have_allowlist;
  if (!have_allowlist && cfg->feed.enabled) {
    StartupGrace grace("first feed sync: no allowlist in the state yet");
    feed.start(cfg, FeedOp::SyncNow);
    while (feed.running()) {
      pollfd p[2] = {{sfd, POLLIN, 0}, {feed.done_fd(), POLLIN, 0}};
      if (::poll(p, 2, 1000) < 0 && errno != EINTR) throw SystemError("poll", errno);
      if (p[1].revents & POLLIN) feed.finish(cfg);
      if (!(p[0].revents & POLLIN)) continue;
      int sig = next_signal();
      if (sig == SIGHUP) {
        reload_pending = true;  // once the gate is up
      } else if (sig) {
        spdlog::warn("smtpgated stopping during the first feed sync; nothing was attached");
        feed.stop(std::chrono::milliseconds(1500));
        ::close(sfd);
        return 0;
      }
    }
  }
  {
    StartupGrace grace("publishing the allowlist and attaching");
    bring_up(*cfg);
  }
  // Metrics are for watching the gate, never a reason to leave it down.
  auto collect = [&current, &feed] {
    ConfigSnapshot c = current.get();
    return collect_metrics(c->paths, c->interfaces, feed.metrics());
  };
  auto render = [&current, &feed] {
    ConfigSnapshot c = current.get();
    return render_metrics(c->paths, c->interfaces, feed.metrics());
  };
  std::unique_ptr<MetricsServer> metrics;
  if (!cfg->metrics.listen.empty()) {
    try {
      metrics = std::make_unique<MetricsServer>(cfg->metrics.listen, collect);
      spdlog::info("metrics on http://{}/metrics", cfg->metrics.listen);
    } catch (const std::exception& e) {
      spdlog::error("metrics not served: {}", e.what());
    }
  }
  auto write_textfile = [&] {
    if (cfg->metrics.textfile.empty()) return;
    try {
      write_metrics_textfile(cfg->metrics.textfile, render());
    } catch (const std::exception& e) {
      spdlog::error("metrics textfile not written: {}", e.what());
    }
  };
  write_textfile();
  sd_notify(0, "READY=1\nSTATUS=gate attached, allowlist loaded");
  spdlog::warn("smtpgated ready: guarding {} interface(s)", cfg->interfaces.size());

  // Sources turned away are looked up (PTR, confirmed forward) on a
  // worker of their own: EOP sending from where it has not published.
  auto gaps = std::make_unique<FeedGapWatcher>(current);

  // The one reader of the events ring buffer while it runs (see drops.hpp);
  // if `smtpgatectl drops --follow` holds it, taken over when that ends.
  std::unique_ptr<DropRecorder> drops;
  DropConsumerWatch drops_watch;
  auto take_drops = [&] { drops = drops_watch.try_take(cfg->paths); };
  auto record_drops = [&] {
    try {
      drops->drain();
    } catch (const std::exception& e) {
      spdlog::error("drops not recorded: {}", e.what());
    }
  };
  // A reload never waits long for the gate lock: the loop has signals and
  // the ring to serve.
  auto reload = [&] {
    sd_notify(0, "RELOADING=1");
    try {
      DaemonConfig next = *cfg;
      if (!config_path.empty()) load_config_file(config_path, next);
      check_reload(*cfg, next);
      validate_config(next);
      bring_up(next, FeedService::kLockWait);
      cfg = std::make_shared<const DaemonConfig>(std::move(next));
      current.set(cfg);
      publish_feed_settings(*cfg);
      spdlog::warn("configuration reloaded");
    } catch (const std::exception& e) {
      spdlog::error("reload refused, running configuration kept: {}", e.what());
    }
    sd_notify(0, "READY=1");
  };
  using Clock = std::chrono::steady_clock;
  // When the feed is next due (never while a check runs: its end wakes the
  // loop), and the textfile (node_exporter reads it when it is scraped:
  // refresh it often).
  auto next_tick = [&] {
    int timeout_ms = feed_started ? feed.ms_until_due(*cfg) : 0;
    if (!cfg->metrics.textfile.empty() && (timeout_ms < 0 || timeout_ms > 15000)) timeout_ms = 15000;
    return timeout_ms < 0 ? Clock::time_point::max() : Clock::now() + std::chrono::milliseconds(timeout_ms);
  };
  Clock::time_point tick = next_tick();
  take_drops();

  while (true) {
    if (!drops) take_drops();
    int wait_ms = -1;
    if (tick != Clock::time_point::max())
      wait_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(tick - Clock::now()).count() + 1));
    if (!drops && (wait_ms < 0 || wait_ms > 1000)) wait_ms = 1000;
    if (reload_pending) wait_ms = 0;
    pollfd p[3] = {{sfd, POLLIN, 0}, {drops ? drops->epoll_fd() : -1, POLLIN, 0}, {feed.done_fd(), POLLIN, 0}};
    int rc = ::poll(p, 3, wait_ms);
    if (rc < 0 && errno != EINTR) throw SystemError("poll", errno);
    if (rc > 0 && (p[1].revents & POLLIN)) record_drops();
    if (rc > 0 && (p[2].revents & POLLIN)) {
      feed.finish(cfg);
      write_textfile();
      tick = next_tick();
    }
    int sig = reload_pending ? SIGHUP : (rc > 0 && (p[0].revents & POLLIN)) ? next_signal() : 0;
    reload_pending = false;
    if (sig == SIGHUP) {
      reload();
      tick = next_tick();
      continue;
    }
    if (sig) {
      spdlog::warn("smtpgated stopping; the gate stays attached and filtering "
                   "(smtpgatectl detach IF removes it)");
      sd_notify(0, "STOPPING=1");
      break;
    }
    if (Clock::now() < tick) continue;
    if (!feed.running()) {
      feed.start(cfg, feed_started ? FeedOp::Check : FeedService::first_op(*cfg));
      feed_started = true;
    }
    write_textfile();
    tick = next_tick();
  }
  // A fetch in flight is aborted (libcurl's progress callback) and waited
  // for briefly: SIGTERM ends the daemon within about two seconds.
  feed.stop(std::chrono::milliseconds(1500));
  gaps.reset();
  if (drops) record_drops();
  metrics.reset();
  ::close(sfd);
  return 0;
}

}  // namespace smtpgate
