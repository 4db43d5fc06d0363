#include "feed_settings.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <fstream>

#include "error.hpp"
#include "fsutil.hpp"
#include "http.hpp"

namespace smtpgate {

namespace {
using nlohmann::json;

// Far more than the settings take; a larger file is not the daemon's.
constexpr off_t kMaxSettingsBytes = 64 * 1024;

std::string settings_path(const std::string& state_dir) { return state_dir + "/" + kFeedSettingsFile; }

json to_json(const FeedConfig& f) {
  return {{"enabled", f.enabled},
          {"instance", f.instance},
          {"url", f.url},
          {"interval_s", f.interval_s},
          {"proxy", f.proxy},
          {"ipv6", f.ipv6},
          {"min_prefix_v4", f.min_prefix_v4},
          {"min_prefix_v6", f.min_prefix_v6},
          {"max_removal_share", f.max_removal_share},
          {"max_added_ranges", f.max_added_ranges},
          {"max_growth_share", f.max_growth_share},
          {"force", f.force},
          {"allow_http", f.allow_http},
          {"ca_file", f.ca_file},
          {"watch_other_instances", f.watch_other_instances},
          {"removal_grace_days", f.removal_grace_days}};
}

FeedConfig feed_config_from_json(const json& j) {
  FeedConfig f;
  f.enabled = j.at("enabled").get<bool>();
  f.instance = j.at("instance").get<std::string>();
  f.url = j.at("url").get<std::string>();
  f.interval_s = j.at("interval_s").get<uint32_t>();
  f.proxy = j.at("proxy").get<std::string>();
  f.ipv6 = j.at("ipv6").get<bool>();
  f.min_prefix_v4 = j.at("min_prefix_v4").get<unsigned>();
  f.min_prefix_v6 = j.at("min_prefix_v6").get<unsigned>();
  f.max_removal_share = j.at("max_removal_share").get<double>();
  f.max_added_ranges = j.at("max_added_ranges").get<uint32_t>();
  f.max_growth_share = j.at("max_growth_share").get<double>();
  f.force = j.at("force").get<bool>();
  f.allow_http = j.at("allow_http").get<bool>();
  f.ca_file = j.at("ca_file").get<std::string>();
  f.watch_other_instances = j.at("watch_other_instances").get<bool>();
  f.removal_grace_days = j.value("removal_grace_days", f.removal_grace_days);
  // The same checks the daemon passed when it started.
  parse_instance(f.instance);
  check_fetch_url(f.url, f.allow_http);
  return f;
}

// True while pid is an smtpgated: the daemon's lock holder may not be
// visible in /proc/locks (another PID namespace), its pid file entry is.
bool is_smtpgated(int pid) {
  if (pid <= 0) return false;
  std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name == "smtpgated";
}
}  // namespace

void write_daemon_feed_settings(const DaemonConfig& cfg, const std::string& config_file) {
  json j = {{"pid", static_cast<int>(::getpid())},
            {"written_at", static_cast<int64_t>(::time(nullptr))},
            {"config_file", config_file},
            {"feed", to_json(cfg.feed)}};
  write_file_atomic(settings_path(cfg.paths.state_dir), j.dump(2) + "\n", 0600);
}

std::optional<DaemonFeedSettings> read_daemon_feed_settings(const Paths& paths) {
  std::string path = settings_path(paths.state_dir);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  auto broken = [&](const std::string& why) {
    return InputError(path + " " + why +
                      ": reload smtpgated (systemctl reload smtpgated) to write it again, or name the feed with "
                      "--config FILE or --feed-url URL");
  };
  if (!S_ISREG(st.st_mode) || st.st_size > kMaxSettingsBytes)
    throw broken("is not the daemon's settings file (not a regular file of at most 64 KiB)");
  DaemonFeedSettings s;
  try {
    json j = json::parse(read_file(path));
    s.pid = j.at("pid").get<int>();
    s.written_at = j.at("written_at").get<int64_t>();
    s.config_file = j.at("config_file").get<std::string>();
    s.feed = feed_config_from_json(j.at("feed"));
  } catch (const std::exception& e) {
    throw broken("does not parse (" + std::string(e.what()).substr(0, 160) + ")");
  }
  std::optional<LockHolder> holder = lock_holder(paths.state_dir + "/daemon.lock");
  s.running = (holder && holder->pid == s.pid) || (!holder && is_smtpgated(s.pid));
  return s;
}

FeedSettingsChoice choose_feed_settings(const Paths& paths, const std::string& explicit_config,
                                        const std::string& default_config) {
  FeedSettingsChoice c;
  if (explicit_config.empty()) {
    std::optional<DaemonFeedSettings> d = read_daemon_feed_settings(paths);
    if (d && d->running) {
      c.feed = d->feed;
      c.source = "smtpgated (pid " + std::to_string(d->pid) + ")";
      return c;
    }
  }
  std::string file = !explicit_config.empty()                                 ? explicit_config
                     : !default_config.empty() && file_exists(default_config) ? default_config
                                                                              : std::string();
  if (file.empty()) {
    c.source = "defaults";
    return c;
  }
  DaemonConfig cfg;
  load_config_file(file, cfg);
  c.feed = cfg.feed;
  c.source = file;
  return c;
}

json feed_settings_json(const FeedSettingsChoice& c) {
  return {{"source", c.source},          {"url", c.feed.url},
          {"instance", c.feed.instance}, {"interval_s", c.feed.interval_s},
          {"enabled", c.feed.enabled},   {"removal_grace_days", c.feed.removal_grace_days}};
}

}  // namespace smtpgate
