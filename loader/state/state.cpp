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

namespace {
// ranges.json read as a stream of SAX events into OperatorRanges, without a
// document tree: a million ranges would take several hundred MiB as one.
// Reads what the tree did: {"ranges": [{"cidr": ..., "kind": ..., "comment":
// ..., "added": ...}, ...]}, other keys ignored, "cidr" required, the last of
// a repeated key winning; a value of the wrong type is an error.
class RangesReader : public nlohmann::json_sax<json> {
 public:
  explicit RangesReader(std::vector<OperatorRange>& out) : out_(out) {}

  bool null() override { return scalar("null"); }
  bool boolean(bool) override { return scalar("boolean"); }
  bool number_integer(number_integer_t v) override { return number(static_cast<int64_t>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return number(static_cast<int64_t>(v)); }
  bool number_float(number_float_t v, const string_t&) override {
    // A time no int64 holds is not one smtpgate wrote (and its conversion
    // would be undefined).
    if (!(v >= -9.2e18 && v <= 9.2e18)) return scalar("number out of range");
    return number(static_cast<int64_t>(v));
  }
  bool binary(binary_t&) override { return scalar("binary"); }
  bool string(string_t& v) override {
    if (!known_field()) return scalar("string");
    if (key_ == "cidr") {
      cidr_ = std::move(v);
    } else if (key_ == "kind") {
      range_.kind = v == "deny" ? RuleKind::Deny : RuleKind::Admit;
    } else if (key_ == "comment") {
      range_.comment = std::move(v);
    } else {
      type_error(key_, "string");
    }
    return true;
  }
  bool start_object(std::size_t) override {
    if (known_field()) type_error(key_, "object");
    depth_++;
    if (depth_ == 3 && in_ranges_) {
      range_ = OperatorRange{};
      cidr_.reset();
    }
    return true;
  }
  bool end_object() override {
    if (depth_ == 3 && in_ranges_) {
      if (!cidr_) throw std::runtime_error("a range has no \"cidr\"");
      range_.cidr = Cidr::parse(*cidr_);
      out_.push_back(std::move(range_));
    }
    if (depth_ == 1 && !seen_ranges_) throw std::runtime_error("no \"ranges\" list");
    depth_--;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ == 0) throw std::runtime_error("not an object with a \"ranges\" list");
    if (depth_ == 2 && in_ranges_) throw std::runtime_error("a range is a list, not an object");
    if (known_field()) type_error(key_, "array");
    depth_++;
    if (depth_ == 2 && key_ == "ranges") {
      in_ranges_ = true;
      seen_ranges_ = true;
      out_.clear();
    }
    return true;
  }
  bool end_array() override {
    if (depth_ == 2) in_ranges_ = false;
    depth_--;
    return true;
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    if (depth_ == 1 && key_ == "ranges") seen_ranges_ = false;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    throw std::runtime_error(e.what());
  }

 private:
  // A value of one range's object under a key this reader knows.
  bool known_field() const {
    return depth_ == 3 && in_ranges_ && (key_ == "cidr" || key_ == "kind" || key_ == "comment" || key_ == "added");
  }
  [[noreturn]] static void type_error(const std::string& key, const char* type) {
    throw std::runtime_error("\"" + key + "\" of a range is a " + type);
  }
  bool scalar(const char* type) {
    if (depth_ == 0) throw std::runtime_error("not an object with a \"ranges\" list");
    if (depth_ == 1 && key_ == "ranges") throw std::runtime_error(std::string("\"ranges\" is a ") + type);
    if (depth_ == 2 && in_ranges_) throw std::runtime_error(std::string("a range is a ") + type);
    if (known_field()) type_error(key_, type);
    return true;
  }
  bool number(int64_t v) {
    if (known_field() && key_ == "added") {
      range_.added_unix = v;
      return true;
    }
    return scalar("number");
  }

  std::vector<OperatorRange>& out_;
  OperatorRange range_;
  std::optional<std::string> cidr_;
  std::string key_;
  int depth_ = 0;
  bool in_ranges_ = false;
  bool seen_ranges_ = false;
};
}  // namespace

std::vector<OperatorRange> StateStore::operator_ranges() const {
  std::vector<OperatorRange> out;
  read_state_file(
      dir_ + "/ranges.json",
      [&](const std::string& text) {
        RangesReader reader(out);
        json::sax_parse(text, &reader);
      },
      throw_corrupt, true, kMaxRangesFileBytes);
  return out;
}

void StateStore::save_operator_ranges(const std::vector<OperatorRange>& ranges) const {
  // The text json::dump(2) gives for {"ranges": [...], "version": 1},
  // written range by range instead of from a document tree.
  std::string text = "{\n  \"ranges\": [";
  text.reserve(64 + ranges.size() * 120);
  for (size_t i = 0; i < ranges.size(); i++) {
    const OperatorRange& r = ranges[i];
    text += i == 0 ? "\n    {\n      \"added\": " : ",\n    {\n      \"added\": ";
    text += std::to_string(r.added_unix);
    text += ",\n      \"cidr\": \"";
    text += r.cidr.str();
    text += "\",\n      \"comment\": ";
    text += r.comment.empty() ? std::string("\"\"") : json(r.comment).dump();
    text += ",\n      \"kind\": \"";
    text += to_string(r.kind);
    text += "\"\n    }";
  }
  text += ranges.empty() ? "],\n  \"version\": 1\n}\n" : "\n  ],\n  \"version\": 1\n}\n";
  make_dirs(dir_, 0755);
  write_file_atomic(dir_ + "/ranges.json", text);
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
