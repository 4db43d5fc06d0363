// Start-up steps of unbounded length under systemd (see StartupGrace).
#pragma once

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace smtpgate {

// While a start-up step of unbounded length runs (the first sync, when only
// the feed can fill the allowlist), asks systemd for more start time
// (sd_notify EXTEND_TIMEOUT_USEC) at once and every kGraceS / 3 seconds, so
// that a slow feed server does not make it kill the daemon at
// TimeoutStartSec. At most kMaxS in all: a start that hangs longer still
// times out. Outside systemd sd_notify does nothing.
class StartupGrace {
 public:
  static constexpr int kGraceS = 60;
  static constexpr int kMaxS = 900;

  explicit StartupGrace(const char* step) : step_(step) {
    extend();
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      auto end = std::chrono::steady_clock::now() + std::chrono::seconds(kMaxS - kGraceS);
      while (!done_ && std::chrono::steady_clock::now() < end)
        if (!cv_.wait_for(lock, std::chrono::seconds(kGraceS / 3), [this] { return done_; })) extend();
    });
  }
  ~StartupGrace() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  StartupGrace(const StartupGrace&) = delete;
  StartupGrace& operator=(const StartupGrace&) = delete;

 private:
  void extend() {
    sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu\nSTATUS=%s", static_cast<unsigned long long>(kGraceS) * 1000000ULL, step_);
  }
  const char* step_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace smtpgate
