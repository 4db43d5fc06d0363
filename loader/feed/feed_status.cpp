#include "feed_status.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "error.hpp"
#include "fsutil.hpp"
#include "state_file.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {
std::string path_of(const std::string& dir) { return dir + "/feed.json"; }

json cidrs_json(const std::vector<Cidr>& v) {
  json a = json::array();
  for (const auto& c : v) a.push_back(c.str());
  return a;
}

std::vector<Cidr> cidrs_from(const json& a) {
  std::vector<Cidr> out;
  for (const auto& c : a) out.push_back(Cidr::parse(c.get<std::string>()));
  return out;
}

std::string checked_version(const json& j, const char* key) {
  std::string v = j.value(key, std::string());
  if (!v.empty() && !is_feed_version(v)) throw InputError(std::string(key) + " '" + v + "' is not 10 digits");
  return v;
}

json snapshot_json(const FeedSnapshot& s) {
  json dates = json::object();
  for (const auto& [c, d] : s.effective_dates) dates[c.str()] = d;
  // Keys shared with the first feed.json layout (feed import), so either
  // reader understands either writer.
  return {{"instance", to_string(s.instance)}, {"version", s.version}, {"source", s.source},
          {"fetched", s.fetched_at},           {"set_ids", s.set_ids}, {"ranges", cidrs_json(s.ranges)},
          {"effective_dates", dates}};
}

FeedSnapshot snapshot_from(const json& j) {
  FeedSnapshot s;
  s.instance = parse_instance(j.at("instance").get<std::string>());
  s.version = checked_version(j, "version");
  s.source = j.value("source", std::string());
  s.fetched_at = j.value("fetched", int64_t{0});
  s.set_ids = j.value("set_ids", std::vector<int>{});
  s.ranges = cidrs_from(j.at("ranges"));
  std::sort(s.ranges.begin(), s.ranges.end());
  s.ranges.erase(std::unique(s.ranges.begin(), s.ranges.end()), s.ranges.end());
  if (j.contains("effective_dates"))
    for (const auto& [k, v] : j.at("effective_dates").items()) {
      std::string d = v.get<std::string>();
      if (!is_feed_date(d)) throw InputError("effective date '" + d + "' is not 8 digits");
      s.effective_dates[Cidr::parse(k)] = d;
    }
  return s;
}
}  // namespace

std::string rfc3339_utc(int64_t unix_s) {
  time_t tt = static_cast<time_t>(unix_s);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}
std::string time_or_never(int64_t unix_s) { return unix_s <= 0 ? "never" : rfc3339_utc(unix_s); }

bool FeedStatus::stale() const { return !latest_version.empty() && (!applied || applied->version != latest_version); }

json to_json(const FeedStatus& s) {
  json j{{"version", 1},
         {"instance", s.instance},
         {"applied", s.applied ? snapshot_json(*s.applied) : json(nullptr)},
         {"latest_version", s.latest_version},
         {"stale", s.stale()},
         {"last_check", s.last_check},
         {"last_success", s.last_success},
         {"next_check", s.next_check},
         {"rate_limited_until", s.rate_limited_until},
         {"last_error", s.last_error},
         {"rejected", nullptr},
         {"recently_removed", json::array()}};
  if (s.rejected)
    j["rejected"] = {{"version", s.rejected->version}, {"reason", s.rejected->reason},
                     {"at", s.rejected->at},           {"source", s.rejected->source},
                     {"set_ids", s.rejected->set_ids}, {"ranges", cidrs_json(s.rejected->ranges)},
                     {"watched", s.rejected->watched}};
  for (const auto& r : s.recently_removed)
    j["recently_removed"].push_back({{"range", r.cidr.str()},
                                     {"version", r.version},
                                     {"removed_at", r.removed_at},
                                     {"grace_until", r.grace_until},
                                     {"grace_over", r.grace_over}});
  return j;
}

FeedStatus feed_status_from_json(const json& j) {
  if (!j.is_object()) throw InputError("not a JSON object");
  FeedStatus s;
  s.instance = j.value("instance", std::string());
  if (j.contains("applied") && !j.at("applied").is_null()) s.applied = snapshot_from(j.at("applied"));
  s.latest_version = checked_version(j, "latest_version");
  s.last_check = j.value("last_check", int64_t{0});
  s.last_success = j.value("last_success", int64_t{0});
  s.next_check = j.value("next_check", int64_t{0});
  s.rate_limited_until = j.value("rate_limited_until", int64_t{0});
  s.last_error = j.value("last_error", std::string());
  if (j.contains("rejected") && !j.at("rejected").is_null()) {
    const json& r = j.at("rejected");
    RejectedVersion rv;
    rv.version = checked_version(r, "version");
    rv.reason = r.value("reason", std::string());
    rv.at = r.value("at", int64_t{0});
    rv.source = r.value("source", std::string());
    rv.set_ids = r.value("set_ids", std::vector<int>{});
    rv.ranges = cidrs_from(r.at("ranges"));
    rv.watched = r.value("watched", true);
    s.rejected = rv;
  }
  if (j.contains("recently_removed"))
    for (const auto& r : j.at("recently_removed"))
      s.recently_removed.push_back(RemovedRange{Cidr::parse(r.at("range").get<std::string>()),
                                                r.value("version", std::string()), r.value("removed_at", int64_t{0}),
                                                r.value("grace_until", int64_t{0}), r.value("grace_over", false)});
  return s;
}

FeedStatus read_feed_status(const std::string& state_dir, bool set_aside_corrupt) {
  FeedStatus s;
  read_state_json(
      path_of(state_dir), [&](const json& doc) { s = feed_status_from_json(doc); },
      [&](const CorruptFile& c) {
        const std::string cause = c.cause.substr(0, 160);
        if (c.moved_to.empty()) {
          s.last_error = c.path + " is corrupt (" + cause + ")";
          return;
        }
        s.last_error = c.path + " was corrupt (" + cause + "); moved to " + c.moved_to +
                       "; the feed is fetched again (or run 'smtpgatectl feed import FILE')";
        spdlog::error("{}", s.last_error);
      },
      set_aside_corrupt);
  return s;
}

void write_feed_status(const std::string& state_dir, const FeedStatus& s) {
  make_dirs(state_dir, 0755);
  // Messages are made valid UTF-8 where they are made (feed_parse.cpp's preview);
  // should one slip through, a replaced byte beats a check that is never
  // recorded (and so never backed off).
  write_file_atomic(path_of(state_dir), to_json(s).dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}
}  // namespace smtpgate
