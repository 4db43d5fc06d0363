// Forward-confirmed reverse DNS (FCrDNS) of one address, with c-ares: the
// PTR name, then that name's A or AAAA records, which must hold the address.
// A name that does not lead back is never trusted. Every lookup has a
// deadline; names and answers are bounded. Runs off the packet path, on the
// caller's thread (the daemon's feed-gap worker).
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "cidr.hpp"

namespace smtpgate {

struct Fcrdns {
  enum class Status {
    Confirmed,     // a PTR name whose A/AAAA records hold the address
    NotConfirmed,  // PTR names, none of which leads back (never trusted)
    NoName,        // no PTR record
    Failed,        // the resolver did not answer in time, or failed
  };
  Status status = Status::Failed;
  std::string name;   // the confirmed name, or the first PTR name seen
  std::string error;  // Failed: why
};
std::string to_string(Fcrdns::Status s);

/// A c-ares channel; not copyable, one thread at a time.
class FcrdnsResolver {
 public:
  /// servers: "" for the system's (/etc/resolv.conf), else
  /// "IP[:PORT],..." (ares_set_servers_ports_csv). deadline: for one
  /// confirm() call, PTR and forward lookups together. Throws InputError
  /// naming servers when they do not parse.
  FcrdnsResolver(const std::string& servers, std::chrono::milliseconds deadline);
  ~FcrdnsResolver();
  FcrdnsResolver(const FcrdnsResolver&) = delete;
  FcrdnsResolver& operator=(const FcrdnsResolver&) = delete;

  /// PTR of `address` (a host address), confirmed forward. `stop` (may be
  /// null) ends the wait within 100 ms (Failed).
  Fcrdns confirm(const Cidr& address, const std::atomic<bool>* stop = nullptr);

 private:
  struct Impl;
  Impl* impl_;
};

/// The longest name taken from a PTR answer (RFC 1035: 253 characters).
constexpr size_t kMaxDnsName = 253;
/// PTR names looked at per address, and addresses per forward answer.
constexpr size_t kMaxPtrNames = 4;

}  // namespace smtpgate
