#include "desired_set.hpp"

#include "feed_ranges.hpp"

namespace smtpgate {

std::vector<DesiredRange> desired_ranges(const StateStore& store) {
  std::vector<DesiredRange> out;
  for (const auto& r : store.operator_ranges())
    out.push_back(DesiredRange{r.cidr, r.kind, origin::kOperator, r.comment});
  for (auto& d : feed_desired_ranges(store.dir())) out.push_back(std::move(d));
  return out;
}

}  // namespace smtpgate
