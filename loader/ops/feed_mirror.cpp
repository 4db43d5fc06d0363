#include "feed_mirror.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>

#include "error.hpp"
#include "feed.hpp"
#include "feed_client.hpp"
#include "feed_ranges.hpp"
#include "fsutil.hpp"
#include "http.hpp"

namespace smtpgate {

namespace {
constexpr const char* kAllChanges = "0000000000";
}  // namespace

MirrorResult write_feed_mirror(const DaemonConfig& cfg, const std::string& dir) {
  if (dir.empty()) throw InputError("feed mirror: give the directory the web server serves");
  Instance instance = parse_instance(cfg.feed.instance);
  std::string name = to_string(instance);
  FeedClientOptions options = feed_client_options(cfg);
  FeedClient client(options);  // the URLs and the ClientRequestId gateways send
  HttpClient http(options.http);
  MirrorResult m;

  std::string version_url = client.version_url(instance);
  std::string version_body = http.get(version_url).body;
  m.version = parse_version(version_body, instance, "version response from " + display_url(version_url)).latest;

  std::string endpoints_url = client.endpoints_url(instance);
  std::string endpoints_body = http.get(endpoints_url).body;
  std::string source = "endpoints response from " + display_url(endpoints_url);
  Port25Selection sel = select_port25(parse_endpoints(endpoints_body, source), instance, source);
  for (auto& w : sel.warnings) m.warnings.push_back(std::move(w));
  // What a gateway would refuse is not served: a mirror must not spread it.
  validate_feed_update({}, sel.ranges, feed_sync_options(cfg).policy, "feed version " + m.version);
  m.port25_ranges = sel.ranges.size();

  // The change log answers "changes since V" for every V it names: one file
  // per version, holding the records after it.
  std::vector<std::pair<std::string, std::string>> change_files;
  std::string changes_url = client.changes_url(instance, kAllChanges);
  try {
    std::string body = http.get(changes_url).body;
    parse_changes(body, "changes response from " + display_url(changes_url));
    nlohmann::json records = nlohmann::json::parse(body);
    // Gateways ask since the version they applied: one this mirror served
    // before (its files are rewritten), or one the log names.
    std::set<std::string> versions{kAllChanges};
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(dir + "/changes/" + name, ec))
      if (is_feed_version(f.path().filename().string())) versions.insert(f.path().filename().string());
    if (file_exists(dir + "/version/" + name)) {
      try {
        versions.insert(parse_version(read_file(dir + "/version/" + name), instance, "mirrored version").latest);
      } catch (const std::exception&) {
        // a damaged file is simply replaced below
      }
    }
    for (const auto& r : records)
      if (r.contains("version") && r["version"].is_string() && is_feed_version(r["version"].get<std::string>()))
        versions.insert(r["version"].get<std::string>());
    for (const auto& since : versions) {
      nlohmann::json after = nlohmann::json::array();
      for (const auto& r : records)
        if (r.contains("version") && r["version"].is_string() && r["version"].get<std::string>() > since)
          after.push_back(r);
      change_files.emplace_back("changes/" + name + "/" + since, after.dump() + "\n");
    }
  } catch (const std::exception& e) {
    m.warnings.push_back("the change log is not mirrored (" + std::string(e.what()) +
                         "); gateways log added ranges without effective dates");
  }

  make_dirs(dir + "/version", 0755);
  make_dirs(dir + "/endpoints", 0755);
  if (!change_files.empty()) make_dirs(dir + "/changes/" + name, 0755);
  write_file_atomic(dir + "/endpoints/" + name, endpoints_body, 0644);
  for (const auto& [path, text] : change_files) write_file_atomic(dir + "/" + path, text, 0644);
  write_file_atomic(dir + "/version/" + name, version_body, 0644);
  m.change_files = change_files.size();
  m.message = "mirrored " + name + " version " + m.version + " (" + std::to_string(m.port25_ranges) +
              " port-25 ranges, " + std::to_string(m.change_files) + " change files) into " + dir;
  return m;
}

}  // namespace smtpgate
