// Microsoft 365's endpoints web service, as data: parse its three responses
// (version, endpoints, changes), find the port-25 set by what it is (not by its
// id), and decide whether a new set of ranges may replace the running one.
// No I/O here: feed_client.hpp fetches, feed_sync.hpp decides when.
// feed_parse.cpp parses the responses, feed_policy.cpp validates a version.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cidr.hpp"
#include "error.hpp"

namespace smtpgate {

enum class Instance { Worldwide, USGovDoD, USGovGCCHigh, China };

/// Case-insensitive; throws InputError listing the instances.
Instance parse_instance(std::string_view name);
/// The path segment the service uses ("Worldwide", "USGovDoD", ...).
std::string to_string(Instance i);
/// The id Microsoft gave the port-25 set in this instance (a sanity check only:
/// ids said to be immutable have been replaced).
int expected_port25_set_id(Instance i);

/// True for a feed version as the service writes it: exactly 10 digits
/// (YYYYMMDDNN). Validated versions order correctly as plain strings.
bool is_feed_version(std::string_view v);
/// True for a date as the changes method writes it: exactly 8 digits (YYYYMMDD).
bool is_feed_date(std::string_view d);

/// A TCP or UDP port range from a list like "80-90,443".
struct PortRange {
  uint16_t first = 0, last = 0;
  bool contains(uint16_t port) const { return first <= port && port <= last; }
};

/// Parses a port list ("25", "443,80", "80-90, 443"); an empty list is empty.
/// Throws InputError naming the list and the bad entry.
std::vector<PortRange> parse_port_list(std::string_view list);

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
/// lists. Throws InputError (one line, naming `source`) when it is not that:
/// not JSON (an HTML page from a proxy), not an array, a set without an id,
/// ips that are not a list of CIDR strings.
std::vector<EndpointSet> parse_endpoints(std::string_view text, std::string_view source);

/// The port-25 ranges of a response.
struct Port25Selection {
  std::vector<Cidr> ranges;  // sorted, de-duplicated
  std::vector<int> set_ids;  // the sets they come from
  std::vector<std::string> warnings;
};

/// Selects by content: serviceArea Exchange, TCP 25 in its ports, has ips.
/// Several qualifying sets are merged (with a warning); an id other than the
/// expected one is a warning. Throws InputError when no set qualifies.
Port25Selection select_port25(const std::vector<EndpointSet>& sets, Instance instance, std::string_view source);

/// The version method's answer for one instance.
struct FeedVersion {
  std::string instance;  // as the service spelled it
  std::string latest;    // 10 digits
};

/// Parses `{"instance":"Worldwide","latest":"2025120100"}` (extra fields such
/// as versions[] ignored; the all-instances array form is searched for
/// `instance`). Throws InputError naming `source` when latest is missing or not
/// 10 digits, or the instance is not the one asked for.
FeedVersion parse_version(std::string_view text, Instance instance, std::string_view source);

enum class Disposition { Add, Change, Remove, Other };
/// "add", "change", "remove" in any case; anything else is Other.
Disposition parse_disposition(std::string_view word);
std::string to_string(Disposition d);

/// Attributes of an endpoint set before or after a change ("previous" and
/// "current" of a change record); absent fields stay empty. Booleans arrive
/// as JSON booleans or as the strings "true"/"false".
struct SetAttributes {
  std::optional<std::string> service_area, category, tcp_ports, udp_ports, notes;
  std::optional<bool> express_route, required;
};

/// One record of the changes method.
struct ChangeRecord {
  int64_t id = 0;
  int endpoint_set_id = 0;
  Disposition disposition = Disposition::Other;
  std::string impact;          // AddedIp, RemovedIpOrUrl, ... ("" if absent)
  std::string version;         // the feed version that made the change
  std::string effective_date;  // add.effectiveDate (YYYYMMDD), "" if absent
  std::vector<Cidr> added_ips, removed_ips;
  std::vector<std::string> added_urls, removed_urls;
  std::optional<SetAttributes> previous, current;
};

/// Parses a changes response (a JSON array of records). Same tolerance and
/// strictness as parse_endpoints; throws InputError naming `source`.
std::vector<ChangeRecord> parse_changes(std::string_view text, std::string_view source);

/// What a feed version must satisfy before it reaches the maps. The prefix
/// rules hold for every version, the first one included; the change rules
/// (removal, added ranges, growth) compare with the applied version and give
/// way to force.
struct FeedPolicy {
  /// No prefix shorter than these. Microsoft's widest port-25 prefixes are a
  /// /14 (Worldwide) and a /39 (China): /12 and /32 leave room for a wider
  /// block without letting one prefix open a whole provider.
  unsigned min_prefix_v4 = 12;
  unsigned min_prefix_v6 = 32;
  double max_removal_share = 0.5;
  /// New ranges (not covered by the applied version) one version may bring.
  size_t max_added_ranges = 8;
  /// How much one version may grow the admitted address space of a family,
  /// as a share of what that family admits now.
  double max_growth_share = 0.5;
  bool force = false;           // apply even past the change rules
  bool allow_reserved = false;  // accept special-purpose space (never the default route)
};

/// The rule a refused version broke.
enum class FeedRule { Empty, DefaultRoute, ShortPrefix, SpecialPurpose, Removal, AddedRanges, Growth };

/// A feed version validation refused; the message is the one-line refusal.
class FeedRefusal : public InputError {
 public:
  FeedRefusal(const std::string& what, FeedRule rule) : InputError(what), rule_(rule) {}
  FeedRule rule() const { return rule_; }
  /// True when the refusal is about what the version drops, not about what it
  /// would admit: its ranges are still believed to be Microsoft's.
  bool ranges_trusted() const { return rule_ == FeedRule::Removal; }

 private:
  FeedRule rule_;
};

/// Throws FeedRefusal naming `what` (e.g. "feed version 2025120100"), the
/// rule and its numbers when `next` must not replace `current`: empty, a
/// special-purpose or default-route prefix, a prefix shorter than the minimum;
/// unless force (or nothing is current): the removal of more than the allowed
/// share of the current ranges, more new ranges than max_added_ranges, or an
/// admitted address space of either family grown by more than
/// max_growth_share (a family that admits nothing now may not start to).
/// Ranges are compared by the addresses they cover, so a range Microsoft
/// splits or merges is neither removed nor added.
void validate_feed_update(const std::vector<Cidr>& current, const std::vector<Cidr>& next, const FeedPolicy& policy,
                          std::string_view what);

}  // namespace smtpgate
