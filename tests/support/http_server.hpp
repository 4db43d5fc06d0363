// A real HTTP/1.1 server on 127.0.0.1 (ephemeral port, its own thread) for
// the feed tests: scripted answers per path prefix, a log of every request,
// and the faults a feed server shows in the wild (hanging, resetting,
// dripping, answering late, cutting the body short). One connection per
// request. Plain, or HTTPS (OpenSSL) with a certificate of a test CA.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sgtest {

enum class Fault {
  None,
  Hang,      // read the request, never answer (until the client gives up)
  Reset,     // read the request, close with RST (SO_LINGER 0)
  Slow,      // send the answer one byte at a time, `drip` apart
  Truncate,  // announce Content-Length larger than the body sent, then close
  Late,      // answer whole, but only `drip` after the request
};

/// One scripted answer.
struct Reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  Fault fault = Fault::None;
  std::chrono::milliseconds drip{50};  // Slow: between bytes; Late: before the answer

  /// 200 (or `status`) with Content-Type application/json.
  static Reply json(std::string body, int status = 200);
  static Reply fault_reply(Fault f);
  Reply& header(std::string name, std::string value);
};

/// One request as the server read it.
struct Request {
  std::string method;
  std::string target;  // as sent (absolute form when sent to a proxy)
  std::string host;    // from an absolute-form target, else the Host header
  std::string path;    // without the query
  std::string query;
  std::map<std::string, std::string> headers;  // names lower-case
  /// The value of a query parameter (exact name), "" if absent.
  std::string param(const std::string& name) const;
};

/// A test certificate authority and a server certificate it signed for
/// 127.0.0.1 and localhost, made with the openssl command in a directory of
/// their own (removed on destruction). Valid for two days.
class TestPki {
 public:
  TestPki();
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;
  std::string ca_file() const { return dir_ + "/ca.pem"; }
  std::string cert_file() const { return dir_ + "/server.pem"; }
  std::string key_file() const { return dir_ + "/server.key"; }

 private:
  std::string dir_;
};

class HttpServer {
 public:
  /// Listens on 127.0.0.1 on a free port and starts serving.
  HttpServer();
  /// The same over TLS, with pki's server certificate.
  explicit HttpServer(const TestPki& pki);
  /// Stops serving; every connection (hanging ones too) is closed.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  /// "http://127.0.0.1:PORT" ("https://..." over TLS)
  std::string url() const;

  /// Answers every request whose path starts with prefix (the longest
  /// matching prefix wins; unrouted paths get 404).
  void route(const std::string& prefix, Reply reply);
  /// Answers with the replies in turn; the last one repeats.
  void route(const std::string& prefix, std::vector<Reply> replies);

  /// Every request so far, in arrival order.
  std::vector<Request> requests() const;
  /// How many requests had a path starting with prefix.
  size_t count(const std::string& prefix) const;
  void clear_requests();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sgtest
