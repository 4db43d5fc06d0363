#include "desired_set.hpp"

#include <ctime>

#include "eop_admit.hpp"
#include "grace.hpp"

namespace smtpgate {

namespace {
// The feed's part of `in`, appended to out.
void add_feed_part(std::vector<DesiredRange>& out, const DesiredInputs& in, int64_t now) {
  for (auto& d : feed_desired_ranges(in.feed, now)) out.push_back(std::move(d));
  for (auto& d : other_desired_ranges(in.others)) out.push_back(std::move(d));
  for (auto& d : eop_admitted_ranges(in.feed_gaps, now)) out.push_back(std::move(d));
}
}  // namespace

DesiredInputs DesiredInputs::read(const std::string& state_dir) {
  DesiredInputs in;
  in.operator_ranges = StateStore(state_dir).operator_ranges();
  in.feed = read_feed_status(state_dir);
  in.others = read_other_instances(state_dir);
  in.feed_gaps = read_feed_gaps(state_dir);
  return in;
}

std::vector<DesiredRange> operator_desired_ranges(const std::vector<OperatorRange>& ranges) {
  std::vector<DesiredRange> out;
  out.reserve(ranges.size());
  for (const auto& r : ranges) out.push_back(DesiredRange{r.cidr, r.kind, origin::kOperator, r.comment});
  return out;
}

std::vector<DesiredRange> feed_desired_ranges(const FeedStatus& s, int64_t now) {
  std::vector<DesiredRange> out;
  if (s.applied) {
    const FeedSnapshot& a = s.applied.value();
    std::string note = to_string(a.instance) + (a.version.empty() ? "" : " version " + a.version);
    for (const auto& c : a.ranges) {
      auto eff = a.effective_dates.find(c);
      out.push_back(DesiredRange{c, RuleKind::Admit, origin::kFeed,
                                 note + (eff == a.effective_dates.end() ? "" : ", effective " + eff->second)});
    }
  }
  if (s.rejected && s.rejected->watched)
    for (const auto& c : s.rejected->ranges)
      out.push_back(DesiredRange{c, RuleKind::Watch, origin::kFeedPending,
                                 "published in version " + (s.rejected->version.empty() ? "?" : s.rejected->version) +
                                     ", not applied: " + s.rejected->reason});
  for (auto& d : removed_desired_ranges(s.recently_removed, now)) out.push_back(std::move(d));
  return out;
}

std::vector<DesiredRange> desired_ranges(const DesiredInputs& in, int64_t now) {
  std::vector<DesiredRange> out = operator_desired_ranges(in.operator_ranges);
  add_feed_part(out, in, now);
  return out;
}

std::vector<DesiredRange> desired_ranges(const StateStore& store) {
  return desired_ranges(DesiredInputs::read(store.dir()), ::time(nullptr));
}

std::vector<DesiredRange> feed_desired_ranges(const std::string& state_dir) {
  DesiredInputs in;
  in.feed = read_feed_status(state_dir);
  in.others = read_other_instances(state_dir);
  in.feed_gaps = read_feed_gaps(state_dir);
  std::vector<DesiredRange> out;
  add_feed_part(out, in, ::time(nullptr));
  return out;
}

}  // namespace smtpgate
