// Prometheus exposition of the gate: counters per range (labels range, origin,
// kind; never a per-source label), per verdict and reason, ranges per origin,
// program attached per interface and its run time (where bpf_stats is on),
// events suppressed, failed reads of the maps, and the feed's state. Served
// over HTTP by prometheus-cpp's pull exposer and/or written as a
// node_exporter textfile; both read the maps when asked.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

#include "metrics_listen.hpp"
#include "state.hpp"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace smtpgate {

using MetricFamilies = std::vector<prometheus::MetricFamily>;

/// The exposition's families, read now from the pinned maps and the state
/// directory. interfaces: those the daemon guards (each gets
/// smtpgate_program_attached{interface=...}). extra: families other parts of
/// the daemon keep (the feed's checks), appended last.
MetricFamilies collect_metrics(const Paths& paths, const std::vector<std::string>& interfaces,
                               MetricFamilies extra = {});

/// collect_metrics as exposition text (Prometheus text format 0.0.4).
std::string render_metrics(const Paths& paths, const std::vector<std::string>& interfaces, MetricFamilies extra = {});

/// Writes the exposition atomically to path (node_exporter textfile collector).
void write_metrics_textfile(const std::string& path, const std::string& text);

/// Counts collections whose reading of the maps failed (one each, whatever
/// syscall failed); exported as a metric.
std::atomic<uint64_t>& bpf_syscall_failures();

/// GET /metrics on one listen address, through prometheus-cpp's exposer
/// (civetweb): each scrape calls collect on one of kThreads threads, so idle
/// or slow connections hold one thread each, for at most kRequestTimeoutMs.
class MetricsServer {
 public:
  static constexpr int kThreads = 64;
  static constexpr int kRequestTimeoutMs = 1000;

  /// Listens now; throws InputError (address) or SystemError (bind).
  MetricsServer(const std::string& listen, std::function<MetricFamilies()> collect);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  /// The port listened on.
  uint16_t port() const { return port_; }

 private:
  std::shared_ptr<prometheus::Collectable> collectable_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  ListenAddress address_;
  uint16_t port_ = 0;
};

}  // namespace smtpgate
