#include "state.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "fsutil.hpp"
#include "state_file.hpp"

#ifndef SMTPGATE_VERSION
#define SMTPGATE_VERSION "0"
#endif

namespace smtpgate {

using nlohmann::json;

StateStore::StateStore(std::string state_dir) : dir_(std::move(state_dir)) {}

namespace {
[[noreturn]] void throw_corrupt(const CorruptFile& c) {
  throw InputError(c.path + " is corrupt (" + c.cause + "); moved to " + c.moved_to +
                   ": re-add its ranges or restore it from a backup");
}

// A JSON state file; nullopt when missing. One that does not parse is set
// aside and reported (InputError).
std::optional<json> read_json(const std::string& path) {
  std::optional<json> doc;
  read_state_json(
      path, [&](const json& j) { doc = j; }, throw_corrupt);
  return doc;
}
}  // namespace

void check_state_format(const std::string& state_dir) {
  if (!file_exists(state_dir)) return;
  std::string path = state_dir + "/format.json";
  int format = 1;
  std::string written_by = "a release before the state format was recorded";
  if (file_exists(path)) {
    auto doc = read_json(path);
    try {
      format = doc->at("format").get<int>();
      written_by = "smtpgate " + doc->value("written_by", std::string("?"));
    } catch (const std::exception& e) {
      throw InputError(path + " is not a state format record (" + e.what() +
                       "); restore it from a backup, or write {\"format\": " + std::to_string(kStateFormat) + "}");
    }
    if (format < 1 || format > 1000000)
      throw InputError(path + ": format " + std::to_string(format) + " is out of range; restore it from a backup");
  }
  if (format > kStateFormat)
    throw InputError("the state in " + state_dir + " is of format " + std::to_string(format) + ", written by " +
                     quote_input(written_by) + "; this smtpgate (" SMTPGATE_VERSION ") reads formats up to " +
                     std::to_string(kStateFormat) +
                     ": install that version again (a downgrade needs a state "
                     "backup from before the upgrade)");
  if (format == kStateFormat) return;
  // Format 1 to 2: the files are the same; the format is recorded from now on.
  write_file_atomic(path, json{{"format", kStateFormat}, {"written_by", SMTPGATE_VERSION}}.dump() + "\n");
  spdlog::info("state directory {}: format {} migrated to {}", state_dir, format, kStateFormat);
}

std::vector<OperatorRange> StateStore::operator_ranges() const {
  std::vector<OperatorRange> out;
  read_state_json(
      dir_ + "/ranges.json",
      [&](const json& doc) {
        for (const auto& r : doc.at("ranges")) {
          OperatorRange o;
          o.cidr = Cidr::parse(r.at("cidr").get<std::string>());
          std::string kind = r.value("kind", "admit");
          o.kind = kind == "deny" ? RuleKind::Deny : RuleKind::Admit;
          o.comment = r.value("comment", "");
          o.added_unix = r.value("added", int64_t{0});
          out.push_back(std::move(o));
        }
      },
      throw_corrupt);
  return out;
}

void StateStore::save_operator_ranges(const std::vector<OperatorRange>& ranges) const {
  json arr = json::array();
  for (const auto& r : ranges)
    arr.push_back(
        {{"cidr", r.cidr.str()}, {"kind", to_string(r.kind)}, {"comment", r.comment}, {"added", r.added_unix}});
  make_dirs(dir_, 0755);
  write_file_atomic(dir_ + "/ranges.json", json{{"version", 1}, {"ranges", arr}}.dump(2) + "\n");
}

RuntimeSettings StateStore::runtime() const {
  RuntimeSettings s;
  try {
    auto doc = read_json(dir_ + "/runtime.json");
    if (doc && doc->contains("action")) s.action = parse_action(doc->at("action").get<std::string>());
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());
  }
  return s;
}

void StateStore::save_runtime(const RuntimeSettings& s) const {
  json doc = json::object();
  if (s.action) doc["action"] = to_string(*s.action);
  make_dirs(dir_, 0755);
  write_file_atomic(dir_ + "/runtime.json", doc.dump(2) + "\n");
}

}  // namespace smtpgate
