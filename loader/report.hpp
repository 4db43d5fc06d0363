// What the read commands report, built once as JSON (the documented schema,
// docs/json-schema.md) and rendered as text from that same JSON, so the two
// views cannot disagree.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "cidr.hpp"
#include "state.hpp"

namespace smtpgate {

/// Schema version of every JSON document smtpgatectl prints.
constexpr int kJsonSchemaVersion = 1;

/// status: interfaces, mode, action, ports, ranges per origin, program ids.
nlohmann::json build_status(const Paths& paths);
/// ranges list: every range the gate knows, with kind, origin, rule id.
nlohmann::json build_ranges(const Paths& paths);
/// stats: per-range counters, the default rule, totals per verdict and reason.
nlohmann::json build_stats(const Paths& paths);
/// explain: the verdict a SYN from address would get now, and why.
nlohmann::json build_explain(const Paths& paths, const Cidr& address);

/// feed status: instance, applied version and source, last check, last error.
nlohmann::json build_feed_status(const Paths& paths);

std::string render_status(const nlohmann::json& j);
std::string render_feed_status(const nlohmann::json& j);
std::string render_ranges(const nlohmann::json& j);
std::string render_stats(const nlohmann::json& j);
std::string render_explain(const nlohmann::json& j);

/// What a sender (EOP) reports when this action refuses its SYN.
std::string eop_code_for(Action a);
/// A CLOCK_MONOTONIC_COARSE timestamp (ns, as the program records them) as
/// RFC 3339 wall-clock time.
std::string monotonic_to_wall(uint64_t mono_ns);

}  // namespace smtpgate
