// The feed sync's plumbing and its network half: fetch() asks the service
// and writes nothing (feed_sync.hpp).
#include "feed_sync.hpp"

#include <stdexcept>

#include "http.hpp"

namespace smtpgate {

std::string to_string(SyncOutcome o) {
  switch (o) {
    case SyncOutcome::NotDue: return "not-due";
    case SyncOutcome::Unchanged: return "unchanged";
    case SyncOutcome::Applied: return "applied";
    case SyncOutcome::Rejected: return "rejected";
    case SyncOutcome::Failed: return "failed";
    case SyncOutcome::RateLimited: return "rate-limited";
  }
  return "";
}

FeedSync::FeedSync(FeedSyncOptions options, FeedClient* client, ApplyFn apply)
    : options_(std::move(options)), client_(client), apply_(std::move(apply)) {
  reload();
}

void FeedSync::reload() {
  if (!options_.state_dir.empty()) status_ = read_feed_status(options_.state_dir, options_.holds_lock);
}

void FeedSync::save() {
  if (!options_.state_dir.empty()) write_feed_status(options_.state_dir, status_);
}

SyncResult FeedSync::check(int64_t now) { return commit(fetch(now, false)); }
SyncResult FeedSync::sync_now(int64_t now) { return commit(fetch(now, true)); }

void FeedSync::save_or_warn(SyncResult& r) {
  // Reported by the caller (the daemon's log, the command's one line).
  try {
    save();
  } catch (const std::exception& e) {
    r.warnings.push_back(std::string("feed status not saved: ") + e.what());
  }
}

std::string FeedSync::basis() const {
  std::string b = "applied:";
  if (status_.applied)
    b += to_string(status_.applied->instance) + "/" + status_.applied->version + "@" +
         std::to_string(status_.applied->fetched_at);
  b += " refused:";
  if (status_.rejected) b += status_.rejected->version + "@" + std::to_string(status_.rejected->at);
  return b;
}

FeedFetch FeedSync::fetch(int64_t now, bool forced) {
  reload();
  if (!client_) throw std::logic_error("FeedSync: a check needs a FeedClient");
  FeedFetch f;
  f.now = now;
  f.forced = forced;
  f.instance = options_.instance;
  f.basis = basis();
  f.early = not_asking(now, forced);
  if (!f.early) ask_service(f);
  return f;
}

std::optional<SyncResult> FeedSync::not_asking(int64_t now, bool forced) const {
  auto early = [&](SyncOutcome o, std::string message) {
    return SyncResult{o, std::move(message), {}, {}, {}, status_.next_check};
  };
  if (now < status_.rate_limited_until) {
    if (!forced) return early(SyncOutcome::NotDue, "next check at " + time_or_never(status_.next_check));
    return early(SyncOutcome::RateLimited, "the service asked smtpgate to wait until " +
                                               time_or_never(status_.rate_limited_until) +
                                               " (HTTP 429); try again then");
  }
  if (!forced && now < status_.next_check)
    return early(SyncOutcome::NotDue, "next check at " + time_or_never(status_.next_check));
  return std::nullopt;
}

namespace {
// A failure of the service, kept in f for commit().
void record_failure(FeedFetch& f, const std::exception& e, const std::string& context) {
  if (const auto* limited = dynamic_cast<const RateLimited*>(&e)) {
    f.failure = SyncOutcome::RateLimited;
    f.error = e.what();
    f.wait_s = limited->wait().count();
  } else {
    f.failure = SyncOutcome::Failed;
    f.error = context + e.what();
  }
}
}  // namespace

void FeedSync::ask_service(FeedFetch& f) const {
  // The service's failures are kept for commit(); a cancel is the caller's.
  try {
    f.version = client_->version(f.instance);
  } catch (const Cancelled&) {
    throw;
  } catch (const std::exception& e) {
    return record_failure(f, e, "feed check failed: ");
  }
  const std::string latest = f.version->latest;
  const bool same_instance = status_.applied && status_.applied->instance == f.instance;
  if (same_instance && status_.applied->version == latest) return;
  // The endpoints of a version validation refused are not fetched again until
  // the service publishes another one (or the operator asks: feed sync).
  if (!f.forced && status_.rejected && status_.rejected->version == latest) return;
  try {
    f.endpoints = client_->endpoints(f.instance);
  } catch (const Cancelled&) {
    throw;
  } catch (const std::exception& e) {
    return record_failure(f, e, "feed version " + latest + " could not be fetched: ");
  }
  if (options_.log_changes && same_instance && is_feed_version(status_.applied->version)) {
    try {
      f.changes = client_->changes(f.instance, status_.applied->version);
    } catch (const Cancelled&) {
      throw;
    } catch (const std::exception& e) {
      f.warnings.push_back("changes since " + status_.applied->version + " not available (" + e.what() +
                           "); added ranges are logged without effective dates");
    }
  }
}

}  // namespace smtpgate
