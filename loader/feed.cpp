#include "feed.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {
std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

std::string preview(std::string_view text) {
  std::string p(text.substr(0, 40));
  for (char& c : p)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return p;
}

std::vector<PortRange> parse_ports(const std::string& list, std::string_view source) {
  std::vector<PortRange> out;
  size_t pos = 0;
  while (pos < list.size()) {
    size_t comma = list.find(',', pos);
    std::string item = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    item.erase(std::remove_if(item.begin(), item.end(), ::isspace), item.end());
    if (!item.empty()) {
      size_t dash = item.find('-');
      try {
        unsigned long a = std::stoul(item.substr(0, dash));
        unsigned long b = dash == std::string::npos ? a : std::stoul(item.substr(dash + 1));
        if (a > 65535 || b > 65535 || b < a) throw std::out_of_range("port");
        out.push_back(PortRange{static_cast<uint16_t>(a), static_cast<uint16_t>(b)});
      } catch (const std::exception&) {
        throw InputError(std::string(source) + ": port list '" + list + "' has an entry that is not a port or range");
      }
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}
}  // namespace

Instance parse_instance(std::string_view name) {
  std::string n = lower(name);
  if (n == "worldwide") return Instance::Worldwide;
  if (n == "usgovdod") return Instance::USGovDoD;
  if (n == "usgovgcchigh") return Instance::USGovGCCHigh;
  if (n == "china") return Instance::China;
  throw InputError("unknown feed instance '" + std::string(name) +
                   "': use Worldwide, USGovDoD, USGovGCCHigh or China (Germany is retired)");
}

std::string to_string(Instance i) {
  switch (i) {
    case Instance::Worldwide: return "Worldwide";
    case Instance::USGovDoD: return "USGovDoD";
    case Instance::USGovGCCHigh: return "USGovGCCHigh";
    case Instance::China: return "China";
  }
  return "";
}

int expected_port25_set_id(Instance i) {
  switch (i) {
    case Instance::Worldwide: return 10;
    case Instance::USGovDoD: return 6;
    case Instance::USGovGCCHigh: return 6;
    case Instance::China: return 27;
  }
  return 0;
}

std::vector<EndpointSet> parse_endpoints(std::string_view text, std::string_view source) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception&) {
    std::string hint = text.find('<') < 16 ? " (it looks like HTML: a proxy or captive portal answered? check the "
                                             "feed URL and the proxy)"
                                           : "";
    if (text.empty()) throw InputError(std::string(source) + " is empty: not an endpoints response");
    throw InputError(std::string(source) + " is not JSON (starts with '" + preview(text) + "')" + hint +
                     (hint.empty() ? ": a truncated or damaged download? fetch it again" : ""));
  }
  if (!doc.is_array())
    throw InputError(std::string(source) + " is JSON but not a list of endpoint sets: not an endpoints response "
                     "(a version or changes response?)");
  std::vector<EndpointSet> out;
  for (const auto& e : doc) {
    if (!e.is_object()) throw InputError(std::string(source) + ": an endpoint set is not a JSON object");
    EndpointSet s;
    if (!e.contains("id") || !e["id"].is_number_integer())
      throw InputError(std::string(source) + ": an endpoint set has no numeric id");
    s.id = e["id"].get<int>();
    if (e.contains("serviceArea") && e["serviceArea"].is_string()) s.service_area = e["serviceArea"].get<std::string>();
    if (e.contains("tcpPorts") && e["tcpPorts"].is_string())
      s.tcp_ports = parse_ports(e["tcpPorts"].get<std::string>(), source);
    if (e.contains("urls") && e["urls"].is_array())
      for (const auto& u : e["urls"])
        if (u.is_string()) s.urls.push_back(u.get<std::string>());
    if (e.contains("ips")) {
      if (!e["ips"].is_array())
        throw InputError(std::string(source) + ": set " + std::to_string(s.id) + " has 'ips' that is not a list");
      for (const auto& ip : e["ips"]) {
        if (!ip.is_string())
          throw InputError(std::string(source) + ": set " + std::to_string(s.id) + " lists an ip that is not a string");
        try {
          s.ips.push_back(Cidr::parse(ip.get<std::string>()));
        } catch (const InputError& err) {
          throw InputError(std::string(source) + ": set " + std::to_string(s.id) + ": " + err.what());
        }
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

Port25Selection select_port25(const std::vector<EndpointSet>& sets, Instance instance, std::string_view source) {
  Port25Selection sel;
  std::set<Cidr> ranges;
  for (const auto& s : sets) {
    if (lower(s.service_area) != "exchange" || s.ips.empty()) continue;
    bool has25 = std::any_of(s.tcp_ports.begin(), s.tcp_ports.end(),
                             [](const PortRange& p) { return p.first <= 25 && 25 <= p.last; });
    if (!has25) continue;
    sel.set_ids.push_back(s.id);
    ranges.insert(s.ips.begin(), s.ips.end());
  }
  if (sel.set_ids.empty())
    throw InputError(std::string(source) + " has no port-25 set (serviceArea Exchange, TCP 25, with ips): "
                     "was it fetched with ServiceAreas=Exchange for instance " + to_string(instance) + "?");
  sel.ranges.assign(ranges.begin(), ranges.end());
  int expected = expected_port25_set_id(instance);
  if (sel.set_ids.size() > 1)
    sel.warnings.push_back(std::string(source) + ": " + std::to_string(sel.set_ids.size()) +
                           " sets carry port 25; their ranges are merged");
  if (std::find(sel.set_ids.begin(), sel.set_ids.end(), expected) == sel.set_ids.end())
    sel.warnings.push_back(std::string(source) + ": the port-25 set has id " + std::to_string(sel.set_ids[0]) +
                           ", not the " + std::to_string(expected) + " Microsoft used for " + to_string(instance) +
                           " (selected by content; check that the instance is right)");
  return sel;
}

void validate_feed_update(const std::vector<Cidr>& current, const std::vector<Cidr>& next, const FeedPolicy& policy,
                          std::string_view what) {
  std::string w(what);
  if (next.empty()) throw InputError(w + " is refused: its port-25 set is empty; the running allowlist is kept");
  for (const auto& c : next) {
    if (c.prefix_len() == 0)
      throw InputError(w + " is refused: it contains the default route " + c.str() + "; the running allowlist is kept");
    unsigned min = c.family() == Family::V4 ? policy.min_prefix_v4 : policy.min_prefix_v6;
    if (c.prefix_len() < min)
      throw InputError(w + " is refused: " + c.str() + " is shorter than /" + std::to_string(min) +
                       " (min_prefix_v" + (c.family() == Family::V4 ? "4" : "6") +
                       "); the running allowlist is kept");
    try {
      check_not_special(c, false);
    } catch (const InputError& e) {
      throw InputError(w + " is refused: " + e.what());
    }
  }
  if (!policy.force && !current.empty()) {
    std::set<Cidr> n(next.begin(), next.end());
    size_t removed = std::count_if(current.begin(), current.end(), [&](const Cidr& c) { return !n.count(c); });
    double share = double(removed) / double(current.size());
    if (share > policy.max_removal_share)
      throw InputError(w + " is refused: it would remove " + std::to_string(removed) + " of the " +
                       std::to_string(current.size()) + " current ranges (more than max_removal_share " +
                       std::to_string(int(policy.max_removal_share * 100)) +
                       "%); the running allowlist is kept; apply it anyway with --force");
  }
}

}  // namespace smtpgate
