// Microsoft 365's endpoints web service, as data: parse a response, find the
// port-25 set by what it is (not by its id), and decide whether a new set of
// ranges may replace the running one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cidr.hpp"

namespace smtpgate {

enum class Instance { Worldwide, USGovDoD, USGovGCCHigh, China };

/// Case-insensitive; throws InputError listing the instances.
Instance parse_instance(std::string_view name);
/// The path segment the service uses ("Worldwide", "USGovDoD", ...).
std::string to_string(Instance i);
/// The id Microsoft gave the port-25 set in this instance (a sanity check only:
/// ids said to be immutable have been replaced).
int expected_port25_set_id(Instance i);

/// A TCP or UDP port range from a list like "80-90,443".
struct PortRange {
  uint16_t first = 0, last = 0;
};

/// One endpoint set; fields the gate does not use are not kept.
struct EndpointSet {
  int id = 0;
  std::string service_area;
  std::vector<PortRange> tcp_ports;
  std::vector<Cidr> ips;
  std::vector<std::string> urls;
};

/// Parses an endpoints response (a JSON array of sets). Tolerates unknown
/// fields, empty notes, missing optional fields, unsorted and ranged port
/// lists. Throws InputError (one line, naming `source`) when it is not that.
std::vector<EndpointSet> parse_endpoints(std::string_view text, std::string_view source);

/// The port-25 ranges of a response.
struct Port25Selection {
  std::vector<Cidr> ranges;     // sorted, de-duplicated
  std::vector<int> set_ids;     // the sets they come from
  std::vector<std::string> warnings;
};

/// Selects by content: serviceArea Exchange, TCP 25 in its ports, has ips.
/// Several qualifying sets are merged (with a warning); an id other than the
/// expected one is a warning. Throws InputError when no set qualifies.
Port25Selection select_port25(const std::vector<EndpointSet>& sets, Instance instance, std::string_view source);

/// What a feed version must satisfy before it reaches the maps.
struct FeedPolicy {
  unsigned min_prefix_v4 = 8;
  unsigned min_prefix_v6 = 16;
  double max_removal_share = 0.5;
  bool force = false;
};

/// Throws InputError naming `what` (e.g. "feed version 2025120100") and the
/// reason when `next` must not replace `current`: empty, a special-purpose or
/// default-route prefix, a prefix shorter than the minimum, or the removal of
/// more than the allowed share of the current ranges (unless force).
void validate_feed_update(const std::vector<Cidr>& current, const std::vector<Cidr>& next, const FeedPolicy& policy,
                          std::string_view what);

}  // namespace smtpgate
