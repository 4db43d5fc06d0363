// What a rule and a verdict are, as the program and userspace both name them:
// the action on a refusal, the kind of a rule, one compiled allowlist entry,
// and the run-time settings. Values come from bpf/smtpgate_abi.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cidr.hpp"
#include "smtpgate_abi.h"

namespace smtpgate {

enum class Action : uint32_t { Drop = SG_ACTION_DROP, Reject = SG_ACTION_REJECT, Monitor = SG_ACTION_MONITOR };
enum class RuleKind : uint32_t { Admit = SG_KIND_ADMIT, Deny = SG_KIND_DENY, Watch = SG_KIND_WATCH };

/// "drop" / "reject" / "monitor"; parse throws InputError naming the word.
std::string to_string(Action a);
Action parse_action(std::string_view word);
std::string to_string(RuleKind k);
std::string verdict_name(uint32_t verdict);  // enum sg_verdict
std::string reason_name(uint32_t reason);    // enum sg_reason

/// A source as the program records it (family 4 or 6, 16 address bytes, an
/// IPv4 address in the first 4), as a full-length Cidr.
Cidr recorded_address(uint8_t family, const uint8_t* addr);

/// One prefix of the compiled allowlist and the rule that decides under it.
struct TrieEntry {
  Cidr prefix;
  uint32_t rule_id = 0;
  RuleKind kind = RuleKind::Admit;
  bool operator==(const TrieEntry&) const = default;
};

/// Run-time settings the program reads for every packet.
struct GateConfig {
  Action action = Action::Drop;
  std::vector<uint16_t> ports{25};
  uint32_t events_per_sec = 100;
  bool operator==(const GateConfig&) const = default;
};

}  // namespace smtpgate
