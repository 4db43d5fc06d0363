// GateMaps: the counters the program keeps (per rule, per verdict and
// reason, per CPU) and the recently-refused table, summed over CPUs.
#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "bpf_info.hpp"
#include "gate_maps.hpp"
#include "gate_maps_fds.hpp"
#include "map_names.hpp"

namespace smtpgate {

namespace {

template <typename T>
std::vector<T> lookup_percpu(int fd, uint32_t key) {
  // Per-CPU values come back as one 8-byte-aligned slot per possible CPU.
  static_assert(sizeof(T) % 8 == 0);
  std::vector<T> vals(possible_cpus());
  if (bpf_map_lookup_elem(fd, &key, vals.data()) != 0)
    throw SystemError("read per-CPU counter " + std::to_string(key), errno);
  return vals;
}

// The default rule's SYNs the program dropped on its quiet path, summed over
// CPUs: counted in cpu_state alone, they belong to rule 0's refusals and to
// the (drop, default) packet counter.
sg_counter quiet_drops(int cpu_state_fd) {
  sg_counter sum{};
  for (const auto& v : lookup_percpu<sg_cpu_state>(cpu_state_fd, 0)) {
    sum.packets += v.quiet_packets;
    sum.bytes += v.quiet_bytes;
  }
  return sum;
}

// The (verdict, reason) matrix, summed over CPUs, the quiet drops included.
std::array<sg_counter, SG_PACKET_COUNTERS> packet_matrix(int fd, int cpu_state_fd) {
  std::array<sg_counter, SG_PACKET_COUNTERS> out{};
  for (uint32_t i = 0; i < SG_PACKET_COUNTERS; i++)
    for (const auto& v : lookup_percpu<sg_counter>(fd, i)) {
      out[i].packets += v.packets;
      out[i].bytes += v.bytes;
    }
  sg_counter quiet = quiet_drops(cpu_state_fd);
  out[SG_COUNTER_INDEX(SG_VERDICT_DROP, SG_REASON_DEFAULT)].packets += quiet.packets;
  out[SG_COUNTER_INDEX(SG_VERDICT_DROP, SG_REASON_DEFAULT)].bytes += quiet.bytes;
  return out;
}

// Sums the matrix along one axis: by verdict or by reason.
template <size_t N, bool kByVerdict>
std::array<sg_counter, N> sum_axis(const std::array<sg_counter, SG_PACKET_COUNTERS>& m) {
  std::array<sg_counter, N> out{};
  for (uint32_t r = 0; r < SG_REASON_MAX; r++)
    for (uint32_t v = 0; v < SG_VERDICT_MAX; v++) {
      sg_counter& o = out[kByVerdict ? v : r];
      o.packets += m[SG_COUNTER_INDEX(v, r)].packets;
      o.bytes += m[SG_COUNTER_INDEX(v, r)].bytes;
    }
  return out;
}

// Adds one CPU's way of a set to the source it records.
void merge_way(const sg_recent_source& w, RecentSource& r, bool fresh) {
  if (fresh) {
    r.address = recorded_address(w.family, w.addr);
    r.first_seen_ns = w.first_seen_ns;
  }
  r.count += w.count;
  r.first_seen_ns = std::min<uint64_t>(r.first_seen_ns, w.first_seen_ns);
  if (fresh || w.last_seen_ns >= r.last_seen_ns) {
    r.last_seen_ns = w.last_seen_ns;
    r.rule_id = w.rule_id;
    r.last_port = w.last_port;
    r.last_verdict = w.last_verdict;
  }
}

}  // namespace

sg_rule_counters GateMaps::rule_counters(uint32_t rule_id) const {
  sg_rule_counters sum{};
  for (const auto& v : lookup_percpu<sg_rule_counters>(fds_->get(mapname::rule_counters), rule_id)) {
    sum.admit_packets += v.admit_packets;
    sum.admit_bytes += v.admit_bytes;
    sum.refuse_packets += v.refuse_packets;
    sum.refuse_bytes += v.refuse_bytes;
  }
  if (rule_id == SG_RULE_DEFAULT) {
    sg_counter quiet = quiet_drops(fds_->get(mapname::cpu_state));
    sum.refuse_packets += quiet.packets;
    sum.refuse_bytes += quiet.bytes;
  }
  return sum;
}

void GateMaps::reset_rule_counters(uint32_t rule_id) {
  std::vector<sg_rule_counters> zeros(possible_cpus());
  if (bpf_map_update_elem(fds_->get(mapname::rule_counters), &rule_id, zeros.data(), BPF_ANY) != 0)
    throw SystemError("reset counters of rule " + std::to_string(rule_id), errno);
}

std::array<sg_counter, SG_VERDICT_MAX> GateMaps::verdict_counters() const {
  return sum_axis<SG_VERDICT_MAX, true>(
      packet_matrix(fds_->get(mapname::packet_counters), fds_->get(mapname::cpu_state)));
}

std::array<sg_counter, SG_REASON_MAX> GateMaps::reason_counters() const {
  return sum_axis<SG_REASON_MAX, false>(
      packet_matrix(fds_->get(mapname::packet_counters), fds_->get(mapname::cpu_state)));
}

std::vector<RecentSource> GateMaps::recent_refused() const {
  int fd = fds_->get(mapname::recent_refused);
  uint32_t sets = map_info(fd, mapname::recent_refused).max_entries;
  // Each CPU keeps its own table; a source refused on several CPUs is merged.
  std::map<std::pair<uint8_t, std::array<uint8_t, 16>>, RecentSource> merged;
  for (uint32_t set = 0; set < sets; set++)
    for (const auto& cpu : lookup_percpu<sg_recent_set>(fd, set))
      for (const auto& w : cpu.way) {
        if (!w.count) continue;
        std::array<uint8_t, 16> addr;
        std::copy(std::begin(w.addr), std::end(w.addr), addr.begin());
        auto [it, fresh] = merged.try_emplace({w.family, addr});
        merge_way(w, it->second, fresh);
      }
  std::vector<RecentSource> out;
  out.reserve(merged.size());
  for (auto& [key, r] : merged) out.push_back(r);
  std::sort(out.begin(), out.end(),
            [](const RecentSource& a, const RecentSource& b) { return a.last_seen_ns > b.last_seen_ns; });
  return out;
}

uint64_t GateMaps::recent_skipped() const {
  uint64_t sum = 0;
  for (const auto& v : lookup_percpu<sg_cpu_state>(fds_->get(mapname::cpu_state), 0))
    sum += v.default_skipped + v.quiet_packets;
  return sum;
}

uint64_t GateMaps::range_skipped() const {
  uint64_t sum = 0;
  for (const auto& v : lookup_percpu<sg_cpu_state>(fds_->get(mapname::cpu_state), 0)) sum += v.range_skipped;
  return sum;
}

uint64_t GateMaps::events_suppressed() const {
  uint64_t sum = 0;
  for (const auto& v : lookup_percpu<sg_cpu_state>(fds_->get(mapname::cpu_state), 0)) sum += v.suppressed;
  return sum;
}

}  // namespace smtpgate
