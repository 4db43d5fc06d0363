// What the gate is doing: status, stats, top, drops and explain.
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <iostream>
#include <string>
#include <thread>

#include "cidr.hpp"
#include "command.hpp"
#include "drops.hpp"
#include "feed_gap.hpp"
#include "feed_sync.hpp"
#include "report.hpp"

namespace smtpgate::ctl {
namespace {

using Render = std::string (*)(const nlohmann::json&);

// --watch of stats and top: redraw every SECONDS until interrupted.
struct WatchOption {
  double seconds = 0;
  const CLI::Option* given = nullptr;
};

void add_watch_option(CLI::App& cmd, WatchOption& w) {
  w.given = cmd.add_option("--watch", w.seconds, "Redraw every SECONDS (default 2) until interrupted")
                ->expected(0, 1)
                ->default_str("2")
                ->check(CLI::Range(0.1, 86400.0));
}

// Redraws every `seconds` until interrupted; JSON prints one object per line
// and refresh instead.
[[noreturn]] void watch(double seconds, bool as_json, const std::function<nlohmann::json()>& build, Render render) {
  while (true) {
    nlohmann::json j = build();
    if (as_json) {
      std::cout << j.dump() << std::endl;
    } else {
      time_t now = ::time(nullptr);
      std::cout << "\033[H\033[2J"
                << "every " << seconds << "s, " << rfc3339_utc(now) << " (Ctrl-C ends)\n\n"
                << render(j) << std::flush;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  }
}

// Prints what `build` makes once, or with --watch again and again.
int show(const Globals& g, const WatchOption& w, const std::function<nlohmann::json()>& build, Render render) {
  if (w.given->count()) watch(w.seconds, g.as_json, build, render);
  print(build(), g.as_json, render);
  return kExitOk;
}

int run_status(const Globals& g) {
  print(build_status(g.paths), g.as_json, render_status);
  return kExitOk;
}

int run_stats(const Globals& g, const WatchOption& w) {
  return show(
      g, w, [&] { return build_stats(g.paths); }, render_stats);
}

struct TopOptions {
  size_t limit = 20;
  std::string origin;
  WatchOption watch;
};

void top_options(CLI::App& cmd, TopOptions& o) {
  cmd.add_option("--limit", o.limit, "How many sources (default 20)")->check(CLI::Range(1, 100000));
  cmd.add_option("--origin", o.origin, "Only sources whose deciding range has this origin")
      ->check(CLI::IsMember({"operator", "feed", "feed-pending", "feed-grace", "feed-removed", "feed-other",
                             "eop-confirmed", "default", "unknown"}));
  add_watch_option(cmd, o.watch);
}

int run_top(const Globals& g, const TopOptions& o) {
  return show(
      g, o.watch, [&] { return build_top(g.paths, o.limit, o.origin); }, render_top);
}

struct DropsOptions {
  bool follow = false;
  std::string since;
};

void drops_options(CLI::App& cmd, DropsOptions& o) {
  cmd.add_flag("-f,--follow", o.follow, "Keep printing new ones until interrupted");
  cmd.add_option("--since", o.since, "From this long ago: 90s, 15m, 2h, 1d (default 1h; with --follow: now)");
}

int run_drops(const Globals& g, const DropsOptions& o) {
  int64_t since_s = o.since.empty() ? (o.follow ? 0 : 3600) : parse_duration_s(o.since);
  // Feed gaps as the daemon last recorded them, read again every 10 s.
  FeedGaps gaps = read_feed_gaps(g.paths.state_dir);
  auto gaps_read = std::chrono::steady_clock::now();
  stream_drops(g.paths, since_s, o.follow, [&](nlohmann::json r) {
    if (std::chrono::steady_clock::now() - gaps_read > std::chrono::seconds(10)) {
      gaps = read_feed_gaps(g.paths.state_dir);
      gaps_read = std::chrono::steady_clock::now();
    }
    mark_feed_gap(r, gaps);
    std::cout << (g.as_json ? r.dump() + "\n" : render_drop(r)) << std::flush;
  });
  return kExitOk;
}

struct ExplainOptions {
  std::string address;
};

void explain_options(CLI::App& cmd, ExplainOptions& o) {
  cmd.add_option("ADDR", o.address, "Source address, IPv4 or IPv6")->required();
}

int run_explain(const Globals& g, const ExplainOptions& o) {
  print(build_explain(g.paths, Cidr::parse_address(o.address)), g.as_json, render_explain);
  return kExitOk;
}

}  // namespace

Command<Globals> status_command() {
  return command("status", "Interfaces, XDP mode, action, ports, ranges per origin", run_status);
}

Command<Globals> stats_command() {
  return command("stats", "Counters per origin, per range, per verdict and reason", add_watch_option, run_stats);
}

Command<Globals> top_command() {
  return command("top", "The most turned-away sources, Microsoft's first", top_options, run_top);
}

Command<Globals> drops_command() {
  return command("drops", "Turned-away SYNs, one line each (time, source, port, range, origin, verdict)", drops_options,
                 run_drops);
}

Command<Globals> explain_command() {
  return command("explain", "The verdict a SYN from ADDR would get now, and why", explain_options, run_explain);
}

}  // namespace smtpgate::ctl
