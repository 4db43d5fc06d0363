#include "grace.hpp"

#include <ctime>

namespace smtpgate {

bool in_grace(const RemovedRange& r, int64_t now) { return !r.grace_over && now < r.grace_until; }

std::vector<DesiredRange> removed_desired_ranges(const std::vector<RemovedRange>& removed, int64_t now) {
  std::vector<DesiredRange> out;
  for (const auto& r : removed) {
    std::string by = r.version.empty() ? "removed by an unversioned import" : "removed by version " + r.version;
    if (in_grace(r, now))
      out.push_back(DesiredRange{r.cidr, RuleKind::Admit, origin::kFeedGrace,
                                 by + ", admitted in grace until " + utc_day(r.grace_until)});
    else
      out.push_back(DesiredRange{r.cidr, RuleKind::Watch, origin::kFeedRemoved,
                                 by + (r.grace_until > r.removed_at ? ", grace ended " + utc_day(r.grace_until) : "")});
  }
  return out;
}

bool expire_grace(std::vector<RemovedRange>& removed, int64_t now) {
  bool changed = false;
  for (auto& r : removed)
    if (!r.grace_over && r.grace_until > 0 && now >= r.grace_until) {
      r.grace_over = true;
      changed = true;
    }
  return changed;
}

std::string utc_day(int64_t unix_s) {
  time_t t = static_cast<time_t>(unix_s);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[16];
  strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

}  // namespace smtpgate
