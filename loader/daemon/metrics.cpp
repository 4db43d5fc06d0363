#include "metrics.hpp"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "desired_set.hpp"
#include "drops.hpp"
#include "error.hpp"
#include "feed.hpp"
#include "feed_gap.hpp"
#include "feed_sync.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "ruleset.hpp"

namespace smtpgate {

std::atomic<uint64_t>& bpf_syscall_failures() {
  static std::atomic<uint64_t> n{0};
  return n;
}

namespace {

// Families in the order they are first added; labels sorted by name.
class Exposition {
 public:
  void add(const std::string& name, const std::string& help, prometheus::MetricType type,
           const std::map<std::string, std::string>& labels, double value) {
    auto [it, fresh] = index_.emplace(name, fams_.size());
    if (fresh) fams_.push_back(prometheus::MetricFamily{name, help, type, {}});
    prometheus::ClientMetric m;
    for (const auto& [k, v] : labels) m.label.push_back({k, v});
    if (type == prometheus::MetricType::Counter)
      m.counter.value = value;
    else
      m.gauge.value = value;
    fams_[it->second].metric.push_back(std::move(m));
  }
  MetricFamilies take() { return std::move(fams_); }

 private:
  MetricFamilies fams_;
  std::map<std::string, size_t> index_;
};

constexpr auto kCounter = prometheus::MetricType::Counter;
constexpr auto kGauge = prometheus::MetricType::Gauge;

// What a scrape gets: the daemon's collect, called on the exposer's thread.
// Nothing it throws may reach civetweb (it would end the daemon).
class ScrapeCollectable : public prometheus::Collectable {
 public:
  explicit ScrapeCollectable(std::function<MetricFamilies()> collect) : collect_(std::move(collect)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    try {
      return collect_();
    } catch (const std::exception& e) {
      spdlog::warn("metrics: scrape failed: {}", e.what());
    } catch (...) {
      spdlog::warn("metrics: scrape failed");
    }
    return {};
  }

 private:
  std::function<MetricFamilies()> collect_;
};

// civetweb's log: what it says while starting (why a bind failed) is kept
// for the error; later lines (a client's bad request) are debug noise.
std::mutex g_civet_mu;
std::string g_civet_last;

int civet_log(const mg_connection*, const char* message) {
  std::string m(message ? message : "");
  while (!m.empty() && (m.back() == '\n' || m.back() == '\r')) m.pop_back();
  spdlog::debug("civetweb: {}", m);
  std::lock_guard<std::mutex> lock(g_civet_mu);
  g_civet_last = m;
  return 1;  // handled: civetweb prints nothing itself
}

}  // namespace

namespace {

// Per interface: whether the gate runs there, and the kernel's run counters.
void add_program_metrics(Exposition& e, const Paths& paths, const std::vector<std::string>& interfaces) {
  std::vector<std::pair<std::string, ProgramRunStats>> runs;
  for (const auto& ifname : interfaces) {
    bool attached = false;
    try {
      AttachedInfo a = query_attached(ifname, paths.pin_dir);
      attached = a.attached && a.uses_pinned_maps;
      if (a.attached) runs.emplace_back(ifname, program_run_stats(a.prog_id));
    } catch (...) {
    }
    e.add("smtpgate_program_attached", "1 when the gate is attached to the interface and uses the pinned maps", kGauge,
          {{"interface", ifname}}, attached ? 1 : 0);
  }
  // The kernel counts only while bpf_stats is on; a program replaced on the
  // interface starts again from zero (a counter reset to Prometheus).
  for (const auto& [ifname, r] : runs)
    e.add("smtpgate_program_run_seconds_total",
          "Time the gate's program ran on the interface, counted while kernel.bpf_stats_enabled is on", kCounter,
          {{"interface", ifname}}, static_cast<double>(r.run_time_ns) / 1e9);
  for (const auto& [ifname, r] : runs)
    e.add("smtpgate_program_runs_total",
          "Runs of the gate's program on the interface, counted while kernel.bpf_stats_enabled is on", kCounter,
          {{"interface", ifname}}, static_cast<double>(r.run_cnt));
}

// From the pinned maps: counters per range, per verdict and reason, ranges
// per origin, the publish generation and the action.
void add_map_metrics(Exposition& e, const Paths& paths) {
  if (GateMaps::pinned_at(paths.pin_dir)) {
    try {
      GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
      std::vector<DesiredRange> desired = desired_ranges(StateStore(paths.state_dir));
      std::string action = to_string(maps.config().action);
      std::map<std::pair<std::string, std::string>, int> per_origin;
      auto rule_lines = [&](const std::string& range, const std::string& origin, const std::string& kind,
                            const sg_rule_counters& c) {
        std::map<std::string, std::string> l{{"range", range}, {"origin", origin}, {"kind", kind}};
        e.add("smtpgate_range_admitted_syns_total", "Guarded SYNs admitted, by deciding range", kCounter, l,
              c.admit_packets);
        e.add("smtpgate_range_refused_syns_total",
              "Guarded SYNs refused (dropped, rejected or monitored), by deciding range", kCounter, l,
              c.refuse_packets);
      };
      DesiredIndex index(desired);
      for (const auto& t : maps.active_entries()) {
        const DesiredRange* d = index.find(t);
        std::string origin = d ? d->origin : "unknown";
        per_origin[{origin, to_string(t.kind)}]++;
        rule_lines(t.prefix.str(), origin, to_string(t.kind), maps.rule_counters(t.rule_id));
      }
      rule_lines("default", "default", "default", maps.rule_counters(SG_RULE_DEFAULT));
      e.add("smtpgate_feed_gap_sources",
            "Sources turned away in the last day whose PTR name, confirmed forward, is an EOP outbound host the "
            "published set does not hold",
            kGauge, {}, recent_feed_gaps(read_feed_gaps(paths.state_dir), ::time(nullptr)));
      for (const auto& [k, n] : per_origin)
        e.add("smtpgate_ranges", "Ranges in the published allowlist, by origin and kind", kGauge,
              {{"origin", k.first}, {"kind", k.second}}, n);
      auto v = maps.verdict_counters();
      for (uint32_t i = 0; i < SG_VERDICT_MAX; i++) {
        e.add("smtpgate_packets_total", "Packets seen by the program, by verdict", kCounter,
              {{"verdict", verdict_name(i)}}, v[i].packets);
        e.add("smtpgate_bytes_total", "Bytes seen by the program, by verdict", kCounter, {{"verdict", verdict_name(i)}},
              v[i].bytes);
      }
      auto r = maps.reason_counters();
      for (uint32_t i = 0; i < SG_REASON_MAX; i++)
        e.add("smtpgate_reason_packets_total", "Packets seen by the program, by reason", kCounter,
              {{"reason", reason_name(i)}}, r[i].packets);
      e.add("smtpgate_events_suppressed_total", "Refusal events held back by the in-kernel rate limit", kCounter, {},
            maps.events_suppressed());
      e.add("smtpgate_recent_skipped_total",
            "Default-rule refusals not recorded in the recently-refused table (its per-CPU budget was spent)", kCounter,
            {}, maps.recent_skipped());
      e.add("smtpgate_recent_range_skipped_total",
            "Range refusals not recorded in the recently-refused table (the ranges' per-CPU budget was spent)",
            kCounter, {}, maps.range_skipped());
      e.add("smtpgate_allowlist_generation", "Publishes of the allowlist since the maps were created", kGauge, {},
            maps.generation());
      e.add("smtpgate_action", "The action for refused sources (1 for the one in force)", kGauge, {{"action", action}},
            1);
    } catch (const std::exception& ex) {
      bpf_syscall_failures()++;
      spdlog::warn("metrics: reading the maps failed: {}", ex.what());
    }
  }
}

// From feed.json: the version applied and announced, and the last check.
void add_feed_metrics(Exposition& e, const Paths& paths) {
  try {
    FeedStatus f = read_feed_status(paths.state_dir);
    // The feed's instance is labelled feed_instance: "instance" is the
    // scrape target's own label in Prometheus, which a fleet selects by.
    if (f.applied)
      e.add("smtpgate_feed_info", "The feed version applied (1 for the one in force)", kGauge,
            {{"feed_instance", to_string(f.applied->instance)},
             {"version", f.applied->version.empty() ? "unversioned" : f.applied->version}},
            1);
    // Versions as numbers (YYYYMMDDNN), to draw over time and to see change.
    if (f.applied && is_feed_version(f.applied->version))
      e.add("smtpgate_feed_applied_version", "The feed version applied, as a number (YYYYMMDDNN)", kGauge, {},
            std::stod(f.applied->version));
    if (is_feed_version(f.latest_version))
      e.add("smtpgate_feed_announced_version",
            "The newest feed version the service announced, as a number (YYYYMMDDNN)", kGauge, {},
            std::stod(f.latest_version));
    e.add("smtpgate_feed_last_check_timestamp_seconds", "When the feed was last checked (0: never)", kGauge, {},
          static_cast<double>(f.last_check));
    e.add("smtpgate_feed_last_success_timestamp_seconds",
          "When a check last ended with the latest version applied (0: never)", kGauge, {},
          static_cast<double>(f.last_success));
    e.add("smtpgate_feed_error", "1 when the last feed check failed or a version was refused", kGauge, {},
          f.last_error.empty() ? 0 : 1);
    e.add("smtpgate_feed_stale", "1 when the service announced a version that is not applied", kGauge, {},
          f.stale() ? 1 : 0);
  } catch (const std::exception& ex) {
    spdlog::warn("metrics: feed status unreadable: {}", ex.what());
  }
}

}  // namespace

MetricFamilies collect_metrics(const Paths& paths, const std::vector<std::string>& interfaces, MetricFamilies extra) {
  Exposition e;
  add_program_metrics(e, paths, interfaces);
  add_map_metrics(e, paths);
  add_feed_metrics(e, paths);
  e.add("smtpgate_drops_recording",
        "1 when this smtpgated reads refused SYNs into the drop log (0: another process holds drops.lock, or it "
        "cannot be taken)",
        kGauge, {}, DropRecorder::recording_here() ? 1 : 0);
  e.add("smtpgate_bpf_syscall_failures_total", "BPF syscalls that failed while reading the gate", kCounter, {},
        bpf_syscall_failures().load());
  MetricFamilies fams = e.take();
  for (auto& f : extra) fams.push_back(std::move(f));
  return fams;
}

std::string render_metrics(const Paths& paths, const std::vector<std::string>& interfaces, MetricFamilies extra) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, collect_metrics(paths, interfaces, std::move(extra)));
  return out.str();
}

void write_metrics_textfile(const std::string& path, const std::string& text) { write_file_atomic(path, text, 0644); }

MetricsServer::MetricsServer(const std::string& listen, std::function<MetricFamilies()> collect)
    : collectable_(std::make_shared<ScrapeCollectable>(std::move(collect))) {
  address_ = parse_listen_address(listen);
  const ListenAddress& a = address_;
  // civetweb gives each connection a thread until it is answered or
  // request_timeout_ms passes: with kThreads threads, that many idle or
  // trickling connections delay no scrape, and each one more by at most
  // the timeout. No keep-alive, no files served: /metrics only.
  std::vector<std::string> options{"listening_ports",    a.str(),
                                   "num_threads",        std::to_string(kThreads),
                                   "request_timeout_ms", std::to_string(kRequestTimeoutMs),
                                   "enable_keep_alive",  "no"};
  CivetCallbacks callbacks{};
  callbacks.log_message = civet_log;
  {
    std::lock_guard<std::mutex> lock(g_civet_mu);
    g_civet_last.clear();
  }
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(options, &callbacks);
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(g_civet_mu);
    throw std::runtime_error("cannot serve metrics on " + a.str() + ": " +
                             (g_civet_last.empty() ? std::string(e.what()) : g_civet_last));
  }
  exposer_->RegisterCollectable(collectable_);
  std::vector<int> ports = exposer_->GetListeningPorts();
  port_ = ports.empty() ? a.port : static_cast<uint16_t>(ports.front());
}

namespace {
// Opens and closes one connection to a; errors do not matter.
void poke(const ListenAddress& a) {
  sockaddr_storage ss{};
  socklen_t len;
  if (a.v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(a.port);
    inet_pton(AF_INET6, a.host == "::" ? "::1" : a.host.c_str(), &s6->sin6_addr);
    len = sizeof(*s6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(a.port);
    inet_pton(AF_INET, a.host == "0.0.0.0" ? "127.0.0.1" : a.host.c_str(), &s4->sin_addr);
    len = sizeof(*s4);
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  (void)::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  ::close(fd);
}
}  // namespace

MetricsServer::~MetricsServer() {
  // civetweb's listener waits for connections in rounds of 2 s and sees that
  // it is to stop only between rounds: a connection ends the round, so that
  // stopping (SIGTERM) takes milliseconds instead of up to 2 s.
  std::atomic<bool> stopped{false};
  std::thread waker([&] {
    while (!stopped) {
      poke(address_);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  exposer_.reset();
  stopped = true;
  waker.join();
}

}  // namespace smtpgate
