// A small HTTP GET client over libcurl for the feed: the system CA store,
// proxies from the environment or the configuration, bounded timeouts, and
// retries with exponential backoff for what a retry can fix.
#pragma once

#include <chrono>
#include <functional>
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
  /// with backoff; 429 throws RateLimited; anything else throws FetchError.
  HttpResponse get(const std::string& url);

  const HttpOptions& options() const { return options_; }

 private:
  struct Attempt;
  Attempt perform(const std::string& url);

  HttpOptions options_;
  void* curl_ = nullptr;  // CURL*
};

/// The User-Agent smtpgate sends: "smtpgate/VERSION".
std::string user_agent();

}  // namespace smtpgate
