// Feed gaps: EOP sending from addresses Microsoft does not publish (its relay
// pool in 40.95.0.0/16, among others). For sources the gate turned away, a
// worker of the daemon looks up the PTR name and confirms it forward
// (fcrdns.hpp), off the packet path, a bounded number per minute, each
// answer kept a day (a failed lookup ten minutes). A source whose confirmed name lies under an EOP
// outbound domain is a feed gap: top, drops and explain mark it. The record
// is STATE_DIR/feed-gaps.json, written by the daemon alone.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cidr.hpp"
#include "config.hpp"
#include "fcrdns.hpp"

namespace smtpgate {

/// The domains EOP's outbound hosts are named under, per instance (their
/// PTR names: mail-XXX.outbound.protection.outlook.com, ...).
struct EopOutboundDomain {
  const char* domain;
  const char* instances;
};
constexpr std::array<EopOutboundDomain, 3> kEopOutboundDomains{{
    {"outbound.protection.outlook.com", "Worldwide"},
    {"outbound.protection.office365.us", "USGovGCCHigh, USGovDoD"},
    {"outbound.protection.partner.outlook.cn", "China"},
}};

/// The EOP outbound domain `name` lies under (case-insensitive, a trailing
/// dot ignored, on a label boundary), or nullptr.
const EopOutboundDomain* eop_outbound_domain(std::string_view name);

/// What the daemon learnt about one turned-away source.
struct FeedGapEntry {
  Cidr address;
  Fcrdns::Status status = Fcrdns::Status::Failed;
  std::string name;    // the confirmed (or first PTR) name
  std::string domain;  // the EOP outbound domain of a confirmed name, else ""
  int64_t checked_at = 0;
  int64_t last_seen = 0;  // last scan that found it turned away (or admitted)
  // admit_confirmed_eop: the range admitted for it ("" none), until when,
  // and its rule's admitted SYNs when last looked at.
  std::string admitted;
  int64_t admitted_until = 0;
  uint64_t admitted_syns = 0;
  /// A feed gap: EOP's own host, forward-confirmed.
  bool gap() const { return status == Fcrdns::Status::Confirmed && !domain.empty(); }
};

using FeedGaps = std::map<Cidr, FeedGapEntry>;

/// STATE_DIR/feed-gaps.json; missing or corrupt: none (a corrupt file is
/// never trusted, and replaced at the next scan).
FeedGaps read_feed_gaps(const std::string& state_dir);
void write_feed_gaps(const std::string& state_dir, const FeedGaps& gaps);

/// {"name", "domain", "instances", "checked_at"} of a feed gap, or null.
nlohmann::json feed_gap_json(const FeedGaps& gaps, const Cidr& address);
/// Sets a drop record's "feed_gap": its source's, or null.
void mark_feed_gap(nlohmann::json& record, const FeedGaps& gaps);
/// Feed gaps seen turned away in the last day (the metric).
size_t recent_feed_gaps(const FeedGaps& gaps, int64_t now);

/// How long an answer is kept before the source is looked up again.
constexpr int64_t kFeedGapAnswerTtl = 24 * 3600;
constexpr int64_t kFeedGapFailureTtl = 600;
/// Sources remembered at most (the oldest seen leave first).
constexpr size_t kMaxFeedGapEntries = 4096;

/// One scan: the sources in the recently-refused table and `logged` (the
/// sources of the drop log's records since the last scan: the event stream,
/// which can name a source the table has already let go), each looked up
/// unless its answer is fresh, at most `budget` lookups; the record
/// written. Returns the lookups made. No gate lock is held across the
/// lookups; it is taken only when an admission began or ended.
/// `stop` (may be null) ends it between two lookups.
/// With `policy` (admit_confirmed_eop and admit_days), a new feed gap is
/// admitted and an admission that saw no SYN for admit_days ends; the gate
/// is published again (under the gate lock, after the lookups).
size_t scan_feed_gaps(const Paths& paths, FcrdnsResolver& resolver, int64_t now, size_t budget,
                      const std::atomic<bool>* stop = nullptr, const FeedGapConfig& policy = {},
                      const std::vector<Cidr>& logged = {});

/// The distinct sources of drop-log records (at most kMaxFeedGapEntries).
std::vector<Cidr> logged_sources(const std::vector<nlohmann::json>& records);

/// The daemon's worker: a scan a minute with the configuration in force.
class FeedGapWatcher {
 public:
  explicit FeedGapWatcher(const CurrentConfig& config);
  /// Stops the worker; a lookup in flight ends by its deadline.
  ~FeedGapWatcher();
  FeedGapWatcher(const FeedGapWatcher&) = delete;
  FeedGapWatcher& operator=(const FeedGapWatcher&) = delete;

 private:
  void loop();
  const CurrentConfig& config_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace smtpgate
