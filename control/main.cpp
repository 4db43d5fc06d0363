// smtpgatectl: a thin command line over the smtpgate library. Reads work
// whether or not smtpgated runs; changes take the pin-dir lock.
// Exit codes: 0 ok, 1 error (one line on stderr), 2 usage.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <thread>

#include "cidr.hpp"
#include "cli.hpp"
#include "error.hpp"
#include "config.hpp"
#include "drops.hpp"
#include "feed.hpp"
#include "feed_gap.hpp"
#include "feed_mirror.hpp"
#include "feed_ranges.hpp"
#include "feed_settings.hpp"
#include "fsutil.hpp"
#include "gate.hpp"
#include "gate_program.hpp"
#include "log.hpp"
#include "report.hpp"
#include "state.hpp"

using namespace smtpgate;

namespace {

void print(const nlohmann::json& j, bool as_json, std::string (*render)(const nlohmann::json&)) {
  if (as_json)
    std::cout << j.dump(2) << "\n";
  else
    std::cout << render(j);
}

// --watch: redraw every `seconds` until interrupted; JSON prints one object
// per line and refresh instead.
void watch(double seconds, bool as_json, const std::function<nlohmann::json()>& build,
           std::string (*render)(const nlohmann::json&)) {
  while (true) {
    nlohmann::json j = build();
    if (as_json) {
      std::cout << j.dump() << std::endl;
    } else {
      time_t now = ::time(nullptr);
      std::cout << "\033[H\033[2J" << "every " << seconds << "s, " << rfc3339_utc(now) << " (Ctrl-C ends)\n\n"
                << render(j) << std::flush;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"smtpgatectl: control and explain the smtpgate XDP port-25 gate"};
  app.require_subcommand(1);
  // Options of a command also work after its subcommands ("feed sync
  // --feed-url URL", "stats -j"); subcommands made below inherit this.
  app.fallthrough();
  Paths paths;
  bool as_json = false;
  int verbose = 0;
  app.add_option("--pin-dir", paths.pin_dir, "Where the gate's maps are pinned")->capture_default_str();
  app.add_option("--state-dir", paths.state_dir, "Where the gate's state is kept")->capture_default_str();
  app.add_flag("-j,--json", as_json, "Print JSON (documented schema) instead of text");
  app.add_flag("-v,--verbose", verbose, "More logging; -vv includes libbpf and libxdp");

  auto* status = app.add_subcommand("status", "Interfaces, XDP mode, action, ports, ranges per origin");

  auto* ranges = app.add_subcommand("ranges", "List or change the operator's ranges");
  ranges->require_subcommand(1);
  auto* r_list = ranges->add_subcommand("list", "Every range the gate knows, with kind, origin and rule id");
  std::string cidr_text, comment, file;
  bool allow_reserved = false, deny = false;
  auto* r_add = ranges->add_subcommand("add", "Admit (or with --deny refuse) a range, now and after restarts");
  r_add->add_option("CIDR", cidr_text, "Range, e.g. 40.95.0.0/16 or 2a01:111:f400::/48")->required();
  r_add->add_option("--comment", comment, "Why the range is there");
  r_add->add_flag("--allow-reserved", allow_reserved, "Accept special-purpose space (private, loopback, ...)");
  r_add->add_flag("--deny", deny, "Refuse this range, even inside an admitted one");
  auto* r_del = ranges->add_subcommand("del", "Remove an operator range");
  r_del->add_option("CIDR", cidr_text, "Range as listed by 'ranges list'")->required();
  auto* r_import = ranges->add_subcommand("import", "Add every range of a file (one CIDR per line, # comments)");
  r_import->add_option("FILE", file, "Range file")->required();
  r_import->add_flag("--allow-reserved", allow_reserved, "Accept special-purpose space");
  r_import->add_flag("--deny", deny, "Import the ranges as deny ranges");

  auto* stats = app.add_subcommand("stats", "Counters per origin, per range, per verdict and reason");
  double watch_s = 0;
  auto add_watch = [&](CLI::App* cmd) {
    cmd->add_option("--watch", watch_s, "Redraw every SECONDS (default 2) until interrupted")
        ->expected(0, 1)
        ->default_str("2")
        ->check(CLI::Range(0.1, 86400.0));
  };
  add_watch(stats);

  size_t top_limit = 20;
  std::string top_origin;
  auto* top = app.add_subcommand("top", "The most turned-away sources, Microsoft's first");
  top->add_option("--limit", top_limit, "How many sources (default 20)")->check(CLI::Range(1, 100000));
  top->add_option("--origin", top_origin, "Only sources whose deciding range has this origin")
      ->check(CLI::IsMember({"operator", "feed", "feed-pending", "feed-grace", "feed-removed", "feed-other", "eop-confirmed", "default", "unknown"}));
  add_watch(top);

  bool follow = false;
  std::string since;
  auto* drops = app.add_subcommand("drops", "Turned-away SYNs, one line each (time, source, port, range, origin, verdict)");
  drops->add_flag("-f,--follow", follow, "Keep printing new ones until interrupted");
  drops->add_option("--since", since, "From this long ago: 90s, 15m, 2h, 1d (default 1h; with --follow: now)");

  std::string address;
  auto* explain = app.add_subcommand("explain", "The verdict a SYN from ADDR would get now, and why");
  explain->add_option("ADDR", address, "Source address, IPv4 or IPv6")->required();

  std::string action_word;
  auto* action = app.add_subcommand("action", "Set what happens to refused SYNs: drop, reject or monitor");
  action->add_option("ACTION", action_word, "drop (EOP: 4.4.315), reject (EOP: 4.4.316) or monitor")
      ->required()
      ->check(CLI::IsMember({"drop", "reject", "monitor"}));

  auto* feed = app.add_subcommand("feed", "Microsoft's endpoints feed: sync now, import a saved response, show its state");
  feed->require_subcommand(1);
  std::string instance, feed_url, config_path, feed_version;
  bool force = false;
  feed->add_option("--config", config_path, std::string("smtpgate.toml to read [feed] from (default ") +
                                                 kDefaultConfigPath + " when it exists)");
  feed->add_option("--instance", instance, "Worldwide, USGovDoD, USGovGCCHigh or China (default: the config's)");
  feed->add_option("--feed-url", feed_url, "The service or a mirror (default: the config's)");
  feed->add_flag("--force", force, "Apply even past max_removal_share, max_added_ranges and max_growth_share");
  auto* f_sync = feed->add_subcommand("sync", "Ask the service now, apply a new version if it passes validation");
  auto* f_import = feed->add_subcommand("import", "Apply a saved endpoints response (air-gapped gateways)");
  f_import->add_option("FILE", file, "Response of /endpoints/<Instance>?ServiceAreas=Exchange")->required();
  f_import->add_option("--version", feed_version, "Its feed version (10 digits), if known");
  auto* f_status = feed->add_subcommand("status", "Instance, applied version, last check, next check, last error");
  auto* f_mirror = feed->add_subcommand("mirror", "Write the service's answers into DIR for a static web server (a feed mirror)");
  f_mirror->add_option("DIR", file, "Directory the web server serves")->required();

  std::string ifname;
  auto* detach_cmd = app.add_subcommand("detach", "Remove the gate from an interface (other XDP programs stay)");
  detach_cmd->add_option("IF", ifname, "Interface")->required();

  if (auto code = parse_command_line(app, argc, argv)) return *code;

  init_logging(verbose);
  try {
    if (*status) {
      print(build_status(paths), as_json, render_status);
    } else if (*r_list) {
      print(build_ranges(paths), as_json, render_ranges);
    } else if (*r_add) {
      OperatorRange r{Cidr::parse(cidr_text), deny ? RuleKind::Deny : RuleKind::Admit, comment, 0};
      add_range(paths, r, allow_reserved);
      if (!as_json) std::cout << (deny ? "denied " : "admitted ") << r.cidr.str() << "\n";
    } else if (*r_del) {
      Cidr c = Cidr::parse(cidr_text);
      del_range(paths, c);
      if (!as_json) std::cout << "removed " << c.str() << "\n";
    } else if (*r_import) {
      size_t n = import_ranges(paths, file, deny ? RuleKind::Deny : RuleKind::Admit, allow_reserved);
      if (!as_json) std::cout << "imported " << n << " new range(s) from " << file << "\n";
    } else if (*stats || *top) {
      auto build = [&] { return *stats ? build_stats(paths) : build_top(paths, top_limit, top_origin); };
      auto render = *stats ? render_stats : render_top;
      if ((*stats ? stats : top)->count("--watch"))
        watch(watch_s, as_json, build, render);
      else
        print(build(), as_json, render);
    } else if (*drops) {
      int64_t since_s = since.empty() ? (follow ? 0 : 3600) : parse_duration_s(since);
      // Feed gaps as the daemon last recorded them, read again every 10 s.
      FeedGaps gaps = read_feed_gaps(paths.state_dir);
      auto gaps_read = std::chrono::steady_clock::now();
      stream_drops(paths, since_s, follow, [&](nlohmann::json r) {
        if (std::chrono::steady_clock::now() - gaps_read > std::chrono::seconds(10)) {
          gaps = read_feed_gaps(paths.state_dir);
          gaps_read = std::chrono::steady_clock::now();
        }
        mark_feed_gap(r, gaps);
        std::cout << (as_json ? r.dump() + "\n" : render_drop(r)) << std::flush;
      });
    } else if (*explain) {
      print(build_explain(paths, Cidr::parse_address(address)), as_json, render_explain);
    } else if (*action) {
      Action a = parse_action(action_word);
      set_action(paths, a);
      if (!as_json) std::cout << "action " << action_word << ": refused senders see " << eop_code_for(a) << "\n";
    } else if (*f_import || *f_sync || *f_mirror) {
      DaemonConfig cfg;
      // The running smtpgated's feed settings, else the configuration file.
      FeedSettingsChoice chosen = choose_feed_settings(paths, config_path, kDefaultConfigPath);
      cfg.feed = chosen.feed;
      spdlog::info("feed settings of {}: {} {}", chosen.source, cfg.feed.url, cfg.feed.instance);
      cfg.paths = paths;
      if (!instance.empty()) cfg.feed.instance = instance;
      if (!feed_url.empty()) cfg.feed.url = feed_url;
      if (force) cfg.feed.force = true;
      if (*f_mirror) {
        MirrorResult m = write_feed_mirror(cfg, file);
        for (const auto& w : m.warnings) std::cerr << "smtpgatectl: warning: " << w << "\n";
        if (!as_json) std::cout << m.message << "\n";
        return kExitOk;
      }
      SyncResult r = run_feed(cfg, *f_import ? FeedOp::Import : FeedOp::SyncNow, ::time(nullptr), file, feed_version);
      for (const auto& w : r.warnings) std::cerr << "smtpgatectl: warning: " << w << "\n";
      bool ok = r.outcome == SyncOutcome::Applied || r.outcome == SyncOutcome::Unchanged;
      if (!ok) {
        std::cerr << "smtpgatectl: " << r.message << "\n";
        return kExitError;
      }
      if (!as_json) std::cout << r.message << "\n";
    } else if (*f_status) {
      FeedSettingsChoice chosen = choose_feed_settings(paths, config_path, kDefaultConfigPath);
      if (!instance.empty()) chosen.feed.instance = instance;
      if (!feed_url.empty()) chosen.feed.url = feed_url;
      print(build_feed_status(paths, chosen), as_json, render_feed_status);
    } else if (*detach_cmd) {
      if (!detach(ifname)) {
        std::cerr << "smtpgatectl: no smtpgate program is attached to " << ifname << "\n";
        return 1;
      }
      if (!as_json) std::cout << "detached from " << ifname << " (maps stay pinned at " << paths.pin_dir << ")\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "smtpgatectl: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
