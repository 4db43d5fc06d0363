// The traffic side of the end-to-end flood benchmark (bench/flood.sh):
//   prefixes  a seeded, aggregated set of IPv4 prefixes in unicast space
//   send      a SYN (or ACK, or UDP) flood from spread sources over AF_PACKET
//             (sendmmsg, PACKET_QDISC_BYPASS), timed against the machine's
//             busy jiffies
//   connect   a loop of real TCP connects from admitted sources, until SIGTERM
//   listen    a TCP listener that accepts and closes, until SIGTERM
//   verdicts  the gate's packet counters per verdict (read through GateMaps,
//             as smtpgatectl does, without the per-rule report of 'stats')
//   attach-probe  the yardstick probe whose bitmap lies in inner arrays
// Each prints one "key=value ..." line that the harness reads.
#include <CLI/CLI.hpp>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "cli.hpp"
#include "error.hpp"
#include "gate_maps.hpp"

using smtpgate::Cidr;
using smtpgate::Family;

namespace {

// splitmix64: a seeded, portable sequence (std:: distributions are not).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint32_t u32() { return static_cast<uint32_t>(next() >> 32); }
};

Cidr v4(uint32_t host_order, unsigned len) {
  uint32_t be = htonl(host_order);
  return Cidr::from_bytes(Family::V4, reinterpret_cast<const uint8_t*>(&be), len);
}

uint32_t v4_value(const Cidr& c) {
  uint32_t be;
  std::memcpy(&be, c.bytes().data(), 4);
  return ntohl(be);
}

// Whether an IPv4 prefix of length >= 16 touches special-purpose space, by
// the library's registry, asked once per /16 (most /16s are either clean or
// wholly special) and per prefix only inside the few mixed ones.
class SpecialSpace {
 public:
  bool touches(uint32_t addr, unsigned len) {
    uint8_t& s = by16_[addr >> 16];
    if (s == kUnknown) {
      Cidr block = v4(addr & 0xffff0000u, 16);
      auto hit = smtpgate::find_special_purpose(block);
      s = !hit ? kClean : Cidr::parse(hit->block).contains(block) ? kSpecial : kMixed;
    }
    if (s != kMixed) return s == kSpecial;
    return smtpgate::find_special_purpose(v4(addr, len)).has_value();
  }

 private:
  enum : uint8_t { kUnknown, kClean, kSpecial, kMixed };
  std::vector<uint8_t> by16_ = std::vector<uint8_t>(1 << 16, kUnknown);
};

// --- prefixes ---------------------------------------------------------------

// EOP's published IPv4 port-25 ranges: always in the set, so that the admitted
// connects come from a real EOP address at every scale.
const char* const kEopRanges[] = {"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17"};

// n prefixes after aggregation: EOP's, then random /22../28 networks over
// unicast space, none touching special-purpose space. Lengths are chosen so
// that even a million of them cover a small share of the address space: a
// scan's sources fall mostly outside.
std::vector<Cidr> make_prefixes(size_t n, uint64_t seed) {
  std::vector<Cidr> all;
  for (const char* r : kEopRanges)
    if (all.size() < n) all.push_back(Cidr::parse(r));
  Rng rng{seed};
  SpecialSpace special;
  std::vector<Cidr> agg = smtpgate::aggregate(all);
  while (agg.size() < n) {
    for (size_t want = n - agg.size(); want > 0;) {
      unsigned len = 22 + static_cast<unsigned>(rng.next() % 7);
      uint32_t addr = rng.u32();
      if (special.touches(addr, len)) continue;
      all.push_back(v4(addr, len));
      want--;
    }
    agg = smtpgate::aggregate(all);
  }
  return agg;
}

int cmd_prefixes(size_t count, uint64_t seed, const std::string& out_path) {
  std::vector<Cidr> p = make_prefixes(count, seed);
  std::ofstream out(out_path);
  if (!out) throw std::runtime_error("cannot write " + out_path);
  out << "# " << p.size() << " IPv4 prefixes, seed " << seed << ", aggregated (flood benchmark)\n";
  for (const auto& c : p) out << c.str() << "\n";
  if (!out.flush()) throw std::runtime_error("cannot write " + out_path);
  std::cout << "prefixes=" << p.size() << "\n";
  return 0;
}

// --- send -------------------------------------------------------------------

// Sorted, non-overlapping [first, last] intervals of a range file.
struct Intervals {
  std::vector<std::pair<uint32_t, uint32_t>> iv;
  bool contains(uint32_t a) const {
    auto it = std::upper_bound(iv.begin(), iv.end(), std::make_pair(a, UINT32_MAX));
    return it != iv.begin() && a <= std::prev(it)->second;
  }
};

Intervals read_ranges(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  Intervals r;
  for (const auto& l : smtpgate::parse_range_file(ss.str(), path))
    if (l.cidr.family() == Family::V4) r.iv.emplace_back(v4_value(l.cidr), v4_value(l.cidr.last()));
  std::sort(r.iv.begin(), r.iv.end());
  return r;
}

std::array<uint8_t, 6> parse_mac(const std::string& text) {
  std::array<uint8_t, 6> m{};
  unsigned b[6];
  if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
    throw std::runtime_error("bad MAC address '" + text + "': expected six hex bytes like 02:00:00:00:00:01");
  for (int i = 0; i < 6; i++) m[i] = static_cast<uint8_t>(b[i]);
  return m;
}

uint32_t sum16(const void* data, size_t len, uint32_t sum = 0) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len & 1) sum += p[len - 1] << 8;
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

// What a flood sends: TCP SYNs, TCP ACKs (of no connection), or empty UDP
// datagrams, all to the gateway's port.
enum class Kind { Syn, Ack, Udp };

Kind parse_kind(const std::string& text) {
  if (text == "syn") return Kind::Syn;
  if (text == "ack") return Kind::Ack;
  if (text == "udp") return Kind::Udp;
  throw std::runtime_error("bad --kind '" + text + "': expected syn, ack or udp");
}

constexpr size_t kIp = 14, kL4 = kIp + 20;
struct Frame {  // one cache line
  uint8_t b[62];
  uint8_t len;
  uint8_t l4_sum;  // offset of the TCP or UDP checksum
};
static_assert(sizeof(Frame) == 64);

// A complete Ethernet/IPv4 frame of the kind, with correct checksums.
Frame build_frame(Kind kind, const std::array<uint8_t, 6>& src_mac, const std::array<uint8_t, 6>& dst_mac, uint32_t src,
                  uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint16_t ip_id) {
  Frame f{};
  uint8_t* p = f.b;
  std::memcpy(p, dst_mac.data(), 6);
  std::memcpy(p + 6, src_mac.data(), 6);
  p[12] = 0x08, p[13] = 0x00;
  uint8_t proto = kind == Kind::Udp ? IPPROTO_UDP : IPPROTO_TCP;
  uint16_t l4_len = kind == Kind::Udp ? 8 : 20;
  f.len = static_cast<uint8_t>(kL4 + l4_len);
  uint8_t* ip = p + kIp;
  ip[0] = 0x45;
  uint16_t tot = htons(20 + l4_len), id = htons(ip_id), frag = htons(0x4000);
  std::memcpy(ip + 2, &tot, 2);
  std::memcpy(ip + 4, &id, 2);
  std::memcpy(ip + 6, &frag, 2);
  ip[8] = 64;
  ip[9] = proto;
  uint32_t s = htonl(src), d = htonl(dst);
  std::memcpy(ip + 12, &s, 4);
  std::memcpy(ip + 16, &d, 4);
  uint16_t ipsum = fold(sum16(ip, 20));
  std::memcpy(ip + 10, &ipsum, 2);
  uint8_t* l4 = p + kL4;
  uint16_t sp = htons(sport), dp = htons(dport);
  std::memcpy(l4, &sp, 2);
  std::memcpy(l4 + 2, &dp, 2);
  if (kind == Kind::Udp) {
    uint16_t len = htons(8);
    std::memcpy(l4 + 4, &len, 2);
    f.l4_sum = kL4 + 6;
  } else {
    uint16_t win = htons(64240);
    uint32_t sq = htonl(seq), ack = htonl(seq ^ 0x5a5a5a5a);
    std::memcpy(l4 + 4, &sq, 4);
    if (kind == Kind::Ack) std::memcpy(l4 + 8, &ack, 4);
    l4[12] = 5 << 4;
    l4[13] = kind == Kind::Syn ? 0x02 : 0x10;  // SYN, or ACK
    std::memcpy(l4 + 14, &win, 2);
    f.l4_sum = kL4 + 16;
  }
  uint8_t pseudo[12];
  std::memcpy(pseudo, &s, 4);
  std::memcpy(pseudo + 4, &d, 4);
  pseudo[8] = 0, pseudo[9] = proto, pseudo[10] = 0, pseudo[11] = static_cast<uint8_t>(l4_len);
  uint16_t l4sum = fold(sum16(l4, l4_len, sum16(pseudo, 12)));
  if (kind == Kind::Udp && l4sum == 0) l4sum = 0xffff;  // 0 would mean "no checksum"
  std::memcpy(p + f.l4_sum, &l4sum, 2);
  return f;
}

// Whether both checksums of a frame verify (each sum, its checksum
// included, folds to all ones).
bool checksums_verify(const Frame& f) {
  const uint8_t* ip = f.b + kIp;
  uint8_t pseudo[12];
  std::memcpy(pseudo, ip + 12, 8);
  pseudo[8] = 0, pseudo[9] = ip[9], pseudo[10] = 0, pseudo[11] = static_cast<uint8_t>(f.len - kL4);
  return fold(sum16(ip, 20)) == 0 && fold(sum16(f.b + kL4, f.len - kL4, sum16(pseudo, 12))) == 0;
}

// RFC 1624: updates the checksum at p for a 16-bit word of what it covers
// changed from old_w to new_w (host order).
void checksum_replace(uint8_t* p, uint16_t old_w, uint16_t new_w, bool udp) {
  uint32_t sum = static_cast<uint16_t>(~((p[0] << 8) | p[1])) + static_cast<uint16_t>(~old_w) + new_w;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  uint16_t r = static_cast<uint16_t>(~sum);
  if (udp && r == 0) r = 0xffff;
  p[0] = static_cast<uint8_t>(r >> 8), p[1] = static_cast<uint8_t>(r);
}

// Gives a built frame another IPv4 source, both checksums updated in place.
void set_source(Frame& f, uint32_t src) {
  uint8_t* s = f.b + kIp + 12;
  uint32_t old = (uint32_t(s[0]) << 24) | (uint32_t(s[1]) << 16) | (uint32_t(s[2]) << 8) | s[3];
  bool udp = f.b[kIp + 9] == IPPROTO_UDP;
  for (int half = 0; half < 2; half++) {
    uint16_t o = static_cast<uint16_t>(old >> (16 - 16 * half)), n = static_cast<uint16_t>(src >> (16 - 16 * half));
    checksum_replace(f.b + kIp + 10, o, n, false);
    checksum_replace(f.b + f.l4_sum, o, n, udp);
  }
  uint32_t be = htonl(src);
  std::memcpy(s, &be, 4);
}

// The machine's busy time so far, in USER_HZ ticks: every CPU's user, nice,
// system, irq and softirq time (steal and idle excluded).
uint64_t busy_jiffies() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t user, nice, system, idle, iowait, irq, softirq;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq;
  if (!in || cpu != "cpu") throw std::runtime_error("cannot read /proc/stat");
  return user + nice + system + irq + softirq;
}

// CPU time so far, in USER_HZ ticks, of the kernel's softirq threads: the
// network work that does not run in the sender's own context (the rest runs
// there, when the sender's send re-enables bottom halves, and is charged to
// it). Unlike busy_jiffies(), other work on the machine does not count here.
uint64_t ksoftirqd_jiffies() {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    std::ifstream comm(e.path() / "comm");
    std::string name;
    if (!std::getline(comm, name) || name.rfind("ksoftirqd/", 0) != 0) continue;
    std::ifstream st(e.path() / "stat");
    std::string line;
    std::getline(st, line);
    // Fields after "(comm)": state is field 3; utime and stime are 14 and 15.
    std::istringstream in(line.substr(line.rfind(')') + 2));
    std::string field;
    uint64_t utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; i++) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    total += utime + stime;
  }
  return total;
}

double cpu_seconds(const rusage& r) {
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

struct SendOptions {
  std::string ifname, src_mac, dst_mac, dst = "192.0.2.1", ranges, sources = "mix", kind = "syn";
  uint16_t port = 25;
  uint64_t count = 2000000, seed = 1, pool = 1 << 20, ring = 256;
  unsigned batch = 64;
};

// The flood's sources, in the order they are sent (cycled): over the whole
// unicast space ("mix"; special-purpose space, which the kernel would
// discard as martian, left out), the same outside every range ("empty"), or
// inside the ranges ("inside": a range drawn at random, then an address in
// it). inside_upto[i]: how many of the first i lie inside the ranges.
struct Sources {
  std::vector<uint32_t> addr;
  std::vector<uint64_t> inside_upto;
  uint64_t inside_of_first(uint64_t sent) const {
    return sent / addr.size() * inside_upto.back() + inside_upto[sent % addr.size()];
  }
};

Sources make_sources(const std::string& mode, size_t n, const Intervals& admitted, Rng& rng) {
  if (mode != "mix" && mode != "empty" && mode != "inside")
    throw std::runtime_error("bad --sources '" + mode + "': expected mix, empty or inside");
  if (mode != "mix" && admitted.iv.empty())
    throw std::runtime_error("--sources " + mode + " needs --ranges with at least one IPv4 range");
  Sources s;
  s.inside_upto.push_back(0);
  SpecialSpace special;
  while (s.addr.size() < n) {
    uint32_t a;
    if (mode == "inside") {
      const auto& r = admitted.iv[rng.next() % admitted.iv.size()];
      a = static_cast<uint32_t>(r.first + rng.next() % (uint64_t(r.second) - r.first + 1));
    } else {
      a = rng.u32();
      if (special.touches(a, 32)) continue;
    }
    bool in = admitted.contains(a);
    if (mode == "empty" && in) continue;
    s.addr.push_back(a);
    s.inside_upto.push_back(s.inside_upto.back() + in);
  }
  return s;
}

int cmd_send(const SendOptions& o) {
  auto smac = parse_mac(o.src_mac), dmac = parse_mac(o.dst_mac);
  Kind kind = parse_kind(o.kind);
  in_addr dst{};
  if (inet_pton(AF_INET, o.dst.c_str(), &dst) != 1) throw std::runtime_error("bad --dst '" + o.dst + "'");
  if (o.ring != 0 && (o.ring < o.batch || o.ring > 65536))
    throw std::runtime_error("bad --ring " + std::to_string(o.ring) + ": expected 0 (a frame per source) or " +
                             std::to_string(o.batch) + " (--batch) to 65536 frames");
  Intervals admitted;
  if (!o.ranges.empty()) admitted = read_ranges(o.ranges);

  size_t pool_n = std::max<uint64_t>(1, std::min(o.pool, o.count));
  Rng rng{o.seed ^ 0x5eed5eedULL};
  Sources src = make_sources(o.sources, pool_n, admitted, rng);
  auto frame_for = [&](uint32_t a) {
    uint64_t r = rng.next();
    return build_frame(kind, smac, dmac, a, ntohl(dst.s_addr), static_cast<uint16_t>(1024 + r % 64000), o.port,
                       static_cast<uint32_t>(r >> 32), static_cast<uint16_t>(r >> 16));
  };
  // Either a small ring of frames, each given the next source just before it
  // is sent (the sender's memory traffic: the ring, and 4 bytes of sources
  // per frame, read in order), or a frame built per source beforehand
  // (--ring 0: 64 bytes per source, a pool of 64 MiB at a million sources,
  // which on the gateway's core competes with the program for the caches).
  size_t frames_n = o.ring ? o.ring : pool_n;
  std::vector<Frame> frames(frames_n);
  for (size_t i = 0; i < frames_n; i++) frames[i] = frame_for(src.addr[i % pool_n]);
  if (o.ring) {
    // The in-place rewrite must give what a full build gives: checked on a
    // sample of the sources before the flood.
    Frame f = frames[0];
    for (size_t i = 0; i < std::min<size_t>(pool_n, 4096); i++) {
      set_source(f, src.addr[i]);
      if (!checksums_verify(f))
        throw std::runtime_error("internal: a rewritten frame's checksums do not verify (source " +
                                 std::to_string(src.addr[i]) + ")");
    }
  }
  for (const Frame& f : frames)
    if (!checksums_verify(f)) throw std::runtime_error("internal: a built frame's checksums do not verify");

  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: send only
  if (fd < 0) throw smtpgate::SystemError("socket(AF_PACKET)", errno);
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0)
    throw smtpgate::SystemError("PACKET_QDISC_BYPASS", errno);
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_IP);
  to.sll_ifindex = static_cast<int>(if_nametoindex(o.ifname.c_str()));
  if (!to.sll_ifindex) throw std::runtime_error("no interface '" + o.ifname + "' in this namespace");
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, dmac.data(), 6);

  std::vector<mmsghdr> msgs(o.batch);
  std::vector<iovec> iov(o.batch);
  for (unsigned i = 0; i < o.batch; i++) {
    msgs[i] = {};
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof(to);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    iov[i].iov_len = frames[0].len;
  }

  uint64_t sent = 0, busy_waits = 0;
  rusage ru0{}, ru1{};
  getrusage(RUSAGE_SELF, &ru0);
  uint64_t j0 = busy_jiffies(), k0 = ksoftirqd_jiffies();
  auto t0 = std::chrono::steady_clock::now();
  while (sent < o.count) {
    unsigned n = static_cast<unsigned>(std::min<uint64_t>(o.batch, o.count - sent));
    for (unsigned i = 0; i < n; i++) {
      Frame& f = frames[(sent + i) % frames_n];
      // A ring of at least --batch frames: no frame is rewritten before the
      // call that sends it (which copies it) has returned.
      if (o.ring) set_source(f, src.addr[(sent + i) % pool_n]);
      iov[i].iov_base = f.b;
    }
    int r = sendmmsg(fd, msgs.data(), n, 0);
    if (r < 0) {
      // The receiving veth's ring is full (it pushes back): try again.
      if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
        busy_waits++;
        continue;
      }
      throw smtpgate::SystemError("sendmmsg on " + o.ifname, errno);
    }
    sent += r;
  }
  auto t1 = std::chrono::steady_clock::now();
  uint64_t j1 = busy_jiffies(), k1 = ksoftirqd_jiffies();
  getrusage(RUSAGE_SELF, &ru1);
  ::close(fd);
  uint64_t in_count = src.inside_of_first(sent);
  std::cout << "sent=" << sent << " inside=" << in_count << " outside=" << sent - in_count
            << " seconds=" << std::chrono::duration<double>(t1 - t0).count() << " busy_jiffies=" << j1 - j0
            << " clk_tck=" << sysconf(_SC_CLK_TCK) << " sender_cpu_s=" << cpu_seconds(ru1) - cpu_seconds(ru0)
            << " ksoftirqd_jiffies=" << k1 - k0 << " busy_waits=" << busy_waits << " pool=" << pool_n
            << " ring=" << o.ring << " kind=" << o.kind << " sources=" << o.sources << "\n";
  return 0;
}

// --- connect and listen -----------------------------------------------------

std::atomic<bool> g_stop{false};

void on_stop(int) { g_stop = true; }

void install_stop_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_stop;  // no SA_RESTART: a blocking call returns EINTR
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

sockaddr_in v4_sockaddr(const std::string& text, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, text.c_str(), &a.sin_addr) != 1) throw std::runtime_error("bad IPv4 address '" + text + "'");
  return a;
}

// One connect from src to dst: "" on success, else what went wrong.
std::string connect_once(const sockaddr_in& src, const sockaddr_in& dst, int timeout_ms) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  std::string err;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof(src)) != 0) {
    err = std::string("bind: ") + std::strerror(errno);
  } else if (::connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof(dst)) != 0 && errno != EINPROGRESS) {
    err = std::string("connect: ") + std::strerror(errno);
  } else {
    // The whole timeout even if a stop signal interrupts the wait: an attempt
    // once started is always finished and counted.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) {
        err = "timed out";
        break;
      }
      pollfd p{fd, POLLOUT, 0};
      int n = ::poll(&p, 1, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) continue;
      int so = 0;
      socklen_t sl = sizeof(so);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl);
      if (so) err = std::strerror(so);
      break;
    }
  }
  ::close(fd);
  return err;
}

int cmd_connect(const std::vector<std::string>& sources, const std::string& dst_text, uint16_t port, int interval_ms,
                int timeout_ms) {
  install_stop_handler();
  sockaddr_in dst = v4_sockaddr(dst_text, port);
  std::vector<sockaddr_in> src;
  for (const auto& s : sources) src.push_back(v4_sockaddr(s, 0));
  uint64_t attempted = 0, succeeded = 0;
  std::string first_error;
  while (!g_stop) {
    std::string err = connect_once(src[attempted % src.size()], dst, timeout_ms);
    if (err.empty()) {
      succeeded++;
    } else if (first_error.empty()) {
      first_error = sources[attempted % src.size()] + ": " + err;
    }
    attempted++;
    if (!g_stop) ::usleep(static_cast<useconds_t>(interval_ms) * 1000);
  }
  std::cout << "attempted=" << attempted << " succeeded=" << succeeded << " failed=" << attempted - succeeded;
  if (!first_error.empty()) std::cout << " first_error=\"" << first_error << "\"";
  std::cout << "\n";
  return 0;
}

int cmd_listen(uint16_t port) {
  install_stop_handler();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw smtpgate::SystemError("socket", errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 4096) != 0)
    throw smtpgate::SystemError("listen on port " + std::to_string(port), errno);
  std::cout << "listening port=" << port << std::endl;
  uint64_t accepted = 0;
  while (!g_stop) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) {
      accepted++;
      ::close(c);
    }
  }
  std::cout << "accepted=" << accepted << std::endl;
  return 0;
}

int cmd_verdicts(const std::string& pin_dir) {
  auto v = smtpgate::GateMaps::open_pinned(pin_dir).verdict_counters();
  std::cout << "admit=" << v[SG_VERDICT_ADMIT].packets << " drop=" << v[SG_VERDICT_DROP].packets
            << " reject=" << v[SG_VERDICT_REJECT].packets << " monitor=" << v[SG_VERDICT_MONITOR].packets << "\n";
  return 0;
}

// Attaches a yardstick probe whose bitmap is split over the inner arrays of
// an array of maps (bpf/testprogs/read_direct_2048.bpf.c) to ifname, native
// mode: the inner arrays are created here, all clear, one per slot of the
// outer map. The attachment outlives this process; 'ip link set dev IFNAME
// xdpdrv off' removes it.
int cmd_attach_probe(const std::string& obj_path, const std::string& ifname) {
  unsigned ifindex = ::if_nametoindex(ifname.c_str());
  if (ifindex == 0) throw smtpgate::SystemError("no interface " + ifname, errno);
  bpf_object* obj = bpf_object__open_file(obj_path.c_str(), nullptr);
  if (!obj) throw smtpgate::SystemError("open " + obj_path, errno);
  std::unique_ptr<bpf_object, void (*)(bpf_object*)> owned(obj, bpf_object__close);
  bpf_map* outer = bpf_object__find_map_by_name(obj, "probe_outer");
  bpf_program* prog = bpf_object__next_program(obj, nullptr);
  if (!outer || !prog)
    throw smtpgate::InputError(obj_path + " has no probe_outer map or no program: not a direct probe");
  // The inner template is libbpf's until the load, which frees it.
  bpf_map* inner = bpf_map__inner_map(outer);
  if (!inner) throw smtpgate::InputError(obj_path + ": probe_outer declares no inner map");
  uint32_t value_size = bpf_map__value_size(inner);
  if (int rc = bpf_object__load(obj)) throw smtpgate::SystemError("load " + obj_path, -rc);
  for (uint32_t i = 0; i < bpf_map__max_entries(outer); i++) {
    int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, nullptr, sizeof(uint32_t), value_size, 1, nullptr);
    if (fd < 0) throw smtpgate::SystemError("create an inner array", errno);
    int rc = bpf_map_update_elem(bpf_map__fd(outer), &i, &fd, BPF_ANY);
    int err = errno;
    ::close(fd);
    if (rc != 0) throw smtpgate::SystemError("fill probe_outer", err);
  }
  if (int rc = bpf_xdp_attach(int(ifindex), bpf_program__fd(prog), XDP_FLAGS_DRV_MODE, nullptr))
    throw smtpgate::SystemError("attach to " + ifname + " (native mode)", -rc);
  std::cout << "attached " << obj_path << " to " << ifname << " with " << bpf_map__max_entries(outer)
            << " inner arrays of " << value_size << " bytes" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"flood_gen: traffic for the end-to-end SYN flood benchmark (see bench/flood.sh)"};
  app.require_subcommand(1);

  size_t count = 0;
  uint64_t seed = 1;
  std::string out;
  auto* prefixes = app.add_subcommand("prefixes", "Write COUNT aggregated IPv4 prefixes (seeded) to FILE");
  prefixes->add_option("--count", count, "Prefixes after aggregation")->required()->check(CLI::Range(1, 10000000));
  prefixes->add_option("--seed", seed, "Seed")->capture_default_str();
  prefixes->add_option("--out", out, "Range file to write (one CIDR per line)")->required();

  SendOptions so;
  auto* send =
      app.add_subcommand("send", "Send COUNT TCP SYNs (or ACKs, or UDP datagrams) from spread sources out of IFNAME");
  send->add_option("--interface", so.ifname, "Interface to send on")->required();
  send->add_option("--src-mac", so.src_mac, "Source MAC")->required();
  send->add_option("--dst-mac", so.dst_mac, "Destination MAC (the gateway's)")->required();
  send->add_option("--dst", so.dst, "Destination IPv4 address")->capture_default_str();
  send->add_option("--port", so.port, "Destination TCP port")->capture_default_str();
  send->add_option("--count", so.count, "Frames to send")->capture_default_str();
  send->add_option("--seed", so.seed, "Seed of the sources")->capture_default_str();
  send->add_option("--pool", so.pool, "Sources drawn, sent in turn")->capture_default_str();
  send->add_option("--sources", so.sources, "mix (all unicast space), empty (outside --ranges) or inside (--ranges)")
      ->capture_default_str();
  send->add_option("--kind", so.kind, "syn, ack (TCP) or udp")->capture_default_str();
  send->add_option("--ring", so.ring,
                   "Frames in the ring, each given its source as it is sent (0: one built per source)")
      ->capture_default_str();
  send->add_option("--batch", so.batch, "Packets per sendmmsg call")->capture_default_str()->check(CLI::Range(1, 1024));
  send->add_option("--ranges", so.ranges,
                   "Range file: counts how many sources it admits (--sources empty and inside: draws by it)");

  std::vector<std::string> sources;
  std::string dst = "192.0.2.1";
  uint16_t port = 25;
  int interval_ms = 20, timeout_ms = 3000;
  auto* conn = app.add_subcommand("connect", "Connect from SRC to DST:PORT in a loop until SIGTERM");
  conn->add_option("--src", sources, "Source address (repeatable; used in turn)")->required();
  conn->add_option("--dst", dst, "Destination")->capture_default_str();
  conn->add_option("--port", port, "Port")->capture_default_str();
  conn->add_option("--interval-ms", interval_ms, "Pause between connects")->capture_default_str();
  conn->add_option("--timeout-ms", timeout_ms, "Time a connect may take")->capture_default_str();

  auto* listen = app.add_subcommand("listen", "Accept and close TCP connections on PORT until SIGTERM");
  listen->add_option("--port", port, "Port")->capture_default_str();

  std::string pin_dir;
  auto* verdicts = app.add_subcommand("verdicts", "Print the gate's packets per verdict");
  verdicts->add_option("--pin-dir", pin_dir, "The gate's pin directory")->required();

  std::string probe_obj, probe_if;
  auto* probe = app.add_subcommand("attach-probe", "Attach a yardstick probe with a bitmap in inner arrays to IFNAME");
  probe->add_option("--obj", probe_obj, "The probe's BPF object (read_direct_*.bpf.o)")->required();
  probe->add_option("--interface", probe_if, "Interface to attach to, native mode")->required();

  if (auto code = smtpgate::parse_command_line(app, argc, argv)) return *code;
  try {
    if (*prefixes) return cmd_prefixes(count, seed, out);
    if (*send) return cmd_send(so);
    if (*conn) return cmd_connect(sources, dst, port, interval_ms, timeout_ms);
    if (*listen) return cmd_listen(port);
    if (*verdicts) return cmd_verdicts(pin_dir);
    if (*probe) return cmd_attach_probe(probe_obj, probe_if);
  } catch (const std::exception& e) {
    std::cerr << "flood_gen: " << e.what() << "\n";
    return smtpgate::kExitError;
  }
  return smtpgate::kExitOk;
}
