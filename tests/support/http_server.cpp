#include "http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "netns.hpp"

namespace sgtest {

Reply Reply::json(std::string body, int status) {
  Reply r;
  r.status = status;
  r.body = std::move(body);
  r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
  return r;
}

Reply Reply::fault_reply(Fault f) {
  Reply r = json("[]");
  r.fault = f;
  return r;
}

Reply& Reply::header(std::string name, std::string value) {
  headers.emplace_back(std::move(name), std::move(value));
  return *this;
}

std::string Request::param(const std::string& name) const {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    std::string kv = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name) return eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return "";
}

namespace {
const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 407: return "Proxy Authentication Required";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

struct Route {
  std::vector<Reply> replies;
  size_t next = 0;
};

// One accepted connection, plain or TLS.
struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  ~Conn() {
    if (ssl) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
  }
  bool buffered() const { return ssl && SSL_pending(ssl) > 0; }
  ssize_t recv(char* buf, size_t n) {
    if (!ssl) return ::recv(fd, buf, n, 0);
    int r = SSL_read(ssl, buf, static_cast<int>(n));
    return r > 0 ? r : (SSL_get_error(ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
  }
  ssize_t send(const char* data, size_t n) {
    if (!ssl) return ::send(fd, data, n, MSG_NOSIGNAL);
    int r = SSL_write(ssl, data, static_cast<int>(n));
    return r > 0 ? r : -1;
  }
};
}  // namespace

TestPki::TestPki() {
  dir_ = (std::filesystem::temp_directory_path() /
          ("sgt" + std::to_string(::getpid()) + "-pki-" + std::to_string(reinterpret_cast<uintptr_t>(this))))
             .string();
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ + "/server.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                         "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  sh("cd " + dir_ + " && openssl req -x509" + ec + " -keyout ca.key -out ca.pem -days 2 -subj /CN=smtpgate-test-ca" +
     " && openssl req" + ec + " -keyout server.key -out server.csr -subj /CN=127.0.0.1" +
     " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext"
     " -out server.pem");
}

TestPki::~TestPki() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

struct HttpServer::Impl {
  SSL_CTX* tls = nullptr;  // null: plain HTTP
  int listen_fd = -1;
  int stop_fd = -1;  // eventfd: readable once the server stops
  uint16_t port = 0;
  std::thread acceptor;
  std::mutex mu;
  std::vector<std::thread> workers;
  std::map<std::string, Route> routes;
  std::vector<Request> log;
  std::atomic<bool> stopping{false};

  // Waits until fd has `events` or the server stops; false on stop or timeout.
  bool wait_for(int fd, short events, int timeout_ms = -1) {
    pollfd p[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    for (;;) {
      int n = ::poll(p, 2, timeout_ms);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      if (p[1].revents) return false;
      return true;
    }
  }

  // Sleeps, waking early when the server stops; false on stop.
  bool pause(std::chrono::milliseconds d) {
    pollfd p = {stop_fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(d.count())) == 0;
  }

  bool send_all(Conn& c, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      if (!wait_for(c.fd, POLLOUT)) return false;
      ssize_t n = c.send(data.data() + off, data.size() - off);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return false;
      }
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads the request head; false if the peer closed first or the server stops.
  bool read_head(Conn& c, std::string& head) {
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      if (head.size() > 65536) return false;
      if (!c.buffered() && !wait_for(c.fd, POLLIN, 10000)) return false;
      ssize_t n = c.recv(buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      head.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  static Request parse(const std::string& head) {
    Request r;
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    r.method = line.substr(0, sp1);
    r.target = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = eol + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos || e == pos) break;
      std::string h = head.substr(pos, e - pos);
      size_t colon = h.find(':');
      if (colon != std::string::npos) r.headers[lower(trim(h.substr(0, colon)))] = trim(h.substr(colon + 1));
      pos = e + 2;
    }
    std::string origin_form = r.target;
    r.host = r.headers.count("host") ? r.headers["host"] : "";
    if (origin_form.rfind("http://", 0) == 0 || origin_form.rfind("https://", 0) == 0) {
      size_t host_start = origin_form.find("//") + 2;
      size_t slash = origin_form.find('/', host_start);
      r.host = origin_form.substr(host_start, slash == std::string::npos ? std::string::npos : slash - host_start);
      origin_form = slash == std::string::npos ? "/" : origin_form.substr(slash);
    }
    size_t q = origin_form.find('?');
    r.path = origin_form.substr(0, q);
    r.query = q == std::string::npos ? "" : origin_form.substr(q + 1);
    return r;
  }

  Reply pick(const std::string& path) {
    std::lock_guard<std::mutex> lk(mu);
    Route* best = nullptr;
    size_t best_len = 0;
    for (auto& [prefix, route] : routes)
      if (path.rfind(prefix, 0) == 0 && (best == nullptr || prefix.size() > best_len)) {
        best = &route;
        best_len = prefix.size();
      }
    if (!best || best->replies.empty()) {
      Reply r;
      r.status = 404;
      r.body = "no route for " + path + "\n";
      return r;
    }
    Reply r = best->replies[std::min(best->next, best->replies.size() - 1)];
    if (best->next < best->replies.size()) best->next++;
    return r;
  }

  void serve(int fd) {
    Conn c;
    c.fd = fd;
    SSL_CTX* ctx;
    {
      std::lock_guard<std::mutex> lk(mu);
      ctx = tls;
    }
    if (ctx) {
      // A client that never completes the handshake must not hold the server.
      timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      c.ssl = SSL_new(ctx);
      SSL_set_fd(c.ssl, fd);
      if (SSL_accept(c.ssl) != 1) return;  // e.g. the client refused the certificate
    }
    std::string head;
    if (!read_head(c, head)) return;
    Request req = parse(head);
    {
      std::lock_guard<std::mutex> lk(mu);
      log.push_back(req);
    }
    Reply reply = pick(req.path);
    switch (reply.fault) {
      case Fault::Hang: {
        // Until the client closes (recv returns 0) or the server stops.
        char buf[256];
        while (wait_for(fd, POLLIN)) {
          ssize_t n = ::recv(fd, buf, sizeof buf, 0);
          if (n <= 0 && !(n < 0 && errno == EINTR)) break;
        }
        return;
      }
      case Fault::Reset: {
        linger l{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        return;
      }
      case Fault::Late:
        if (!pause(reply.drip)) return;
        break;
      default: break;
    }
    size_t announced = reply.body.size() + (reply.fault == Fault::Truncate ? 1000 : 0);
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " + reason(reply.status) + "\r\n";
    out += "Content-Length: " + std::to_string(announced) + "\r\nConnection: close\r\n";
    for (const auto& [k, v] : reply.headers) out += k + ": " + v + "\r\n";
    out += "\r\n" + (req.method == "HEAD" ? std::string() : reply.body);
    if (reply.fault == Fault::Slow) {
      for (char b : out)
        if (!send_all(c, std::string(1, b)) || !pause(reply.drip)) break;
    } else {
      send_all(c, out);
    }
    // Let the client read everything before the close (no RST on unread data).
    if (c.ssl) SSL_shutdown(c.ssl);
    ::shutdown(fd, SHUT_WR);
    char buf[256];
    while (wait_for(fd, POLLIN, 2000) && ::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  }

  void accept_loop() {
    while (wait_for(listen_fd, POLLIN)) {
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> lk(mu);
      workers.emplace_back([this, fd] { serve(fd); });
    }
  }
};

HttpServer::HttpServer(const TestPki& pki) : HttpServer() {
  // A peer gone mid-write must not kill the test with SIGPIPE (OpenSSL
  // writes without MSG_NOSIGNAL).
  ::signal(SIGPIPE, SIG_IGN);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, pki.cert_file().c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, pki.key_file().c_str(), SSL_FILETYPE_PEM) != 1) {
    SSL_CTX_free(ctx);
    throw std::runtime_error("TLS server: cannot load " + pki.cert_file());
  }
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->tls = ctx;
}

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.stop_fd = ::eventfd(0, EFD_CLOEXEC);
  s.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s.stop_fd < 0 || s.listen_fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(s.listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s.listen_fd, 64) != 0)
    throw std::runtime_error(std::string("bind/listen 127.0.0.1: ") + std::strerror(errno));
  socklen_t len = sizeof a;
  ::getsockname(s.listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
  s.port = ntohs(a.sin_port);
  s.acceptor = std::thread([&s] { s.accept_loop(); });
}

HttpServer::~HttpServer() {
  Impl& s = *impl_;
  uint64_t one = 1;
  (void)!::write(s.stop_fd, &one, sizeof one);
  s.acceptor.join();
  ::close(s.listen_fd);
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lk(s.mu);
    workers.swap(s.workers);
  }
  for (auto& t : workers) t.join();
  ::close(s.stop_fd);
  SSL_CTX_free(s.tls);
}

uint16_t HttpServer::port() const { return impl_->port; }
std::string HttpServer::url() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return std::string(impl_->tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(impl_->port);
}

void HttpServer::route(const std::string& prefix, Reply reply) { route(prefix, std::vector<Reply>{std::move(reply)}); }

void HttpServer::route(const std::string& prefix, std::vector<Reply> replies) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->routes[prefix] = Route{std::move(replies), 0};
}

std::vector<Request> HttpServer::requests() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->log;
}

size_t HttpServer::count(const std::string& prefix) const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  size_t n = 0;
  for (const auto& r : impl_->log)
    if (r.path.rfind(prefix, 0) == 0) n++;
  return n;
}

void HttpServer::clear_requests() {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->log.clear();
}

}  // namespace sgtest
