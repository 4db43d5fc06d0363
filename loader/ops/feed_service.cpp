#include "feed_service.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <thread>

#include "http.hpp"

namespace smtpgate {

namespace {
constexpr std::chrono::milliseconds kStopWait{1500};

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

// The settings that decide what a fetch asked and where its answer goes.
bool same_source(const DaemonConfig& a, const DaemonConfig& b) {
  return a.feed.enabled == b.feed.enabled && a.feed.instance == b.feed.instance && a.feed.url == b.feed.url &&
         a.feed.ipv6 == b.feed.ipv6 && a.feed.proxy == b.feed.proxy && a.feed.allow_http == b.feed.allow_http &&
         a.feed.ca_file == b.feed.ca_file && a.feed.watch_other_instances == b.feed.watch_other_instances &&
         a.paths.state_dir == b.paths.state_dir && a.paths.pin_dir == b.paths.pin_dir;
}
}  // namespace

// One check's network half. The worker owns a reference, so a worker left
// running at exit (stop() gave up on it) never touches freed memory.
struct FeedService::Job {
  ConfigSnapshot cfg;
  FeedOp op = FeedOp::Check;
  std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>();
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::thread worker;
  // Written by the worker before `done`; read by the main loop after it.
  std::atomic<bool> done{false};
  std::optional<FeedFetched> fetched;
  std::string error;  // the network half threw (the service's failures are in fetched)
  bool cancelled = false;

  ~Job() {
    if (fd >= 0) ::close(fd);
  }
};

FeedService::~FeedService() { stop(kStopWait); }

FeedOp FeedService::first_op(const DaemonConfig& cfg) {
  try {
    if (read_feed_status(cfg.paths.state_dir, false).applied) return FeedOp::Check;
  } catch (const std::exception&) {
  }
  return FeedOp::SyncNow;
}

int FeedService::ms_until_due(const DaemonConfig& cfg) const {
  if (!cfg.feed.enabled || running()) return -1;
  int64_t due = not_before_;
  try {
    FeedStatus s = read_feed_status(cfg.paths.state_dir, false);
    due = std::max({due, s.next_check, s.rate_limited_until});
  } catch (const std::exception&) {
  }
  int64_t wait = std::clamp<int64_t>(due - ::time(nullptr), 1, 3600);
  return static_cast<int>(wait * 1000);
}

int FeedService::done_fd() const { return job_ ? job_->fd : -1; }

void FeedService::start(ConfigSnapshot cfg, FeedOp op) {
  if (job_) return;
  if (!cfg->feed.enabled) return;
  auto job = std::make_shared<Job>();
  if (job->fd < 0) {
    spdlog::error("feed: no check: eventfd: {}", std::strerror(errno));
    return;
  }
  job->cfg = std::move(cfg);
  job->op = op;
  job->worker = std::thread([job] {
    try {
      job->fetched = fetch_feed(*job->cfg, job->op, ::time(nullptr), job->cancel);
    } catch (const Cancelled&) {
      job->cancelled = true;
    } catch (const std::exception& e) {
      job->error = e.what();
    }
    job->done.store(true, std::memory_order_release);
    uint64_t one = 1;
    (void)!::write(job->fd, &one, sizeof one);
  });
  job_ = std::move(job);
}

void FeedService::count(SyncOutcome outcome) {
  auto i = static_cast<size_t>(outcome);
  if (i < outcomes_.size()) outcomes_[i]++;
}

void FeedService::finish(const ConfigSnapshot& current) {
  if (!job_ || !job_->done.load(std::memory_order_acquire)) return;
  std::shared_ptr<Job> job = std::move(job_);
  job->worker.join();
  const int64_t now = ::time(nullptr);
  if (job->cancelled) return;
  if (!job->error.empty()) {
    spdlog::error("feed: {}", job->error);
    count(SyncOutcome::Failed);
    not_before_ = now + 60;
    return;
  }
  if (!same_source(*job->cfg, *current)) {
    spdlog::info("feed: the feed's configuration changed during the check; its answer is dropped");
    not_before_ = 0;
    return;
  }
  try {
    SyncResult r = commit_feed(*current, *job->fetched, kLockWait);
    if (r.outcome != SyncOutcome::NotDue) log_result(r);
    count(r.outcome);
    // What the check named stands even when feed.json could not keep it: a
    // failure that cannot be saved is backed off all the same.
    not_before_ = std::max(r.next_check, now + 1);
  } catch (const std::exception& e) {
    spdlog::error("feed: {}", e.what());
    count(SyncOutcome::Failed);
    not_before_ = now + 60;
  }
}

bool FeedService::stop(std::chrono::milliseconds limit) {
  if (!job_) return true;
  std::shared_ptr<Job> job = std::move(job_);
  job->cancel->cancel();
  pollfd p{job->fd, POLLIN, 0};
  auto end = std::chrono::steady_clock::now() + limit;
  while (!job->done.load(std::memory_order_acquire)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
  if (job->done.load(std::memory_order_acquire)) {
    job->worker.join();
    return true;
  }
  spdlog::warn("feed: the running check did not stop within {} ms; it is left to end with the process", limit.count());
  job->worker.detach();
  return false;
}

std::vector<prometheus::MetricFamily> FeedService::metrics() const {
  prometheus::MetricFamily f{"smtpgate_feed_checks_total",
                             "Feed checks by outcome since smtpgated started",
                             prometheus::MetricType::Counter,
                             {}};
  for (SyncOutcome o : {SyncOutcome::Applied, SyncOutcome::Unchanged, SyncOutcome::Rejected, SyncOutcome::Failed,
                        SyncOutcome::RateLimited}) {
    prometheus::ClientMetric m;
    m.label.push_back({"outcome", to_string(o)});
    m.counter.value = static_cast<double>(outcomes_[static_cast<size_t>(o)].load());
    f.metric.push_back(std::move(m));
  }
  return {std::move(f)};
}

}  // namespace smtpgate
