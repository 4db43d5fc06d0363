#include "eop_admit.hpp"

#include <spdlog/spdlog.h>

#include "gate_maps.hpp"
#include "grace.hpp"

namespace smtpgate {

Cidr eop_admission_range(const Cidr& host, const std::string& policy) {
  if (policy != "24") return host;
  return Cidr::from_bytes(host.family(), host.bytes().data(), host.family() == Family::V4 ? 24 : 64);
}

bool update_eop_admissions(FeedGaps& gaps, const Paths& paths, const FeedGapConfig& policy, int64_t now) {
  bool on = policy.admit_confirmed_eop == "address" || policy.admit_confirmed_eop == "24";
  const int64_t period = int64_t{policy.admit_days} * 24 * 3600;
  std::optional<GateMaps> maps;
  if (GateMaps::pinned_at(paths.pin_dir)) maps.emplace(GateMaps::open_pinned(paths.pin_dir));
  bool changed = false;
  for (auto& [address, g] : gaps) {
    if (!g.admitted.empty()) {
      // Seen again: its rule admitted SYNs since the last look.
      if (maps) {
        std::optional<TrieEntry> m = maps->match(address);
        if (m && m->kind == RuleKind::Admit && m->prefix.str() == g.admitted) {
          uint64_t syns = maps->rule_counters(m->rule_id).admit_packets;
          if (syns > g.admitted_syns) {
            g.admitted_syns = syns;
            g.admitted_until = now + period;
            g.last_seen = now;
          }
        }
      }
      if (!on || g.admitted_until <= now) {
        spdlog::warn(
            "admit_confirmed_eop: admission of {} (EOP host {}) ended{}", g.admitted, g.name,
            on ? ": no SYN from it for " + std::to_string(policy.admit_days) + " days" : ": the policy is off");
        g.admitted.clear();
        g.admitted_until = 0;
        g.admitted_syns = 0;
        changed = true;
      }
      continue;
    }
    if (!on || !g.gap()) continue;
    g.admitted = eop_admission_range(address, policy.admit_confirmed_eop).str();
    g.admitted_until = now + period;
    g.admitted_syns = 0;
    spdlog::warn(
        "admit_confirmed_eop: admitted {} for EOP host {} ({} confirmed forward, not in the published "
        "set) until {}",
        g.admitted, g.name, address.address_str(), utc_day(g.admitted_until));
    changed = true;
  }
  return changed;
}

std::vector<DesiredRange> eop_admitted_ranges(const FeedGaps& gaps, int64_t now) {
  std::vector<DesiredRange> out;
  for (const auto& [address, g] : gaps)
    if (!g.admitted.empty() && g.admitted_until > now)
      out.push_back(DesiredRange{Cidr::parse(g.admitted), RuleKind::Admit, origin::kEopConfirmed,
                                 "EOP host " + g.name + " (" + address.address_str() +
                                     ", PTR confirmed forward), admitted by admit_confirmed_eop until " +
                                     utc_day(g.admitted_until)});
  return out;
}

}  // namespace smtpgate
