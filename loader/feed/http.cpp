#include "http.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <mutex>
#include <thread>

#include "error.hpp"
#include "text.hpp"

#ifndef SMTPGATE_VERSION
#define SMTPGATE_VERSION "0"
#endif

namespace smtpgate {

namespace {
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr seconds kDefaultRateLimitWait{3600};
constexpr int kMaxRedirects = 5;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::optional<seconds> parse_seconds(std::string_view s) {
  s = trim(s);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || v < 0) return std::nullopt;
  // Cache-Control may be followed by more directives; Retry-After may not.
  return seconds(v);
}

// libcurl's own URL parser, so that what is checked is what libcurl fetches.
class ParsedUrl {
 public:
  explicit ParsedUrl(const std::string& url) : h_(curl_url()) {
    ok_ = h_ && curl_url_set(h_, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK;
  }
  ~ParsedUrl() { curl_url_cleanup(h_); }
  ParsedUrl(const ParsedUrl&) = delete;
  ParsedUrl& operator=(const ParsedUrl&) = delete;
  bool ok() const { return ok_; }
  std::string part(CURLUPart what) const {
    char* v = nullptr;
    if (!ok_ || curl_url_get(h_, what, &v, 0) != CURLUE_OK || !v) return "";
    std::string out(v);
    curl_free(v);
    return out;
  }
  void clear(CURLUPart what) { curl_url_set(h_, what, nullptr, 0); }

 private:
  CURLU* h_;
  bool ok_ = false;
};

std::string scheme_of(const std::string& url) { return lower(ParsedUrl(url).part(CURLUPART_SCHEME)); }

int progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const Cancellation*>(user)->cancelled() ? 1 : 0;
}

// Headers of the final response; a status line starts over (redirects, 100
// Continue, a proxy's CONNECT answer).
struct Headers {
  std::string content_type;
  std::optional<seconds> max_age, retry_after;

  void line(std::string_view l) {
    if (l.size() >= 5 && l.substr(0, 5) == "HTTP/") {
      *this = Headers{};
      return;
    }
    size_t colon = l.find(':');
    if (colon == std::string_view::npos) return;
    std::string name = lower(trim(l.substr(0, colon)));
    std::string_view value = trim(l.substr(colon + 1));
    if (name == "content-type") {
      content_type = std::string(value);
    } else if (name == "cache-control") {
      std::string v = lower(value);
      size_t p = v.find("max-age=");
      if (p != std::string::npos) {
        std::string_view rest = std::string_view(v).substr(p + 8);
        rest = rest.substr(0, rest.find_first_of(", "));
        max_age = parse_seconds(rest);
      }
    } else if (name == "retry-after") {
      if (auto s = parse_seconds(value)) {
        retry_after = s;
      } else {
        // An HTTP date.
        std::string date(value);
        time_t when = curl_getdate(date.c_str(), nullptr);
        if (when >= 0) retry_after = seconds(std::max<int64_t>(0, int64_t(when) - int64_t(::time(nullptr))));
      }
    }
  }
};

struct Sink {
  std::string body;
  size_t max = 0;
  bool too_large = false;
  Headers headers;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  size_t len = size * n;
  if (s->body.size() + len > s->max) {
    s->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  s->body.append(data, len);
  return len;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  static_cast<Sink*>(user)->headers.line(std::string_view(data, size * n));
  return size * n;
}

// Errors a later try can fix: the network, a server restarting.
bool retryable(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return true;
    default: return false;
  }
}

// What the operator can do about a libcurl error.
std::string hint(CURLcode c, bool proxied) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST: return proxied ? "" : ": check DNS, or set a proxy (feed.proxy or https_proxy)";
    case CURLE_COULDNT_RESOLVE_PROXY: return ": check the proxy name (feed.proxy or https_proxy)";
    case CURLE_COULDNT_CONNECT: return ": is the address reachable, or does a proxy need to be set?";
    case CURLE_PEER_FAILED_VERIFICATION:
      return ": the server's certificate is not trusted; behind an HTTPS-inspecting proxy, add its CA to the "
             "system store (update-ca-certificates)";
    case CURLE_PARTIAL_FILE: return ": the answer was cut short";
    default: return "";
  }
}
}  // namespace

std::string user_agent() { return std::string("smtpgate/") + SMTPGATE_VERSION; }

void Cancellation::cancel() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

bool Cancellation::sleep_for(milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, d, [this] { return cancelled_.load(); });
}

std::string display_url(const std::string& url) {
  ParsedUrl u(url);
  if (!u.ok()) {
    // Not a URL libcurl reads; still never show what could be a password.
    std::string s = url.substr(0, url.find_first_of("?#"));
    size_t start = s.find("://");
    start = start == std::string::npos ? 0 : start + 3;
    size_t at = s.rfind('@', s.find('/', start));
    if (at != std::string::npos && at >= start) s.erase(start, at + 1 - start);
    return s;
  }
  for (CURLUPart p : {CURLUPART_USER, CURLUPART_PASSWORD, CURLUPART_OPTIONS, CURLUPART_QUERY, CURLUPART_FRAGMENT})
    u.clear(p);
  return u.part(CURLUPART_URL);
}

bool is_loopback_host(std::string host) {
  host = lower(host);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  return inet_pton(AF_INET6, host.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

void check_fetch_url(const std::string& url, bool allow_http) {
  ParsedUrl u(url);
  std::string shown = display_url(url);
  if (!u.ok()) throw InputError("feed URL '" + shown + "' is not a URL: use https://HOST[/PATH]");
  std::string scheme = lower(u.part(CURLUPART_SCHEME));
  if (scheme == "https") return;
  if (scheme == "http" && (allow_http || is_loopback_host(u.part(CURLUPART_HOST)))) return;
  if (scheme == "http")
    throw InputError("feed URL '" + shown +
                     "' is plain http: anyone on the way could change the ranges the gate admits; use https:// "
                     "(a mirror behind an internal CA: [feed] ca_file), or set [feed] allow_http = true");
  throw InputError("feed URL '" + shown + "' is not https: use https://");
}

struct HttpClient::Attempt {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string error;    // libcurl's text when code != OK
  std::string refused;  // a redirect get() does not follow, and why
  Sink sink;
};

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
  global_init();
  CURL* c = curl_easy_init();
  if (!c) throw std::runtime_error("libcurl: cannot create a handle (out of memory?)");
  curl_ = c;
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent().c_str());
  // Redirects are followed by get(), one checked hop at a time; libcurl would
  // only ever follow one to https.
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  if (options_.cancel) {
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, options_.cancel.get());
  }
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // whatever this libcurl can decode
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, long(options_.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, long(options_.total_timeout.count()));
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
  // Unset, libcurl reads http_proxy/https_proxy/no_proxy itself; "" turns
  // proxies off, environment included.
  if (options_.proxy) curl_easy_setopt(c, CURLOPT_PROXY, options_.proxy->c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpClient::Attempt HttpClient::perform(const std::string& url) {
  CURL* c = static_cast<CURL*>(curl_);
  std::string hop = url;
  for (int redirects = 0;; redirects++) {
    Attempt a = perform_hop(hop);
    if (a.code != CURLE_OK || a.status < 300 || a.status >= 400) return a;
    char* location = nullptr;
    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
    if (!location) return a;  // a 3xx without Location: reported as its status
    std::string next = location;
    if (redirects == kMaxRedirects) {
      a.refused = "more than " + std::to_string(kMaxRedirects) + " redirects";
      return a;
    }
    if (scheme_of(hop) == "https" && scheme_of(next) != "https") {
      a.refused = "redirected to " + display_url(next) + ", refused: a redirect never leaves https";
      return a;
    }
    try {
      check_fetch_url(next, options_.allow_http);
    } catch (const InputError& e) {
      a.refused = "redirected, refused: " + std::string(e.what());
      return a;
    }
    hop = next;
  }
}

HttpClient::Attempt HttpClient::perform_hop(const std::string& url) {
  CURL* c = static_cast<CURL*>(curl_);
  Attempt a;
  a.sink.max = options_.max_body;
  char errbuf[CURL_ERROR_SIZE] = {0};
  ParsedUrl u(url);
  // Only the protocol the hop was checked for; a loopback host is never
  // reached through a proxy (plain http must not leave the machine).
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, lower(u.part(CURLUPART_SCHEME)) == "https" ? "https" : "http");
  curl_easy_setopt(c, CURLOPT_NOPROXY, is_loopback_host(u.part(CURLUPART_HOST)) ? "*" : nullptr);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &a.sink);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &a.sink);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  a.code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  if (a.code != CURLE_OK) a.error = errbuf[0] ? errbuf : curl_easy_strerror(a.code);
  return a;
}

HttpResponse HttpClient::get(const std::string& url) {
  const std::string shown = "GET " + display_url(url);
  check_fetch_url(url, options_.allow_http);
  if (scheme_of(url) == "http" && !is_loopback_host(ParsedUrl(url).part(CURLUPART_HOST)))
    spdlog::warn("{}: plain http (allow_http): anyone on the way can read and change the answer; use https", shown);
  const bool proxied = options_.proxy ? !options_.proxy->empty() : false;
  const unsigned attempts = std::max(1u, options_.attempts);
  const Cancellation* cancel = options_.cancel.get();
  milliseconds wait = options_.backoff;
  std::string last;
  long last_status = 0;
  for (unsigned i = 1; i <= attempts; i++) {
    if (i > 1) {
      spdlog::info("{}: {}; try {} of {} in {} ms", shown, last, i, attempts, wait.count());
      if (options_.sleep)
        options_.sleep(wait);
      else if (options_.cancel)
        options_.cancel->sleep_for(wait);
      else
        std::this_thread::sleep_for(wait);
      wait = std::min(wait * 2, options_.backoff_max);
    }
    if (cancel && cancel->cancelled()) throw Cancelled(shown + ": stopped");
    Attempt a = perform(url);
    if (a.code == CURLE_ABORTED_BY_CALLBACK && cancel && cancel->cancelled()) throw Cancelled(shown + ": stopped");
    if (!a.refused.empty()) throw FetchError(shown + ": " + a.refused, a.status);
    if (a.code != CURLE_OK) {
      if (a.sink.too_large)
        throw FetchError(shown + ": the answer is larger than " + std::to_string(options_.max_body) +
                         " bytes: not a feed response");
      last = a.error + hint(a.code, proxied);
      last_status = 0;
      if (retryable(a.code)) continue;
      throw FetchError(shown + ": " + last);
    }
    if (a.status >= 200 && a.status < 300) {
      HttpResponse r;
      r.status = a.status;
      r.body = std::move(a.sink.body);
      r.content_type = a.sink.headers.content_type;
      r.max_age = a.sink.headers.max_age;
      r.retry_after = a.sink.headers.retry_after;
      r.attempts = i;
      return r;
    }
    if (a.status == 429) {
      seconds w = a.sink.headers.retry_after.value_or(kDefaultRateLimitWait);
      throw RateLimited(shown + ": HTTP 429, the service asks to wait " + std::to_string(w.count()) + " s", w);
    }
    last = "HTTP " + std::to_string(a.status);
    last_status = a.status;
    if (a.status >= 500) continue;
    if (a.status == 407)
      throw FetchError(shown + ": HTTP 407, the proxy wants credentials: put them in the proxy URL", 407);
    throw FetchError(
        shown + ": " + last + (a.status >= 300 && a.status < 400 ? " (a redirect without a Location)" : ""), a.status);
  }
  throw FetchError(shown + ": " + last + " (after " + std::to_string(attempts) + " tries)", last_status);
}

}  // namespace smtpgate
