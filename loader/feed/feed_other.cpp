#include "feed_other.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "error.hpp"
#include "feed_sync.hpp"
#include "fsutil.hpp"
#include "state_file.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {

std::string path_of(const std::string& dir) { return dir + "/feed-other.json"; }

json set_json(const OtherInstanceSet& s) {
  json ranges = json::array();
  for (const auto& c : s.ranges) ranges.push_back(c.str());
  return {{"instance", to_string(s.instance)},
          {"version", s.version.empty() ? json(nullptr) : json(s.version)},
          {"source", s.source},
          {"fetched", s.fetched_at},
          {"set_ids", s.set_ids},
          {"ranges", ranges},
          {"last_check", s.last_check},
          {"next_check", s.next_check},
          {"last_error", s.last_error.empty() ? json(nullptr) : json(s.last_error)}};
}

OtherInstanceSet set_from(const json& j) {
  OtherInstanceSet s;
  s.instance = parse_instance(j.at("instance").get<std::string>());
  if (j.contains("version") && j.at("version").is_string()) s.version = j.at("version").get<std::string>();
  if (!s.version.empty() && !is_feed_version(s.version))
    throw InputError("version '" + s.version + "' is not 10 digits");
  s.source = j.value("source", std::string());
  s.fetched_at = j.value("fetched", int64_t{0});
  s.set_ids = j.value("set_ids", std::vector<int>{});
  for (const auto& c : j.at("ranges")) s.ranges.push_back(Cidr::parse(c.get<std::string>()));
  s.last_check = j.value("last_check", int64_t{0});
  s.next_check = j.value("next_check", int64_t{0});
  if (j.contains("last_error") && j.at("last_error").is_string()) s.last_error = j.at("last_error").get<std::string>();
  return s;
}

}  // namespace

std::vector<OtherInstanceSet> read_other_instances(const std::string& state_dir) {
  std::vector<OtherInstanceSet> out;
  read_state_json(
      path_of(state_dir),
      [&](const json& doc) {
        for (const auto& s : doc.at("instances")) out.push_back(set_from(s));
      },
      [&](const CorruptFile& c) {
        spdlog::error("{} was corrupt ({}); moved to {}; the other instances are fetched again", c.path,
                      c.cause.substr(0, 160), c.moved_to);
        out.clear();
      });
  return out;
}

void write_other_instances(const std::string& state_dir, const std::vector<OtherInstanceSet>& sets) {
  json arr = json::array();
  for (const auto& s : sets) arr.push_back(set_json(s));
  make_dirs(state_dir, 0755);
  write_file_atomic(
      path_of(state_dir),
      json{{"version", 1}, {"instances", arr}}.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

bool forget_other_instances(const std::string& state_dir) { return std::remove(path_of(state_dir).c_str()) == 0; }

json other_instances_json(const std::vector<OtherInstanceSet>& sets) {
  json arr = json::array();
  for (const auto& s : sets) {
    json j = set_json(s);
    j.erase("ranges");
    j["ranges"] = s.ranges.size();
    arr.push_back(j);
  }
  return arr;
}

std::vector<DesiredRange> other_desired_ranges(const std::vector<OtherInstanceSet>& sets) {
  std::map<Cidr, std::string> notes;
  for (const auto& s : sets) {
    std::string label = to_string(s.instance) + (s.version.empty() ? "" : " version " + s.version);
    for (const auto& c : s.ranges) {
      std::string& n = notes[c];
      n += (n.empty() ? "" : ", ") + label;
    }
  }
  std::vector<DesiredRange> out;
  for (const auto& [c, n] : notes)
    out.push_back(
        DesiredRange{c, RuleKind::Watch, origin::kFeedOther, n + " (another instance's port-25 set, not admitted)"});
  return out;
}

std::vector<Instance> other_instances_than(Instance own) {
  std::vector<Instance> out;
  for (Instance i : {Instance::Worldwide, Instance::USGovDoD, Instance::USGovGCCHigh, Instance::China})
    if (i != own) out.push_back(i);
  return out;
}

OtherFetch fetch_other_instances(FeedClient& client, Instance own, const FeedPolicy& policy, int64_t interval_s,
                                 int64_t retry_s, int64_t now, bool forced, const std::string& state_dir) {
  OtherFetch out;
  std::vector<OtherInstanceSet> known = read_other_instances(state_dir);
  for (Instance inst : other_instances_than(own)) {
    auto it = std::find_if(known.begin(), known.end(), [&](const OtherInstanceSet& s) { return s.instance == inst; });
    OtherInstanceSet s = it == known.end() ? OtherInstanceSet{} : *it;
    s.instance = inst;
    std::string name = to_string(inst);
    if (!forced && now < s.next_check) continue;
    s.last_check = now;
    try {
      VersionAnswer v = client.version(inst);
      s.next_check = now + std::max<int64_t>(interval_s, v.max_age ? v.max_age->count() : 0);
      if (v.latest == s.version && !s.ranges.empty()) {
        s.last_error.clear();
        out.messages.push_back(name + " version " + v.latest + " is known and still the latest");
      } else {
        EndpointsAnswer ep = client.endpoints(inst);
        Port25Selection sel = select_port25(ep.sets, inst, ep.source);
        // The prefix rules only: with nothing "current", no change rule
        // applies (watch ranges admit nobody).
        validate_feed_update({}, sel.ranges, policy, name + " version " + v.latest);
        s.version = v.latest;
        s.source = ep.source;
        s.fetched_at = now;
        s.set_ids = sel.set_ids;
        s.ranges = sel.ranges;
        s.last_error.clear();
        out.messages.push_back(name + " version " + v.latest + ": " + std::to_string(s.ranges.size()) +
                               " port-25 ranges watched (origin feed-other)");
      }
    } catch (const Cancelled&) {
      throw;
    } catch (const RateLimited& e) {
      s.next_check = now + std::max<int64_t>(e.wait().count(), 60);
      s.last_error = e.what();
    } catch (const std::exception& e) {
      s.next_check = now + retry_s;
      s.last_error = e.what();
    }
    out.asked.push_back(std::move(s));
  }
  return out;
}

OtherCheckResult commit_other_instances(const OtherFetch& fetched, Instance own, const std::string& state_dir) {
  OtherCheckResult result;
  result.messages = fetched.messages;
  if (fetched.asked.empty()) return result;
  std::vector<OtherInstanceSet> known = read_other_instances(state_dir);
  std::vector<OtherInstanceSet> next;
  for (Instance inst : other_instances_than(own)) {
    auto asked = std::find_if(fetched.asked.begin(), fetched.asked.end(),
                              [&](const OtherInstanceSet& s) { return s.instance == inst; });
    auto was = std::find_if(known.begin(), known.end(), [&](const OtherInstanceSet& s) { return s.instance == inst; });
    if (asked == fetched.asked.end()) {
      if (was != known.end()) next.push_back(*was);
      continue;
    }
    if (asked->ranges != (was == known.end() ? std::vector<Cidr>{} : was->ranges)) result.changed = true;
    if (!asked->last_error.empty())
      result.errors.push_back(to_string(inst) + ": " + asked->last_error + "; its watch ranges are kept as they were");
    next.push_back(*asked);
  }
  write_other_instances(state_dir, next);
  result.sets = std::move(next);
  return result;
}

OtherCheckResult check_other_instances(FeedClient& client, Instance own, const FeedPolicy& policy, int64_t interval_s,
                                       int64_t retry_s, int64_t now, bool forced, const std::string& state_dir) {
  return commit_other_instances(fetch_other_instances(client, own, policy, interval_s, retry_s, now, forced, state_dir),
                                own, state_dir);
}

}  // namespace smtpgate
