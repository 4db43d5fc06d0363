// Whether a new feed version may replace the running one (feed.hpp,
// validate_feed_update).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "feed.hpp"

namespace smtpgate {

namespace {
// Addresses a prefix covers, as a double: exact up to 2^53, and a share of two
// sums is all the growth rule needs (an IPv6 /16 holds 2^112).
double addresses(const Cidr& c) { return std::ldexp(1.0, static_cast<int>(c.max_len() - c.prefix_len())); }

// What the aggregated prefixes `agg` of one family admit, and how much of it
// the aggregated `known` does not: aggregated prefixes are disjoint, so two of
// them either nest or share nothing.
struct Space {
  double total = 0, fresh = 0;
};
Space space_of(const std::vector<Cidr>& agg, const std::vector<Cidr>& known, Family f) {
  Space s;
  for (const auto& n : agg) {
    if (n.family() != f) continue;
    double shared = 0;
    for (const auto& k : known)
      if (n.contains(k))
        shared += addresses(k);
      else if (k.contains(n))
        shared = addresses(n);
    s.total += addresses(n);
    s.fresh += addresses(n) - std::min(shared, addresses(n));
  }
  return s;
}

// "491520 addresses" for IPv4; IPv6 in /48s, the size Microsoft publishes.
std::string amount(double n, Family f) {
  char buf[64];
  if (f == Family::V4)
    std::snprintf(buf, sizeof buf, "%.0f addresses", n);
  else
    std::snprintf(buf, sizeof buf, "%.6g /48s", n / std::ldexp(1.0, 80));
  return buf;
}

std::string percent(double share) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f%%", share * 100);
  return buf;
}
}  // namespace

namespace {
// A refusal of `what`: "WHAT is refused: WHY; the running allowlist is kept",
// and the way past it when force gets past it.
[[noreturn]] void refuse(std::string_view what, FeedRule rule, const std::string& why, bool forcible) {
  throw FeedRefusal(std::string(what) + " is refused: " + why + "; the running allowlist is kept" +
                        (forcible ? "; apply it anyway with --force" : ""),
                    rule);
}

// The rules every version must satisfy, whatever is applied.
void check_prefix_rules(const std::vector<Cidr>& next, const FeedPolicy& policy, std::string_view what) {
  if (next.empty()) refuse(what, FeedRule::Empty, "its port-25 set is empty", false);
  for (const auto& c : next) {
    if (c.prefix_len() == 0) refuse(what, FeedRule::DefaultRoute, "it contains the default route " + c.str(), false);
    unsigned min = c.family() == Family::V4 ? policy.min_prefix_v4 : policy.min_prefix_v6;
    if (c.prefix_len() < min)
      refuse(what, FeedRule::ShortPrefix,
             c.str() + " is shorter than /" + std::to_string(min) + " (min_prefix_v" +
                 (c.family() == Family::V4 ? "4" : "6") + ")",
             false);
    if (auto sp = policy.allow_reserved ? std::nullopt : find_special_purpose(c))
      refuse(what, FeedRule::SpecialPurpose,
             c.str() + " is special-purpose space (" + std::string(sp->block) + " " + std::string(sp->name) + ", " +
                 std::string(sp->rfc) + "), never a Microsoft 365 sender: a damaged or forged response?",
             false);
  }
}

// The rules that compare with the applied version; force gets past them.
void check_change_rules(const std::vector<Cidr>& current, const std::vector<Cidr>& next, const FeedPolicy& policy,
                        std::string_view what) {
  // Against the aggregates, so a prefix split or merged by Microsoft still
  // counts as covered: an aligned block inside the union lies in one
  // aggregated prefix.
  const std::vector<Cidr> covered = aggregate(next);
  const std::vector<Cidr> admitted = aggregate(current);
  auto within = [](const std::vector<Cidr>& agg, const Cidr& c) {
    return std::any_of(agg.begin(), agg.end(), [&](const Cidr& a) { return a.contains(c); });
  };
  std::set<Cidr> distinct(current.begin(), current.end());
  size_t removed = std::count_if(distinct.begin(), distinct.end(), [&](const Cidr& c) { return !within(covered, c); });
  if (double(removed) > policy.max_removal_share * double(distinct.size()))
    refuse(what, FeedRule::Removal,
           "it would remove " + std::to_string(removed) + " of the " + std::to_string(distinct.size()) +
               " current ranges (more than max_removal_share " + percent(policy.max_removal_share) + ")",
           true);

  // What a forged answer is for: opening the gate. Microsoft adds a range or
  // two per change; a version adding many, or much address space, waits for
  // an operator.
  std::set<Cidr> fresh_ranges;
  for (const auto& c : next)
    if (!within(admitted, c)) fresh_ranges.insert(c);
  if (fresh_ranges.size() > policy.max_added_ranges)
    refuse(what, FeedRule::AddedRanges,
           "it would add " + std::to_string(fresh_ranges.size()) + " new ranges to the " +
               std::to_string(distinct.size()) + " current ones (more than max_added_ranges " +
               std::to_string(policy.max_added_ranges) + ")",
           true);
  for (Family f : {Family::V4, Family::V6}) {
    const char* name = f == Family::V4 ? "IPv4" : "IPv6";
    double now = space_of(admitted, {}, f).total;
    Space then = space_of(covered, admitted, f);
    if (then.fresh == 0) continue;
    if (now == 0)
      refuse(what, FeedRule::Growth,
             std::string("it would admit ") + amount(then.fresh, f) + " of " + name +
                 " where the running allowlist admits none",
             true);
    if (then.fresh > policy.max_growth_share * now)
      refuse(what, FeedRule::Growth,
             std::string("it would grow the admitted ") + name + " space from " + amount(now, f) + " by " +
                 amount(then.fresh, f) + " (" + percent(then.fresh / now) + ", more than max_growth_share " +
                 percent(policy.max_growth_share) + ")",
             true);
  }
}
}  // namespace

void validate_feed_update(const std::vector<Cidr>& current, const std::vector<Cidr>& next, const FeedPolicy& policy,
                          std::string_view what) {
  check_prefix_rules(next, policy, what);
  if (policy.force || current.empty()) return;
  check_change_rules(current, next, policy, what);
}

}  // namespace smtpgate
