// Parsing the endpoints web service's three responses (feed.hpp): whatever
// the service (or a proxy in its place) answers, the result is either what
// the gate needs or one InputError naming the response.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "feed.hpp"
#include "text.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {
// The start of a text from the service, for a message: whatever bytes it
// holds (Latin-1, NUL, a newline), the preview is one line of printable
// ASCII, with every other byte as \xNN. Messages end up in feed.json, the
// log and the metrics, which must stay valid UTF-8.
std::string preview(std::string_view text, size_t max = 40) {
  std::string p;
  for (char c : text.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      p += c;
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      p += hex;
    }
  }
  if (text.size() > max) p += "...";
  return p;
}

// Parses a whole response; the message says what answered instead of the service.
json parse_json(std::string_view text, std::string_view source, std::string_view expected) {
  std::string src(source);
  std::string_view body = text;
  if (body.size() >= 3 && body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
  if (trim(body).empty()) throw InputError(src + " is empty: not " + std::string(expected));
  try {
    return json::parse(body);
  } catch (const json::exception&) {
    if (trim(body).front() == '<')
      throw InputError(src + " is not JSON (starts with '" + preview(trim(body)) +
                       "'): it looks like HTML: a proxy or captive portal answered? check the feed URL and the proxy");
    throw InputError(src + " is not JSON (starts with '" + preview(trim(body)) +
                     "'): a truncated or damaged download? fetch it again");
  }
}

// A CIDR string of the feed; NUL and control characters are refused here
// because they would cut the text short on its way to inet_pton.
Cidr feed_cidr(const json& v, const std::string& where) {
  // The type name, not the value: printing a hostile value (nested a million
  // deep) would recurse off the stack.
  if (!v.is_string()) throw InputError(where + " lists an ip that is not a string but " + v.type_name());
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > 64 || std::any_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u >= 0x7f;
      }))
    throw InputError(where + " lists an ip that is not a CIDR: '" + preview(s) + "'");
  try {
    return Cidr::parse(s);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
}

std::vector<Cidr> cidr_list(const json& obj, const char* key, const std::string& where) {
  std::vector<Cidr> out;
  if (!obj.contains(key) || obj[key].is_null()) return out;
  if (!obj[key].is_array()) throw InputError(where + " has '" + key + "' that is not a list");
  for (const auto& v : obj[key]) out.push_back(feed_cidr(v, where));
  return out;
}

// URLs are informational: non-strings are skipped rather than refused.
std::vector<std::string> string_list(const json& obj, const char* key) {
  std::vector<std::string> out;
  if (obj.contains(key) && obj[key].is_array())
    for (const auto& u : obj[key])
      if (u.is_string()) out.push_back(u.get<std::string>());
  return out;
}

std::optional<std::string> opt_string(const json& obj, const char* key) {
  if (obj.contains(key) && obj[key].is_string()) return obj[key].get<std::string>();
  return std::nullopt;
}

// The service writes booleans of change records as "true"/"false" strings.
std::optional<bool> opt_bool(const json& obj, const char* key) {
  if (!obj.contains(key)) return std::nullopt;
  const json& v = obj[key];
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string()) {
    std::string s = lower(v.get<std::string>());
    if (s == "true") return true;
    if (s == "false") return false;
  }
  return std::nullopt;
}

// An integer id that fits in T; anything else is a structural error.
template <typename T>
std::optional<T> integer(const json& obj, const char* key) {
  if (!obj.contains(key)) return std::nullopt;
  const json& v = obj[key];
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(u);
  } else if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if (i >= std::numeric_limits<T>::min() && i <= std::numeric_limits<T>::max()) return static_cast<T>(i);
  }
  return std::nullopt;
}

SetAttributes set_attributes(const json& o) {
  SetAttributes a;
  a.service_area = opt_string(o, "serviceArea");
  a.category = opt_string(o, "category");
  a.tcp_ports = opt_string(o, "tcpPorts");
  a.udp_ports = opt_string(o, "udpPorts");
  a.notes = opt_string(o, "notes");
  a.express_route = opt_bool(o, "expressRoute");
  a.required = opt_bool(o, "required");
  return a;
}
}  // namespace

std::vector<PortRange> parse_port_list(std::string_view list) {
  std::vector<PortRange> out;
  auto bad = [&](std::string_view item) {
    return InputError("port list '" + preview(list) + "' has '" + preview(item) +
                      "', which is not a port or a range like 80-90");
  };
  auto port = [&](std::string_view s, std::string_view item) {
    s = trim(s);
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v > 65535) throw bad(item);
    return static_cast<uint16_t>(v);
  };
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    std::string_view item =
        trim(list.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    if (!item.empty()) {
      size_t dash = item.find('-');
      PortRange r;
      r.first = port(item.substr(0, dash), item);
      r.last = dash == std::string_view::npos ? r.first : port(item.substr(dash + 1), item);
      if (r.last < r.first) throw bad(item);
      out.push_back(r);
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::vector<EndpointSet> parse_endpoints(std::string_view text, std::string_view source) {
  std::string src(source);
  json doc = parse_json(text, source, "an endpoints response");
  if (!doc.is_array())
    throw InputError(src +
                     " is JSON but not a list of endpoint sets: not an endpoints response "
                     "(a version or changes response, or an error object?)");
  std::vector<EndpointSet> out;
  for (const auto& e : doc) {
    if (!e.is_object()) throw InputError(src + ": an endpoint set is not a JSON object");
    EndpointSet s;
    auto id = integer<int>(e, "id");
    if (!id) throw InputError(src + ": an endpoint set has no numeric id");
    s.id = *id;
    std::string where = src + ": set " + std::to_string(s.id);
    s.service_area = opt_string(e, "serviceArea").value_or("");
    if (auto ports = opt_string(e, "tcpPorts")) {
      try {
        s.tcp_ports = parse_port_list(*ports);
      } catch (const InputError& err) {
        throw InputError(where + ": " + err.what());
      }
    }
    s.urls = string_list(e, "urls");
    s.ips = cidr_list(e, "ips", where);
    out.push_back(std::move(s));
  }
  return out;
}

FeedVersion parse_version(std::string_view text, Instance instance, std::string_view source) {
  std::string src(source);
  json doc = parse_json(text, source, "a version response");
  std::string want = lower(to_string(instance));
  const json* obj = nullptr;
  if (doc.is_object()) {
    obj = &doc;
  } else if (doc.is_array()) {
    for (const auto& e : doc)
      if (e.is_object() && lower(opt_string(e, "instance").value_or("")) == want) obj = &e;
    if (!obj) throw InputError(src + " lists no version for instance " + to_string(instance));
  } else {
    throw InputError(src + " is JSON but not a version response (expected {\"instance\": ..., \"latest\": ...})");
  }
  FeedVersion v;
  v.instance = opt_string(*obj, "instance").value_or("");
  if (!v.instance.empty() && lower(v.instance) != want)
    throw InputError(src + " is the version of instance '" + preview(v.instance) + "', not " + to_string(instance) +
                     ": check the feed URL");
  auto latest = opt_string(*obj, "latest");
  if (!latest) throw InputError(src + " has no \"latest\" version string: not a version response");
  if (!is_feed_version(*latest))
    throw InputError(src + ": latest version '" + preview(*latest) + "' is not 10 digits (YYYYMMDDNN)");
  v.latest = *latest;
  return v;
}

std::vector<ChangeRecord> parse_changes(std::string_view text, std::string_view source) {
  std::string src(source);
  json doc = parse_json(text, source, "a changes response");
  if (!doc.is_array()) throw InputError(src + " is JSON but not a list of change records: not a changes response");
  std::vector<ChangeRecord> out;
  for (const auto& e : doc) {
    if (!e.is_object()) throw InputError(src + ": a change record is not a JSON object");
    ChangeRecord r;
    auto id = integer<int64_t>(e, "id");
    auto set_id = integer<int>(e, "endpointSetId");
    if (!id) throw InputError(src + ": a change record has no numeric id");
    std::string where = src + ": change " + std::to_string(*id);
    if (!set_id) throw InputError(where + " has no numeric endpointSetId");
    r.id = *id;
    r.endpoint_set_id = *set_id;
    r.disposition = parse_disposition(opt_string(e, "disposition").value_or(""));
    r.impact = opt_string(e, "impact").value_or("");
    r.version = opt_string(e, "version").value_or("");
    if (!is_feed_version(r.version))
      throw InputError(where + " has version '" + preview(r.version) + "', not 10 digits (YYYYMMDDNN)");
    if (e.contains("add") && e["add"].is_object()) {
      const json& add = e["add"];
      if (auto date = opt_string(add, "effectiveDate")) {
        if (!is_feed_date(*date))
          throw InputError(where + " has effectiveDate '" + preview(*date) + "', not 8 digits (YYYYMMDD)");
        r.effective_date = *date;
      }
      r.added_ips = cidr_list(add, "ips", where + " add");
      r.added_urls = string_list(add, "urls");
    }
    if (e.contains("remove") && e["remove"].is_object()) {
      r.removed_ips = cidr_list(e["remove"], "ips", where + " remove");
      r.removed_urls = string_list(e["remove"], "urls");
    }
    if (e.contains("previous") && e["previous"].is_object()) r.previous = set_attributes(e["previous"]);
    if (e.contains("current") && e["current"].is_object()) r.current = set_attributes(e["current"]);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace smtpgate
