// From the ranges the gate should know (operator's, feed's, watched) to the
// trie entries the program reads, with rule ids that stay put while a range
// stays, so its counters carry across every publish.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "gate_types.hpp"

namespace smtpgate {

/// Where a range comes from. Bounded set: used as a metrics label.
namespace origin {
constexpr const char* kOperator = "operator";           // smtpgatectl ranges add/import
constexpr const char* kFeed = "feed";                   // applied feed version
constexpr const char* kFeedPending = "feed-pending";    // published, not applied
constexpr const char* kFeedGrace = "feed-grace";        // removed, still admitted in grace
constexpr const char* kFeedRemoved = "feed-removed";    // removed, grace over: refused, explained
constexpr const char* kFeedOther = "feed-other";        // other instances' port-25 sets
constexpr const char* kEopConfirmed = "eop-confirmed";  // feed gap admitted (admit_confirmed_eop)
}  // namespace origin

/// One range the gate should know, with what it does and why it is there.
struct DesiredRange {
  Cidr cidr;
  RuleKind kind = RuleKind::Admit;
  std::string origin;  // one of origin::*
  std::string note;    // operator comment, or "version 2025120100, effective 20251201"
};

/// The result of compiling: what to publish, and which rule ids are new (their
/// counters must be zeroed before the publish).
struct CompiledRules {
  std::vector<TrieEntry> entries;
  std::vector<uint32_t> fresh_ids;
};

/// Compiles desired ranges into trie entries.
/// - The same prefix from several origins becomes one entry: deny beats admit
///   beats watch.
/// - A watch prefix inside an admit or deny prefix (equal or longer) is left
///   out: the trie's longest match would otherwise let it override the admit.
/// - A prefix present in `current` with the same kind keeps its rule id; new
///   entries take the lowest ids used by neither `current` nor the result.
/// Throws InputError when more than max_rules - 1 entries are needed.
CompiledRules compile_rules(const std::vector<DesiredRange>& desired, const std::vector<TrieEntry>& current,
                            uint32_t max_rules);

/// The desired ranges by prefix: which one explains a trie entry (same
/// prefix, the winning kind), without a scan per entry. Holds pointers into
/// the vector it is built from.
class DesiredIndex {
 public:
  explicit DesiredIndex(const std::vector<DesiredRange>& desired);
  /// The range that explains entry, or nullptr.
  const DesiredRange* find(const TrieEntry& entry) const;

 private:
  std::vector<const DesiredRange*> by_prefix_;  // in prefix order, stable
};

}  // namespace smtpgate
