#include "metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <sstream>

#include "error.hpp"
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

std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

struct Family {
  std::string name, help, type;
  std::vector<std::string> lines;
};

class Exposition {
 public:
  void add(const std::string& name, const std::string& help, const std::string& type,
           const std::map<std::string, std::string>& labels, double value) {
    auto& f = fams_[name];
    if (f.name.empty()) {
      f.name = name;
      f.help = help;
      f.type = type;
      order_.push_back(name);
    }
    std::ostringstream l;
    l << name;
    if (!labels.empty()) {
      l << "{";
      bool first = true;
      for (const auto& [k, v] : labels) {
        l << (first ? "" : ",") << k << "=\"" << escape(v) << "\"";
        first = false;
      }
      l << "}";
    }
    l << " " << static_cast<uint64_t>(value);
    f.lines.push_back(l.str());
  }
  std::string str() const {
    std::ostringstream o;
    for (const auto& n : order_) {
      const auto& f = fams_.at(n);
      o << "# HELP " << f.name << " " << f.help << "\n# TYPE " << f.name << " " << f.type << "\n";
      for (const auto& l : f.lines) o << l << "\n";
    }
    return o.str();
  }

 private:
  std::map<std::string, Family> fams_;
  std::vector<std::string> order_;
};

}  // namespace

std::string render_metrics(const Paths& paths, const std::vector<std::string>& interfaces,
                           const MetricsExtra& extra) {
  Exposition e;
  for (const auto& ifname : interfaces) {
    bool attached = false;
    try {
      AttachedInfo a = query_attached(ifname, paths.pin_dir);
      attached = a.attached && a.uses_pinned_maps;
    } catch (...) {
    }
    e.add("smtpgate_program_attached", "1 when the gate is attached to the interface and uses the pinned maps",
          "gauge", {{"interface", ifname}}, attached ? 1 : 0);
  }
  if (GateMaps::pinned_at(paths.pin_dir)) {
    try {
      GateMaps maps = GateMaps::open_pinned(paths.pin_dir);
      std::vector<DesiredRange> desired = StateStore(paths.state_dir).desired_ranges();
      std::string action = to_string(maps.config().action);
      std::map<std::pair<std::string, std::string>, int> per_origin;
      auto rule_lines = [&](const std::string& range, const std::string& origin, const std::string& kind,
                            const sg_rule_counters& c) {
        std::map<std::string, std::string> l{{"range", range}, {"origin", origin}, {"kind", kind}};
        e.add("smtpgate_range_admitted_syns_total", "Guarded SYNs admitted, by deciding range", "counter", l,
              c.admit_packets);
        e.add("smtpgate_range_refused_syns_total",
              "Guarded SYNs refused (dropped, rejected or monitored), by deciding range", "counter", l,
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
      for (const auto& [k, n] : per_origin)
        e.add("smtpgate_ranges", "Ranges in the published allowlist, by origin and kind", "gauge",
              {{"origin", k.first}, {"kind", k.second}}, n);
      auto v = maps.verdict_counters();
      for (uint32_t i = 0; i < SG_VERDICT_MAX; i++) {
        e.add("smtpgate_packets_total", "Packets seen by the program, by verdict", "counter",
              {{"verdict", verdict_name(i)}}, v[i].packets);
        e.add("smtpgate_bytes_total", "Bytes seen by the program, by verdict", "counter",
              {{"verdict", verdict_name(i)}}, v[i].bytes);
      }
      auto r = maps.reason_counters();
      for (uint32_t i = 0; i < SG_REASON_MAX; i++)
        e.add("smtpgate_reason_packets_total", "Packets seen by the program, by reason", "counter",
              {{"reason", reason_name(i)}}, r[i].packets);
      e.add("smtpgate_events_suppressed_total", "Refusal events held back by the in-kernel rate limit", "counter",
            {}, maps.events_suppressed());
      e.add("smtpgate_recent_skipped_total",
            "Default-rule refusals not recorded in the recently-refused table (its per-CPU budget was spent)",
            "counter", {}, maps.recent_skipped());
      e.add("smtpgate_allowlist_generation", "Publishes of the allowlist since the maps were created", "gauge", {},
            maps.generation());
      e.add("smtpgate_action", "The action for refused sources (1 for the one in force)", "gauge",
            {{"action", action}}, 1);
    } catch (const std::exception& ex) {
      bpf_syscall_failures()++;
      spdlog::warn("metrics: reading the maps failed: {}", ex.what());
    }
  }
  try {
    FeedStatus f = read_feed_status(paths.state_dir);
    if (f.applied)
      e.add("smtpgate_feed_info", "The feed version applied (1 for the one in force)", "gauge",
            {{"instance", to_string(f.applied->instance)},
             {"version", f.applied->version.empty() ? "unversioned" : f.applied->version}},
            1);
    e.add("smtpgate_feed_last_check_timestamp_seconds", "When the feed was last checked (0: never)", "gauge", {},
          static_cast<double>(f.last_check));
    e.add("smtpgate_feed_last_success_timestamp_seconds",
          "When a check last ended with the latest version applied (0: never)", "gauge", {},
          static_cast<double>(f.last_success));
    e.add("smtpgate_feed_error", "1 when the last feed check failed or a version was refused", "gauge", {},
          f.last_error.empty() ? 0 : 1);
    e.add("smtpgate_feed_stale", "1 when the service announced a version that is not applied", "gauge", {},
          f.stale() ? 1 : 0);
  } catch (const std::exception& ex) {
    spdlog::warn("metrics: feed status unreadable: {}", ex.what());
  }
  e.add("smtpgate_bpf_syscall_failures_total", "BPF syscalls that failed while reading the gate", "counter", {},
        bpf_syscall_failures().load());
  std::string text = e.str();
  if (extra) text += extra();
  return text;
}

void write_metrics_textfile(const std::string& path, const std::string& text) {
  write_file_atomic(path, text, 0644);
}

MetricsServer::MetricsServer(const std::string& listen, std::function<std::string()> render)
    : render_(std::move(render)) {
  // "host:port" or "[v6]:port".
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) throw InputError("metrics.listen '" + listen + "': use HOST:PORT, e.g. 127.0.0.1:9725");
  std::string host = listen.substr(0, colon);
  int port = std::atoi(listen.c_str() + colon + 1);
  if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
  sockaddr_storage ss{};
  socklen_t len;
  if (inet_pton(AF_INET, host.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    len = sizeof(*a);
  } else if (inet_pton(AF_INET6, host.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) == 1) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    len = sizeof(*a);
  } else {
    throw InputError("metrics.listen '" + listen + "': the host must be an IP address, e.g. 127.0.0.1:9725");
  }
  fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd_, 16) != 0) {
    int err = errno;
    ::close(fd_);
    throw SystemError("listen for metrics on " + listen, err);
  }
  sockaddr_storage bound{};
  socklen_t bl = sizeof(bound);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &bl);
  port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{2, 0};
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      char buf[2048];
      ssize_t n = ::recv(c, buf, sizeof(buf) - 1, 0);
      std::string req = n > 0 ? std::string(buf, n) : "";
      std::string resp;
      if (req.rfind("GET /metrics", 0) == 0) {
        std::string body = render_();
        resp = "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
      } else {
        resp = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n";
      }
      size_t off = 0;
      while (off < resp.size()) {
        ssize_t w = ::send(c, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
        if (w <= 0) break;
        off += w;
      }
      ::close(c);
    }
  });
}

MetricsServer::~MetricsServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace smtpgate
