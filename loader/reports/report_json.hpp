// Pieces of JSON that several reports print alike (docs/json-schema.md).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "gate_maps.hpp"
#include "ruleset.hpp"

namespace smtpgate {

/// Schema version of every JSON document smtpgatectl prints.
constexpr int kJsonSchemaVersion = 1;

/// text, or null when it is empty.
nlohmann::json null_if_empty(const std::string& text);

/// A rule's counters: admit and refuse packets and bytes.
nlohmann::json counters_json(const sg_rule_counters& c);

/// A desired range: range, kind, origin, note.
nlohmann::json desired_range_json(const DesiredRange& d);

/// A source of the recently-refused table: count, first and last seen (RFC
/// 3339), the last port and verdict, the deciding rule's id.
nlohmann::json refused_source_json(const RecentSource& s);

}  // namespace smtpgate
