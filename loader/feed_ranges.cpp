#include "feed_ranges.hpp"

#include <spdlog/spdlog.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "error.hpp"
#include "fsutil.hpp"
#include "gate.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {
std::string path_of(const std::string& dir) { return dir + "/feed.json"; }
}  // namespace

FeedState load_feed_state(const std::string& state_dir) {
  FeedState s;
  std::string path = path_of(state_dir);
  if (!file_exists(path)) return s;
  try {
    json j = json::parse(read_file(path));
    s.last_check_unix = j.value("last_check", int64_t{0});
    s.last_error = j.value("last_error", "");
    s.latest_version = j.value("latest_version", "");
    if (j.contains("applied") && !j["applied"].is_null()) {
      const json& a = j["applied"];
      FeedRecord r;
      r.instance = a.at("instance").get<std::string>();
      r.version = a.value("version", "");
      r.source = a.value("source", "");
      r.fetched_unix = a.value("fetched", int64_t{0});
      r.set_ids = a.value("set_ids", std::vector<int>{});
      for (const auto& c : a.at("ranges")) r.ranges.push_back(Cidr::parse(c.get<std::string>()));
      s.applied = r;
    }
  } catch (const std::exception& e) {
    std::string aside = set_aside(path);
    throw InputError(path + " is corrupt (" + e.what() + "); moved to " + aside +
                     ": run 'smtpgatectl feed sync' or 'feed import FILE' to restore the feed");
  }
  return s;
}

void save_feed_state(const std::string& state_dir, const FeedState& s) {
  json j{{"version", 1}, {"last_check", s.last_check_unix}, {"last_error", s.last_error},
         {"latest_version", s.latest_version}, {"applied", nullptr}};
  if (s.applied) {
    json ranges = json::array();
    for (const auto& c : s.applied->ranges) ranges.push_back(c.str());
    j["applied"] = {{"instance", s.applied->instance}, {"version", s.applied->version},
                    {"source", s.applied->source},     {"fetched", s.applied->fetched_unix},
                    {"set_ids", s.applied->set_ids},   {"ranges", ranges}};
  }
  make_dirs(state_dir, 0755);
  write_file_atomic(path_of(state_dir), j.dump(2) + "\n");
}

std::vector<DesiredRange> feed_desired_ranges(const std::string& state_dir) {
  std::vector<DesiredRange> out;
  FeedState s = load_feed_state(state_dir);
  if (!s.applied) return out;
  std::string note = s.applied->instance + (s.applied->version.empty() ? "" : " version " + s.applied->version) +
                     " (" + s.applied->source + ")";
  for (const auto& c : s.applied->ranges) out.push_back(DesiredRange{c, RuleKind::Admit, origin::kFeed, note});
  return out;
}

FeedRecord import_feed(const Paths& paths, const std::string& file, Instance instance, const FeedPolicy& policy) {
  std::string text = read_file(file);
  std::vector<EndpointSet> sets = parse_endpoints(text, file);
  Port25Selection sel = select_port25(sets, instance, file);
  for (const auto& w : sel.warnings) spdlog::warn("{}", w);

  GateLock lock(paths);
  FeedState before = load_feed_state(paths.state_dir);
  FeedState after = before;
  after.last_check_unix = ::time(nullptr);
  std::vector<Cidr> current = before.applied ? before.applied->ranges : std::vector<Cidr>{};
  try {
    validate_feed_update(current, sel.ranges, policy, "the feed in " + file);
  } catch (const InputError& e) {
    after.last_error = e.what();
    save_feed_state(paths.state_dir, after);
    throw;
  }
  FeedRecord rec;
  rec.instance = to_string(instance);
  rec.source = "import " + file;
  rec.fetched_unix = after.last_check_unix;
  rec.set_ids = sel.set_ids;
  rec.ranges = sel.ranges;
  after.applied = rec;
  after.last_error.clear();
  save_feed_state(paths.state_dir, after);
  try {
    PublishResult r;
    if (republish_if_pinned(paths, &r))
      for (const auto& e : r.added) spdlog::info("feed import: {} added", e.prefix.str());
  } catch (...) {
    save_feed_state(paths.state_dir, before);
    throw;
  }
  return rec;
}

}  // namespace smtpgate
