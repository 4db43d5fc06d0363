// Microsoft's endpoints feed: feed sync, import, status and mirror, under
// the feed's own options (--config, --instance, --feed-url, --force).
#include <spdlog/spdlog.h>

#include <ctime>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "command.hpp"
#include "config.hpp"
#include "feed_mirror.hpp"
#include "feed_ranges.hpp"
#include "feed_settings.hpp"
#include "report.hpp"

namespace smtpgate::ctl {
namespace {

// The options of feed itself, which say whose feed settings to use.
struct FeedSettingsOptions {
  std::string config_path;
  std::string instance;
  std::string url;
  bool force = false;
};

// What the feed commands see: the global options and feed's own.
struct FeedScope {
  const Globals& globals;
  FeedSettingsOptions settings;
};

void feed_settings_options(CLI::App& cmd, FeedSettingsOptions& o) {
  cmd.add_option("--config", o.config_path,
                 std::string("smtpgate.toml to read [feed] from (default ") + kDefaultConfigPath + " when it exists)");
  cmd.add_option("--instance", o.instance, "Worldwide, USGovDoD, USGovGCCHigh or China (default: the config's)");
  cmd.add_option("--feed-url", o.url, "The service or a mirror (default: the config's)");
  cmd.add_flag("--force", o.force, "Apply even past max_removal_share, max_added_ranges and max_growth_share");
}

// The running smtpgated's feed settings, else the configuration file.
FeedSettingsChoice choose_settings(const FeedScope& s) {
  return choose_feed_settings(s.globals.paths, s.settings.config_path, kDefaultConfigPath);
}

// --instance and --feed-url, over the chosen settings.
void apply_overrides(const FeedSettingsOptions& o, FeedConfig& feed) {
  if (!o.instance.empty()) feed.instance = o.instance;
  if (!o.url.empty()) feed.url = o.url;
}

// The configuration a feed operation runs with (--force included).
DaemonConfig feed_config(const FeedScope& s) {
  DaemonConfig cfg;
  FeedSettingsChoice chosen = choose_settings(s);
  cfg.feed = chosen.feed;
  spdlog::info("feed settings of {}: {} {}", chosen.source, cfg.feed.url, cfg.feed.instance);
  cfg.paths = s.globals.paths;
  apply_overrides(s.settings, cfg.feed);
  if (s.settings.force) cfg.feed.force = true;
  return cfg;
}

void print_warnings(const std::vector<std::string>& warnings) {
  for (const auto& w : warnings) std::cerr << "smtpgatectl: warning: " << w << "\n";
}

// Runs a sync or an import; fails when the version was neither applied nor
// already the applied one.
int run_feed_op(const FeedScope& s, FeedOp op, const std::string& file, const std::string& version) {
  SyncResult r = run_feed(feed_config(s), op, ::time(nullptr), file, version);
  print_warnings(r.warnings);
  bool ok = r.outcome == SyncOutcome::Applied || r.outcome == SyncOutcome::Unchanged;
  if (!ok) {
    std::cerr << "smtpgatectl: " << r.message << "\n";
    return kExitError;
  }
  if (!s.globals.as_json) std::cout << r.message << "\n";
  return kExitOk;
}

int run_sync(const FeedScope& s) { return run_feed_op(s, FeedOp::SyncNow, "", ""); }

struct ImportOptions {
  std::string file;
  std::string version;
};

void import_options(CLI::App& cmd, ImportOptions& o) {
  cmd.add_option("FILE", o.file, "Response of /endpoints/<Instance>?ServiceAreas=Exchange")->required();
  cmd.add_option("--version", o.version, "Its feed version (10 digits), if known");
}

int run_import(const FeedScope& s, const ImportOptions& o) { return run_feed_op(s, FeedOp::Import, o.file, o.version); }

int run_status(const FeedScope& s) {
  FeedSettingsChoice chosen = choose_settings(s);
  apply_overrides(s.settings, chosen.feed);
  print(build_feed_status(s.globals.paths, chosen), s.globals.as_json, render_feed_status);
  return kExitOk;
}

struct MirrorOptions {
  std::string dir;
};

void mirror_options(CLI::App& cmd, MirrorOptions& o) {
  cmd.add_option("DIR", o.dir, "Directory the web server serves")->required();
}

int run_mirror(const FeedScope& s, const MirrorOptions& o) {
  MirrorResult m = write_feed_mirror(feed_config(s), o.dir);
  print_warnings(m.warnings);
  if (!s.globals.as_json) std::cout << m.message << "\n";
  return kExitOk;
}

CommandTable<FeedScope> feed_commands() {
  return {
      command("sync", "Ask the service now, apply a new version if it passes validation", run_sync),
      command("import", "Apply a saved endpoints response (air-gapped gateways)", import_options, run_import),
      command("status", "Instance, applied version, last check, next check, last error", run_status),
      command("mirror", "Write the service's answers into DIR for a static web server (a feed mirror)", mirror_options,
              run_mirror),
  };
}

Run define_feed(CLI::App& cmd, const Globals& g) {
  cmd.require_subcommand(1);
  auto scope = std::make_shared<FeedScope>(FeedScope{g, {}});
  feed_settings_options(cmd, scope->settings);
  Run run = add_commands(cmd, feed_commands(), *scope);
  return [scope, run] { return run(); };
}

}  // namespace

Command<Globals> feed_command() {
  return {"feed", "Microsoft's endpoints feed: sync now, import a saved response, show its state", define_feed};
}

}  // namespace smtpgate::ctl
