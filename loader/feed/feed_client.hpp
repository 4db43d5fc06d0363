// The Microsoft 365 IP address and URL web service, as three calls: version,
// endpoints (the Exchange sets) and changes. Each answer is parsed (feed.hpp)
// before it is returned; network trouble throws FetchError, HTTP 429 throws
// RateLimited, a response that is not what the method returns throws
// InputError naming the URL.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "feed.hpp"
#include "http.hpp"

namespace smtpgate {

constexpr const char* kDefaultFeedUrl = "https://endpoints.office.com";

struct FeedClientOptions {
  /// The service or a mirror serving the same paths (--feed-url).
  std::string base_url = kDefaultFeedUrl;
  /// Where the ClientRequestId is kept (file client-request-id); empty: an id
  /// for this process only.
  std::string state_dir;
  /// false adds NoIPv6=true to the endpoints call.
  bool ipv6 = true;
  HttpOptions http;
};

/// The version method's answer.
struct VersionAnswer {
  std::string latest;                           // 10 digits
  std::optional<std::chrono::seconds> max_age;  // Cache-Control (the service sends 1 hour)
};

/// The endpoints method's answer.
struct EndpointsAnswer {
  std::string source;  // URL without its query, for messages and the status
  std::vector<EndpointSet> sets;
};

class FeedClient {
 public:
  /// Loads (or creates, once) the ClientRequestId in options.state_dir.
  explicit FeedClient(FeedClientOptions options);

  /// The GUID sent as ClientRequestId on every call.
  const std::string& client_request_id() const { return client_request_id_; }

  /// GET /version/<Instance>: the latest version of the instance's data.
  VersionAnswer version(Instance instance);
  /// GET /endpoints/<Instance>?ServiceAreas=Exchange[&NoIPv6=true].
  EndpointsAnswer endpoints(Instance instance);
  /// GET /changes/<Instance>/<since>: the change records after `since` (10
  /// digits; "0000000000" is every change ever made).
  std::vector<ChangeRecord> changes(Instance instance, std::string_view since);

  /// The URLs those calls fetch (with the query).
  std::string version_url(Instance instance) const;
  std::string endpoints_url(Instance instance) const;
  std::string changes_url(Instance instance, std::string_view since) const;

 private:
  FeedClientOptions options_;
  std::string client_request_id_;
  HttpClient http_;
};

/// A random (version 4) UUID in lower-case 8-4-4-4-12 form.
std::string random_uuid_v4();
/// True for the 8-4-4-4-12 hexadecimal GUID form.
bool is_guid(std::string_view s);
/// The ClientRequestId kept in STATE_DIR/client-request-id: read it, or create
/// it (atomically) the first time. A file that does not hold a GUID is set
/// aside and replaced.
std::string load_or_create_client_request_id(const std::string& state_dir);

}  // namespace smtpgate
