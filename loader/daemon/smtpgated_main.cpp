// smtpgated: attaches the smtpgate XDP gate, keeps its allowlist equal to the
// operator's ranges and Microsoft's feed, and leaves it filtering when stopped.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "cli.hpp"
#include "config.hpp"
#include "daemon.hpp"
#include "error.hpp"
#include "fsutil.hpp"
#include "gate.hpp"
#include "gate_maps.hpp"
#include "log.hpp"

using namespace smtpgate;

int main(int argc, char** argv) {
  CLI::App app{"smtpgated: the smtpgate daemon (XDP port-25 gate for mail from Exchange Online Protection)"};
  std::string config_path;
  std::vector<std::string> interfaces;
  std::string mode, action, pin_dir, state_dir, feed_url, instance, metrics_listen, metrics_textfile;
  std::vector<uint16_t> ports;
  bool allow_empty = false, no_attach = false, check_config = false, no_feed = false, force = false;
  int verbose = 0;
  app.add_option("-c,--config", config_path,
                 "Configuration file (default " + std::string(kDefaultConfigPath) + " when it exists)");
  app.add_option("-i,--interface", interfaces, "Interface to guard (repeatable)");
  app.add_option("--mode", mode, "XDP mode: native (default) or skb")->check(CLI::IsMember({"native", "skb"}));
  app.add_option("--action", action, "Refused SYNs: drop, reject or monitor")
      ->check(CLI::IsMember({"drop", "reject", "monitor"}));
  app.add_option("--ports", ports, "Guarded TCP ports (default 25)")->delimiter(',');
  app.add_option("--pin-dir", pin_dir, std::string("Pin directory (default ") + kDefaultPinDir + ")");
  app.add_option("--state-dir", state_dir, std::string("State directory (default ") + kDefaultStateDir + ")");
  app.add_flag("--allow-empty", allow_empty, "Attach even with an empty allowlist (refuses all port-25 SYNs)");
  app.add_flag("--no-attach", no_attach,
               "Use maps pinned at --pin-dir by another loader (bpfman): publish and sync only, "
               "no load, attach or detach");
  app.add_option("--feed-url", feed_url, "Base URL of the Microsoft 365 endpoints service or a mirror");
  app.add_option("--instance", instance, "Feed instance: Worldwide, USGovDoD, USGovGCCHigh or China");
  app.add_flag("--no-feed", no_feed, "Do not fetch Microsoft's feed (operator ranges and imported feeds only)");
  app.add_flag("--force", force, "Apply feed versions past max_removal_share, max_added_ranges and max_growth_share");
  app.add_option("--metrics-listen", metrics_listen,
                 "Serve Prometheus metrics at ADDR:PORT (default 127.0.0.1:9725; \"\" = off)");
  app.add_option("--metrics-textfile", metrics_textfile, "Also write metrics to this node_exporter textfile");
  app.add_flag("--check-config", check_config, "Validate the configuration and exit");
  app.add_flag("-v,--verbose", verbose, "More logging; -vv includes libbpf and libxdp");
  if (auto code = parse_command_line(app, argc, argv)) return *code;

  init_logging(verbose);
  try {
    DaemonConfig cfg;
    if (config_path.empty() && file_exists(kDefaultConfigPath)) config_path = kDefaultConfigPath;
    if (!config_path.empty()) load_config_file(config_path, cfg);
    if (!interfaces.empty()) cfg.interfaces = interfaces;
    if (!mode.empty()) cfg.mode = parse_mode(mode);
    if (!action.empty()) cfg.action = parse_action(action);
    if (!ports.empty()) cfg.ports = ports;
    if (!pin_dir.empty()) cfg.paths.pin_dir = pin_dir;
    if (!state_dir.empty()) cfg.paths.state_dir = state_dir;
    if (allow_empty) cfg.allow_empty = true;
    if (no_attach) cfg.no_attach = true;
    if (!feed_url.empty()) cfg.feed.url = feed_url;
    if (!instance.empty()) cfg.feed.instance = instance;
    if (no_feed) cfg.feed.enabled = false;
    if (force) cfg.feed.force = true;
    if (app.count("--metrics-listen")) cfg.metrics.listen = metrics_listen;
    if (!metrics_textfile.empty()) cfg.metrics.textfile = metrics_textfile;
    validate_config(cfg);
    if (check_config) {
      std::cout << (config_path.empty() ? std::string("defaults") : config_path) << ": configuration is valid\n"
                << describe(memory_budget(cfg)) << "\n";
      return 0;
    }
    if (cfg.no_attach && !GateMaps::pinned_at(cfg.paths.pin_dir))
      throw InputError("--no-attach: no smtpgate maps are pinned at " + cfg.paths.pin_dir +
                       ": load the program first (bpfman) or pass the --pin-dir where its maps are");
    DaemonLock lock(cfg.paths);  // before anything changes, for the daemon's whole life
    return run_daemon(cfg, config_path);
  } catch (const std::exception& e) {
    std::cerr << "smtpgated: " << e.what() << "\n";
    return 1;
  }
}
