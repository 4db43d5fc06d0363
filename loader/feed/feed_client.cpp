#include "feed_client.hpp"

#include <spdlog/spdlog.h>
#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <random>

#include "error.hpp"
#include "fsutil.hpp"
#include "state_file.hpp"
#include "text.hpp"

namespace smtpgate {

namespace {
std::string trim_slashes(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

FeedClientOptions checked(FeedClientOptions o) {
  o.base_url = trim_slashes(o.base_url);
  check_fetch_url(o.base_url, o.http.allow_http);
  return o;
}

void random_bytes(uint8_t* out, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(out + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      // No getrandom (very old kernel): the id needs to be unique, not secret.
      std::random_device rd;
      for (; got < n; got++) out[got] = static_cast<uint8_t>(rd());
      return;
    }
    got += static_cast<size_t>(r);
  }
}
}  // namespace

std::string random_uuid_v4() {
  uint8_t b[16];
  random_bytes(b, sizeof b);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char s[37];
  std::snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
                b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return s;
}

bool is_guid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

std::string load_or_create_client_request_id(const std::string& state_dir) {
  std::string path = state_dir + "/client-request-id";
  std::string kept;
  read_state_file(
      path,
      [&](const std::string& text) {
        std::string_view id = trim(text);
        if (!is_guid(id)) throw InputError("not a GUID");
        kept = id;
      },
      [](const CorruptFile& c) {
        spdlog::warn("{} does not hold a GUID; moved to {}, a new ClientRequestId is generated", c.path, c.moved_to);
      });
  if (!kept.empty()) return kept;
  std::string id = random_uuid_v4();
  make_dirs(state_dir, 0755);
  write_file_atomic(path, id + "\n", 0644);
  return id;
}

FeedClient::FeedClient(FeedClientOptions options)
    : options_(checked(std::move(options))),
      client_request_id_(options_.state_dir.empty() ? random_uuid_v4()
                                                    : load_or_create_client_request_id(options_.state_dir)),
      http_(options_.http) {}

std::string FeedClient::version_url(Instance instance) const {
  return options_.base_url + "/version/" + to_string(instance) + "?ClientRequestId=" + client_request_id_;
}

std::string FeedClient::endpoints_url(Instance instance) const {
  return options_.base_url + "/endpoints/" + to_string(instance) + "?ClientRequestId=" + client_request_id_ +
         "&ServiceAreas=Exchange" + (options_.ipv6 ? "" : "&NoIPv6=true");
}

std::string FeedClient::changes_url(Instance instance, std::string_view since) const {
  return options_.base_url + "/changes/" + to_string(instance) + "/" + std::string(since) +
         "?ClientRequestId=" + client_request_id_;
}

VersionAnswer FeedClient::version(Instance instance) {
  std::string url = version_url(instance);
  HttpResponse r = http_.get(url);
  FeedVersion v = parse_version(r.body, instance, "version response from " + display_url(url));
  return VersionAnswer{v.latest, r.max_age};
}

EndpointsAnswer FeedClient::endpoints(Instance instance) {
  std::string url = endpoints_url(instance);
  HttpResponse r = http_.get(url);
  EndpointsAnswer a;
  a.source = display_url(url);
  a.sets = parse_endpoints(r.body, "endpoints response from " + a.source);
  return a;
}

std::vector<ChangeRecord> FeedClient::changes(Instance instance, std::string_view since) {
  if (!is_feed_version(since))
    throw InputError("changes since '" + std::string(since) + "': a version is 10 digits (YYYYMMDDNN)");
  std::string url = changes_url(instance, since);
  HttpResponse r = http_.get(url);
  return parse_changes(r.body, "changes response from " + display_url(url));
}

}  // namespace smtpgate
