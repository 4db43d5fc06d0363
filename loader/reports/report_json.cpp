#include "report_json.hpp"

#include "clock.hpp"

namespace smtpgate {

using nlohmann::json;

json null_if_empty(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

json counters_json(const sg_rule_counters& c) {
  return {{"admit_packets", c.admit_packets},
          {"admit_bytes", c.admit_bytes},
          {"refuse_packets", c.refuse_packets},
          {"refuse_bytes", c.refuse_bytes}};
}

json desired_range_json(const DesiredRange& d) {
  return {{"range", d.cidr.str()}, {"kind", to_string(d.kind)}, {"origin", d.origin}, {"note", d.note}};
}

json refused_source_json(const RecentSource& s) {
  return {{"count", s.count},
          {"first_seen", monotonic_to_wall(s.first_seen_ns)},
          {"last_seen", monotonic_to_wall(s.last_seen_ns)},
          {"port", s.last_port},
          {"verdict", verdict_name(s.last_verdict)},
          {"rule_id", s.rule_id}};
}

}  // namespace smtpgate
