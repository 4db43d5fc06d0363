#include "gate_types.hpp"

#include "error.hpp"

namespace smtpgate {

std::string to_string(Action a) {
  switch (a) {
    case Action::Drop: return "drop";
    case Action::Reject: return "reject";
    case Action::Monitor: return "monitor";
  }
  return "unknown";
}

Action parse_action(std::string_view word) {
  if (word == "drop") return Action::Drop;
  if (word == "reject") return Action::Reject;
  if (word == "monitor") return Action::Monitor;
  throw InputError("unknown action '" + std::string(word) + "': use drop, reject or monitor");
}

std::string to_string(RuleKind k) {
  switch (k) {
    case RuleKind::Admit: return "admit";
    case RuleKind::Deny: return "deny";
    case RuleKind::Watch: return "watch";
  }
  return "unknown";
}

std::string verdict_name(uint32_t v) {
  static const char* names[] = {"pass", "admit", "drop", "reject", "monitor"};
  return v < SG_VERDICT_MAX ? names[v] : "unknown";
}

std::string reason_name(uint32_t r) {
  static const char* names[] = {"not_ip",       "not_tcp",        "other_port", "not_syn",    "later_fragment",
                                "malformed",    "rule_admit",     "rule_deny",  "rule_watch", "default",
                                "no_allowlist", "reject_as_drop", "tag_limit"};
  static_assert(sizeof(names) / sizeof(names[0]) == SG_REASON_MAX);
  return r < SG_REASON_MAX ? names[r] : "unknown";
}

Cidr recorded_address(uint8_t family, const uint8_t* addr) {
  return Cidr::from_bytes(family == 6 ? Family::V6 : Family::V4, addr, family == 6 ? 128 : 32);
}

}  // namespace smtpgate
