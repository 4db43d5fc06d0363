#include "feed.hpp"

#include <algorithm>
#include <set>

#include "error.hpp"
#include "text.hpp"

namespace smtpgate {

namespace {
bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
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

bool is_feed_version(std::string_view v) { return v.size() == 10 && all_digits(v); }
bool is_feed_date(std::string_view d) { return d.size() == 8 && all_digits(d); }
Port25Selection select_port25(const std::vector<EndpointSet>& sets, Instance instance, std::string_view source) {
  Port25Selection sel;
  std::set<Cidr> ranges;
  for (const auto& s : sets) {
    if (lower(s.service_area) != "exchange" || s.ips.empty()) continue;
    if (std::none_of(s.tcp_ports.begin(), s.tcp_ports.end(), [](const PortRange& p) { return p.contains(25); }))
      continue;
    sel.set_ids.push_back(s.id);
    ranges.insert(s.ips.begin(), s.ips.end());
  }
  if (sel.set_ids.empty())
    throw InputError(std::string(source) +
                     " has no port-25 set (serviceArea Exchange, TCP 25, with ips): "
                     "was it fetched with ServiceAreas=Exchange for instance " +
                     to_string(instance) + "?");
  sel.ranges.assign(ranges.begin(), ranges.end());
  int expected = expected_port25_set_id(instance);
  if (sel.set_ids.size() > 1) {
    std::string ids;
    for (int id : sel.set_ids) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
    sel.warnings.push_back(std::string(source) + ": " + std::to_string(sel.set_ids.size()) +
                           " sets carry port 25 (ids " + ids + "); their ranges are merged");
  }
  if (std::find(sel.set_ids.begin(), sel.set_ids.end(), expected) == sel.set_ids.end())
    sel.warnings.push_back(std::string(source) + ": the port-25 set has id " + std::to_string(sel.set_ids[0]) +
                           ", not the " + std::to_string(expected) + " Microsoft used for " + to_string(instance) +
                           " (selected by content; check that the instance is right)");
  return sel;
}

Disposition parse_disposition(std::string_view word) {
  std::string w = lower(word);
  if (w == "add") return Disposition::Add;
  if (w == "change") return Disposition::Change;
  if (w == "remove") return Disposition::Remove;
  return Disposition::Other;
}

std::string to_string(Disposition d) {
  switch (d) {
    case Disposition::Add: return "add";
    case Disposition::Change: return "change";
    case Disposition::Remove: return "remove";
    case Disposition::Other: return "other";
  }
  return "other";
}
}  // namespace smtpgate
