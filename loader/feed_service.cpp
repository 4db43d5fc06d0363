#include "feed_service.hpp"

#include <spdlog/spdlog.h>

#include <ctime>

#include "feed_ranges.hpp"

namespace smtpgate {

namespace {
void log_result(const SyncResult& r) {
  // FeedSync itself logs each range added (with its effective date) and
  // removed; this is the outcome.
  for (const auto& w : r.warnings) spdlog::warn("feed: {}", w);
  switch (r.outcome) {
    case SyncOutcome::Applied: spdlog::warn("feed: {}", r.message); break;
    case SyncOutcome::Unchanged:
    case SyncOutcome::NotDue: spdlog::info("feed: {}", r.message); break;
    default: spdlog::error("feed: {}", r.message); break;
  }
}
}  // namespace

FeedService::FeedService(const DaemonConfig& cfg) : cfg_(cfg) {}

void FeedService::start_up() {
  if (!cfg_.feed.enabled) return;
  try {
    // With a last known good the gate comes up with it and the next check
    // follows the interval; without one, ask now.
    bool have = read_feed_status(cfg_.paths.state_dir).applied.has_value();
    log_result(run_feed(cfg_, have ? FeedOp::Check : FeedOp::SyncNow, ::time(nullptr)));
  } catch (const std::exception& e) {
    spdlog::error("feed: {}", e.what());
  }
}

int FeedService::ms_until_next_check() const {
  if (!cfg_.feed.enabled) return -1;
  int64_t next = 0;
  try {
    next = read_feed_status(cfg_.paths.state_dir).next_check;
  } catch (...) {
  }
  int64_t wait = next - ::time(nullptr);
  if (wait < 1) wait = 1;
  if (wait > 3600) wait = 3600;
  return static_cast<int>(wait * 1000);
}

void FeedService::check_now_if_due() {
  if (!cfg_.feed.enabled) return;
  try {
    SyncResult r = run_feed(cfg_, FeedOp::Check, ::time(nullptr));
    if (r.outcome != SyncOutcome::NotDue) log_result(r);
  } catch (const std::exception& e) {
    spdlog::error("feed: {}", e.what());
  }
}

void FeedService::reconfigure(const DaemonConfig& cfg) { cfg_ = cfg; }

}  // namespace smtpgate
