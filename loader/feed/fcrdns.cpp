#include "fcrdns.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "error.hpp"

namespace smtpgate {

namespace {
using Clock = std::chrono::steady_clock;

void library_init() {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

// A name a PTR answer may carry: letters, digits, '-', '.', '_', bounded.
bool plausible_name(const char* n) {
  if (!n) return false;
  size_t len = ::strnlen(n, kMaxDnsName + 1);
  if (len == 0 || len > kMaxDnsName) return false;
  for (size_t i = 0; i < len; i++) {
    char c = n[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) return false;
  }
  return true;
}

}  // namespace

std::string to_string(Fcrdns::Status s) {
  switch (s) {
    case Fcrdns::Status::Confirmed: return "confirmed";
    case Fcrdns::Status::NotConfirmed: return "not-confirmed";
    case Fcrdns::Status::NoName: return "no-name";
    case Fcrdns::Status::Failed: return "failed";
  }
  return "failed";
}

struct FcrdnsResolver::Impl {
  ares_channel channel = nullptr;
  std::chrono::milliseconds deadline{2000};

  // Runs the channel until `done` or the deadline; false on the deadline
  // (every query still pending is cancelled).
  bool run(Clock::time_point until, const bool& done, const std::atomic<bool>* stop) {
    while (!done) {
      if (stop && stop->load()) {
        ares_cancel(channel);
        return false;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) {
        ares_cancel(channel);
        return false;
      }
      ares_socket_t socks[ARES_GETSOCK_MAXNUM];
      int bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
      std::vector<pollfd> fds;
      for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        short ev = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
        if (ev) fds.push_back(pollfd{socks[i], ev, 0});
      }
      timeval tv{}, max{left / 1000, static_cast<suseconds_t>((left % 1000) * 1000)};
      timeval* t = ares_timeout(channel, &max, &tv);
      // Short waits: a stop is seen within 100 ms.
      int wait_ms = std::min(100, static_cast<int>(t->tv_sec * 1000 + t->tv_usec / 1000));
      if (fds.empty()) {
        // Nothing to wait on and not done: let c-ares time out its queries.
        ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        if (!done) ::poll(nullptr, 0, std::max(wait_ms, 1));
        continue;
      }
      int rc = ::poll(fds.data(), fds.size(), std::max(wait_ms, 0));
      if (rc < 0 && errno != EINTR) {
        ares_cancel(channel);
        return false;
      }
      if (rc <= 0) {
        ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        continue;
      }
      for (const auto& p : fds)
        ares_process_fd(channel, (p.revents & (POLLIN | POLLERR | POLLHUP)) ? p.fd : ARES_SOCKET_BAD,
                        (p.revents & POLLOUT) ? p.fd : ARES_SOCKET_BAD);
    }
    return true;
  }
};

FcrdnsResolver::FcrdnsResolver(const std::string& servers, std::chrono::milliseconds deadline) : impl_(new Impl) {
  library_init();
  impl_->deadline = deadline;
  ares_options opts{};
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS | ARES_OPT_FLAGS;
  opts.timeout = static_cast<int>(std::max<int64_t>(100, deadline.count() / 4));
  opts.tries = 2;
  opts.lookups = const_cast<char*>("b");  // DNS only: not /etc/hosts
  opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
  if (ares_init_options(&impl_->channel, &opts, mask) != ARES_SUCCESS) {
    delete impl_;
    throw SystemError("c-ares channel", ENOMEM);
  }
  if (!servers.empty()) {
    int rc = ares_set_servers_ports_csv(impl_->channel, servers.c_str());
    if (rc != ARES_SUCCESS) {
      ares_destroy(impl_->channel);
      delete impl_;
      throw InputError("feed_gaps.resolver " + quote_input(servers) +
                       " is not a list of resolver addresses: give IP or IP:PORT, comma-separated, e.g. "
                       "\"127.0.0.1:53\", or \"\" for /etc/resolv.conf");
    }
  }
}

FcrdnsResolver::~FcrdnsResolver() {
  ares_destroy(impl_->channel);
  delete impl_;
}

namespace {
// "10.1.95.40.in-addr.arpa", or the nibbles of an IPv6 address under ip6.arpa.
std::string reverse_name(const Cidr& address) {
  const auto& b = address.bytes();
  std::string out;
  if (address.family() == Family::V4) {
    for (int i = 3; i >= 0; i--) out += std::to_string(b[i]) + ".";
    return out + "in-addr.arpa";
  }
  const char* hex = "0123456789abcdef";
  for (int i = 15; i >= 0; i--) {
    out += hex[b[i] & 0xf];
    out += '.';
    out += hex[b[i] >> 4];
    out += '.';
  }
  return out + "ip6.arpa";
}

// One query's answer, as c-ares hands it over (copied: bounded by c-ares's
// buffer, an EDNS UDP answer at most).
struct Answer {
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<unsigned char> buf;
};

void on_answer(void* arg, int status, int, unsigned char* abuf, int alen) {
  auto* a = static_cast<Answer*>(arg);
  a->done = true;
  a->status = status;
  if (status == ARES_SUCCESS && abuf && alen > 0) a->buf.assign(abuf, abuf + std::min(alen, 65535));
}

bool no_such_name(int status) { return status == ARES_ENOTFOUND || status == ARES_ENODATA; }

// The plausible names of a PTR answer (at most kMaxPtrNames); rc is what
// c-ares made of it.
std::vector<std::string> ptr_names(const Answer& ptr, const Cidr& address, int& rc) {
  const bool v6 = address.family() == Family::V6;
  std::vector<std::string> names;
  hostent* h = nullptr;
  rc = ares_parse_ptr_reply(ptr.buf.data(), static_cast<int>(ptr.buf.size()), address.bytes().data(), v6 ? 16 : 4,
                            v6 ? AF_INET6 : AF_INET, &h);
  if (rc == ARES_SUCCESS && h) {
    if (plausible_name(h->h_name)) names.emplace_back(h->h_name);
    for (char** al = h->h_aliases; al && *al && names.size() < kMaxPtrNames; al++)
      if (plausible_name(*al) && std::find(names.begin(), names.end(), *al) == names.end()) names.emplace_back(*al);
  }
  if (h) ares_free_hostent(h);
  return names;
}

// The addresses (as bytes) of an A or AAAA answer.
std::vector<std::string> forward_addresses(const Answer& fwd, bool v6) {
  std::vector<std::string> addresses;
  if (v6) {
    ares_addr6ttl ttls[64];
    int n = 64;
    if (ares_parse_aaaa_reply(fwd.buf.data(), static_cast<int>(fwd.buf.size()), nullptr, ttls, &n) == ARES_SUCCESS)
      for (int i = 0; i < n; i++) addresses.emplace_back(reinterpret_cast<const char*>(&ttls[i].ip6addr), 16);
  } else {
    ares_addrttl ttls[64];
    int n = 64;
    if (ares_parse_a_reply(fwd.buf.data(), static_cast<int>(fwd.buf.size()), nullptr, ttls, &n) == ARES_SUCCESS)
      for (int i = 0; i < n; i++) addresses.emplace_back(reinterpret_cast<const char*>(&ttls[i].ipaddr), 4);
  }
  return addresses;
}
}  // namespace

Fcrdns FcrdnsResolver::confirm(const Cidr& address, const std::atomic<bool>* stop) {
  Fcrdns out;
  Clock::time_point until = Clock::now() + impl_->deadline;
  bool v6 = address.family() == Family::V6;
  const size_t len = v6 ? 16 : 4;
  const std::string bytes(reinterpret_cast<const char*>(address.bytes().data()), len);

  Answer ptr;
  ares_query(impl_->channel, reverse_name(address).c_str(), 1 /* C_IN */, 12 /* T_PTR */, on_answer, &ptr);
  if (!impl_->run(until, ptr.done, stop)) {
    out.error = "no PTR answer within " + std::to_string(impl_->deadline.count()) + " ms";
    return out;
  }
  if (no_such_name(ptr.status)) {
    out.status = Fcrdns::Status::NoName;
    return out;
  }
  if (ptr.status != ARES_SUCCESS) {
    out.error = std::string("PTR lookup: ") + ares_strerror(ptr.status);
    return out;
  }
  int rc = ARES_SUCCESS;
  std::vector<std::string> names = ptr_names(ptr, address, rc);
  if (names.empty()) {
    out.status = no_such_name(rc) || rc == ARES_SUCCESS ? Fcrdns::Status::NoName : Fcrdns::Status::Failed;
    if (out.status == Fcrdns::Status::Failed) out.error = std::string("PTR answer: ") + ares_strerror(rc);
    return out;
  }
  out.name = names.front();
  for (const auto& name : names) {
    Answer fwd;
    ares_query(impl_->channel, name.c_str(), 1 /* C_IN */, v6 ? 28 /* T_AAAA */ : 1 /* T_A */, on_answer, &fwd);
    if (!impl_->run(until, fwd.done, stop)) {
      out.status = Fcrdns::Status::Failed;
      out.error = "no answer for " + name + " within " + std::to_string(impl_->deadline.count()) + " ms";
      return out;
    }
    if (fwd.status != ARES_SUCCESS) continue;  // no address: this name does not lead back
    std::vector<std::string> addresses = forward_addresses(fwd, v6);
    if (std::find(addresses.begin(), addresses.end(), bytes) != addresses.end()) {
      out.status = Fcrdns::Status::Confirmed;
      out.name = name;
      return out;
    }
  }
  out.status = Fcrdns::Status::NotConfirmed;
  return out;
}

}  // namespace smtpgate
