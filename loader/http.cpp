#include "http.hpp"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <mutex>
#include <thread>

#ifndef SMTPGATE_VERSION
#define SMTPGATE_VERSION "0"
#endif

namespace smtpgate {

namespace {
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr seconds kDefaultRateLimitWait{3600};

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return o;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

std::optional<seconds> parse_seconds(std::string_view s) {
  s = trim(s);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || v < 0) return std::nullopt;
  // Cache-Control may be followed by more directives; Retry-After may not.
  return seconds(v);
}

// The URL as messages show it: the query (ClientRequestId=...) is noise there.
std::string without_query(const std::string& url) { return url.substr(0, url.find('?')); }

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
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

// What the operator can do about a libcurl error.
std::string hint(CURLcode c, bool proxied) {
  switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
      return proxied ? "" : ": check DNS, or set a proxy (feed.proxy or https_proxy)";
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

struct HttpClient::Attempt {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string error;  // libcurl's text when code != OK
  Sink sink;
};

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
  global_init();
  CURL* c = curl_easy_init();
  if (!c) throw std::runtime_error("libcurl: cannot create a handle (out of memory?)");
  curl_ = c;
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent().c_str());
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(c, CURLOPT_PROTOCOLS, long(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, long(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
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
  Attempt a;
  a.sink.max = options_.max_body;
  char errbuf[CURL_ERROR_SIZE] = {0};
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
  const std::string shown = "GET " + without_query(url);
  const bool proxied = options_.proxy ? !options_.proxy->empty() : false;
  const unsigned attempts = std::max(1u, options_.attempts);
  milliseconds wait = options_.backoff;
  std::string last;
  long last_status = 0;
  for (unsigned i = 1; i <= attempts; i++) {
    if (i > 1) {
      spdlog::info("{}: {}; try {} of {} in {} ms", shown, last, i, attempts, wait.count());
      if (options_.sleep)
        options_.sleep(wait);
      else
        std::this_thread::sleep_for(wait);
      wait = std::min(wait * 2, options_.backoff_max);
    }
    Attempt a = perform(url);
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
    if (a.status == 407) throw FetchError(shown + ": HTTP 407, the proxy wants credentials: put them in the proxy URL", 407);
    throw FetchError(shown + ": " + last + (a.status >= 300 && a.status < 400 ? " (a redirect that was not followed)" : ""),
                     a.status);
  }
  throw FetchError(shown + ": " + last + " (after " + std::to_string(attempts) + " tries)", last_status);
}

}  // namespace smtpgate
