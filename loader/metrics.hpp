// Prometheus exposition of the gate: counters per range (labels range, origin,
// kind; never a per-source label), per verdict and reason, ranges per origin,
// program attached per interface, events suppressed, syscall failures, and the
// feed's state. Served over HTTP and/or written as a node_exporter textfile.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "state.hpp"

namespace smtpgate {

/// Extra gauge lines from other parts of the daemon (the feed), already in
/// exposition format.
using MetricsExtra = std::function<std::string()>;

/// Renders the full exposition text now. interfaces: those the daemon guards
/// (each gets smtpgate_program_attached{interface=...}).
std::string render_metrics(const Paths& paths, const std::vector<std::string>& interfaces,
                           const MetricsExtra& extra = {});

/// Writes the exposition atomically to path (node_exporter textfile collector).
void write_metrics_textfile(const std::string& path, const std::string& text);

/// Counts failed BPF syscalls seen while rendering (exported as a metric).
std::atomic<uint64_t>& bpf_syscall_failures();

/// A minimal HTTP/1.0 server answering GET /metrics on one listen address
/// ("127.0.0.1:9725", "[::1]:9725"), on a thread of its own.
class MetricsServer {
 public:
  MetricsServer(const std::string& listen, std::function<std::string()> render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  /// The port actually bound (useful when listen asked for port 0).
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::function<std::string()> render_;
  std::thread thread_;
};

}  // namespace smtpgate
