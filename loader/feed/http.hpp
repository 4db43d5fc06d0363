// A small HTTP GET client over libcurl for the feed: https only (plain http
// to loopback, or when the operator allows it), redirects checked hop by hop
// (never from https down to http), the system CA store or a CA file, proxies
// from the environment or the configuration, bounded timeouts, retries with
// exponential backoff for what a retry can fix, and a way for another thread
// to stop it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

namespace smtpgate {

/// A fetch that gave no usable answer: the network (after the retries), the
/// server (5xx after the retries) or an HTTP status the caller cannot use. The
/// message names the URL (without its query) and the cause.
class FetchError : public std::runtime_error {
 public:
  explicit FetchError(const std::string& what, long status = 0) : std::runtime_error(what), status_(status) {}
  /// The HTTP status of the last answer; 0 when there was none.
  long status() const { return status_; }

 private:
  long status_;
};

/// HTTP 429: the service asks the client to come back later. Not retried at
/// once; wait() is Retry-After, or one hour when the server gave none.
class RateLimited : public FetchError {
 public:
  RateLimited(const std::string& what, std::chrono::seconds wait) : FetchError(what, 429), wait_(wait) {}
  std::chrono::seconds wait() const { return wait_; }

 private:
  std::chrono::seconds wait_;
};

/// get() stopped by Cancellation::cancel().
class Cancelled : public FetchError {
 public:
  using FetchError::FetchError;
};

/// Stops a get() from another thread: the transfer is aborted (libcurl asks
/// its progress callback at least once a second, also while the server says
/// nothing) and a wait between tries ends at once.
class Cancellation {
 public:
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  /// Waits up to d; true when cancelled before or meanwhile.
  bool sleep_for(std::chrono::milliseconds d);

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
};

/// The URL as messages, logs and the state show it: without user name,
/// password, query (the ClientRequestId) and fragment.
std::string display_url(const std::string& url);

/// True for 127.0.0.0/8, ::1 and "localhost" (libcurl never resolves that
/// name elsewhere).
bool is_loopback_host(std::string host);

/// Throws InputError naming the URL (as display_url shows it) and the fix
/// unless it may be fetched: https://, or plain http:// to a loopback host or
/// with allow_http.
void check_fetch_url(const std::string& url, bool allow_http);

struct HttpOptions {
  /// nullopt: libcurl's environment (http_proxy, https_proxy, no_proxy);
  /// "": no proxy at all; otherwise the proxy URL (http://proxy:3128).
  std::optional<std::string> proxy;
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(15)};
  /// For the whole transfer, so a server that drips bytes cannot hold the
  /// caller. With the retries, one get() is bounded by about
  /// attempts * total_timeout plus the backoff (about 100 s by default).
  std::chrono::milliseconds total_timeout{std::chrono::seconds(30)};
  /// Tries per get() for network errors and 5xx answers (1: no retry).
  unsigned attempts = 3;
  /// Wait before the second try; doubled before each further try, up to backoff_max.
  std::chrono::milliseconds backoff{std::chrono::seconds(2)};
  std::chrono::milliseconds backoff_max{std::chrono::seconds(60)};
  /// Larger answers are refused (the endpoints response is about 40 KB).
  size_t max_body = 16u << 20;
  /// Empty: the system CA store.
  std::string ca_file;
  /// Plain http:// to a host other than loopback; every such fetch warns.
  bool allow_http = false;
  /// Set: another thread may stop get() through it.
  std::shared_ptr<Cancellation> cancel;
  /// How to wait between tries; empty: sleep. Tests inject a recorder.
  std::function<void(std::chrono::milliseconds)> sleep;
};

/// A 2xx answer.
struct HttpResponse {
  long status = 0;
  std::string body;
  std::string content_type;
  std::optional<std::chrono::seconds> max_age;      // Cache-Control: max-age
  std::optional<std::chrono::seconds> retry_after;  // Retry-After, as a delay
  unsigned attempts = 0;                            // tries it took
};

/// One libcurl handle (connections are reused between calls); not copyable,
/// not for concurrent use from several threads.
class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// GETs url and returns a 2xx answer. Network errors and 5xx are retried
  /// with backoff; 429 throws RateLimited; a cancel throws Cancelled; a URL
  /// check_fetch_url refuses throws InputError; anything else throws
  /// FetchError. Redirects are followed (at most 5), each checked like url;
  /// once a hop was https, every further one must be.
  HttpResponse get(const std::string& url);

  const HttpOptions& options() const { return options_; }

 private:
  struct Attempt;
  Attempt perform(const std::string& url);
  Attempt perform_hop(const std::string& url);

  HttpOptions options_;
  void* curl_ = nullptr;  // CURL*
};

/// The User-Agent smtpgate sends: "smtpgate/VERSION".
std::string user_agent();

}  // namespace smtpgate
