// The ranges the gate should know, as the reports read them: whole, or per
// file only when it changed; and which of them are Microsoft's. Every call
// of the desired-set assembly (desired_set.hpp, feed_ranges.hpp) the
// reports make is in desired_state.cpp.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "ruleset.hpp"

namespace smtpgate {

/// Every range the gate should know now (desired_ranges), from state_dir.
std::vector<DesiredRange> read_desired_ranges(const std::string& state_dir);

/// True for the origins that mean "Microsoft publishes this range".
bool is_feed_origin(const std::string& origin);

/// The feed-origin ranges among some desired ranges, to tell whether an
/// address is Microsoft's with one set lookup per prefix length, not a scan.
class FeedCover {
 public:
  FeedCover() = default;
  explicit FeedCover(const std::vector<DesiredRange>& desired);
  /// True when the address lies inside any of the ranges.
  bool contains(const Cidr& address) const;

 private:
  std::set<Cidr> ranges_;
};

/// The desired ranges of a state directory (read_desired_ranges), read only
/// when asked and again only after a file changed (its device, inode, size
/// or modification time): the operator's ranges apart from the feed's, so
/// that a feed check, which rewrites feed.json, does not re-read a large
/// ranges.json.
class DesiredState {
 public:
  explicit DesiredState(std::string state_dir);
  ~DesiredState();
  DesiredState(const DesiredState&) = delete;
  DesiredState& operator=(const DesiredState&) = delete;
  /// The range that explains a trie entry, as DesiredIndex::find over
  /// read_desired_ranges() finds it; nullopt when none does.
  std::optional<DesiredRange> explain(const TrieEntry& entry);
  /// True when the address lies inside a feed-origin range (FeedCover) of
  /// the feed's files.
  bool microsoft(const Cidr& address);

 private:
  struct Part;
  std::string dir_;
  std::unique_ptr<Part> operator_, feed_;
};

}  // namespace smtpgate
