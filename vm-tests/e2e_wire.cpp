// An attacker on the wire: frames crafted by a raw (AF_PACKET) socket in the
// sender's namespace and sent over the veth to the gateway, whose kernel
// strips VLAN priority tags (VLAN id 0) one after another and delivers what
// is behind them. Real handshakes: the listener on port 25 counts what it
// accepts; what comes back on the wire is read by the same raw socket.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "netns.hpp"
#include "packet_builder.hpp"

using nlohmann::json;
using sgtest::Sandbox;

namespace {

constexpr const char* kStranger = "198.51.100.77";  // in no range, not configured on the sender
constexpr const char* kEop = "40.92.0.77";          // in EOP's 40.92.0.0/15

// A raw socket on the sender's end of the veth.
class RawPort {
 public:
  explicit RawPort(const sgtest::Netns& ns) {
    fd_ = ns.run<int>([] {
      int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
      if (fd < 0) return -1;
      int one = 1;
      setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one));
      sockaddr_ll a{};
      a.sll_family = AF_PACKET;
      a.sll_protocol = htons(ETH_P_ALL);
      a.sll_ifindex = static_cast<int>(if_nametoindex(Sandbox::kTxIf));
      if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        ::close(fd);
        return -1;
      }
      return fd;
    });
    if (fd_ < 0) throw std::runtime_error("raw socket on the sender's veth: " + std::string(std::strerror(errno)));
  }
  ~RawPort() { ::close(fd_); }
  RawPort(const RawPort&) = delete;
  RawPort& operator=(const RawPort&) = delete;

  void send(const std::vector<uint8_t>& frame) {
    ASSERT_EQ(::send(fd_, frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
  }

  // The next frame that arrives within timeout_ms and satisfies want, with
  // a VLAN tag the kernel moved out of the frame (auxdata) put back in.
  template <typename Want>
  std::optional<std::vector<uint8_t>> await(Want want, int timeout_ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
      if (left <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) continue;
      uint8_t buf[2048];
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(tpacket_auxdata))];
      iovec iov{buf, sizeof(buf)};
      sockaddr_ll from{};
      msghdr m{};
      m.msg_name = &from;
      m.msg_namelen = sizeof(from);
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = control;
      m.msg_controllen = sizeof(control);
      ssize_t n = ::recvmsg(fd_, &m, 0);
      if (n < 14 || from.sll_pkttype == PACKET_OUTGOING) continue;
      std::vector<uint8_t> f(buf, buf + n);
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
        tpacket_auxdata aux;
        std::memcpy(&aux, CMSG_DATA(c), sizeof(aux));
        if (!(aux.tp_status & TP_STATUS_VLAN_VALID)) continue;
        uint16_t tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : ETH_P_8021Q;
        uint8_t tag[4] = {uint8_t(tpid >> 8), uint8_t(tpid), uint8_t(aux.tp_vlan_tci >> 8), uint8_t(aux.tp_vlan_tci)};
        f.insert(f.begin() + 12, tag, tag + 4);
      }
      if (want(f)) return f;
    }
  }

 private:
  int fd_ = -1;
};

std::string mac_of(const sgtest::Netns& ns, const char* dev) {
  return ns.run<std::string>([dev] {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
    int rc = ::ioctl(fd, SIOCGIFHWADDR, &ifr);
    ::close(fd);
    if (rc != 0) throw std::runtime_error(std::string("MAC address of ") + dev + ": " + std::strerror(errno));
    char mac[18];
    const auto* a = reinterpret_cast<const uint8_t*>(ifr.ifr_hwaddr.sa_data);
    std::snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5]);
    return std::string(mac);
  });
}

// A TCP segment of the frame, past any tags: flags, seq, the tags' bytes.
struct Segment {
  uint8_t flags = 0;
  uint32_t seq = 0;
  std::vector<uint8_t> tags;
};

std::optional<Segment> tcp_to(const std::vector<uint8_t>& f, const char* dst, uint16_t dport) {
  size_t at = 12;
  while (at + 4 <= f.size() && ((f[at] == 0x81 && f[at + 1] == 0x00) || (f[at] == 0x88 && f[at + 1] == 0xa8))) at += 4;
  if (at + 2 + 40 > f.size() || f[at] != 0x08 || f[at + 1] != 0x00) return std::nullopt;
  const uint8_t* ip = f.data() + at + 2;
  in_addr want{};
  inet_pton(AF_INET, dst, &want);
  if (ip[9] != 6 || std::memcmp(ip + 16, &want, 4) != 0) return std::nullopt;
  const uint8_t* th = ip + (ip[0] & 15) * 4;
  if (th + 20 > f.data() + f.size() || (th[2] << 8 | th[3]) != dport) return std::nullopt;
  Segment s;
  s.flags = th[13];
  s.seq = uint32_t(th[4]) << 24 | th[5] << 16 | th[6] << 8 | th[7];
  s.tags.assign(f.begin() + 12, f.begin() + static_cast<long>(at));
  return s;
}

class WireE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = ctl({"ranges", "add", "40.92.0.0/15", "--comment", "EOP port 25"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    gw_mac_ = mac_of(box.gateway(), Sandbox::kGwIf);
    tx_mac_ = mac_of(box.sender(), Sandbox::kTxIf);
  }

  sgtest::ProcResult ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{sgtest::binary("smtpgatectl"), "--pin-dir", box.pin_dir(), "--state-dir",
                                  box.state_dir()};
    argv.insert(argv.end(), args.begin(), args.end());
    return sgtest::run_in(box.gateway(), argv);
  }

  std::unique_ptr<sgtest::Daemon> start(const std::string& action) {
    auto d = std::make_unique<sgtest::Daemon>(
        box.gateway(),
        std::vector<std::string>{sgtest::binary("smtpgated"), "--interface", Sandbox::kGwIf, "--pin-dir", box.pin_dir(),
                                 "--state-dir", box.state_dir(), "--action", action, "--no-feed"});
    if (!d->ready()) ADD_FAILURE() << "smtpgated did not become ready:\n" << d->stderr_text();
    return d;
  }

  // Ethernet to the gateway, then `tags` priority tags (802.1ad outside,
  // 802.1Q inside, as a provider's QinQ would carry them).
  sgtest::Packet frame(unsigned tags) {
    sgtest::Packet p = sgtest::Packet().eth(gw_mac_, tx_mac_);
    for (unsigned i = 0; i < tags; i++) p.vlan(0, i == 0 ? 0x88a8 : 0x8100);
    return p;
  }

  // SYN from src behind `tags` priority tags; what answers it within 1 s.
  std::optional<Segment> syn(RawPort& port, const char* src, uint16_t sport, unsigned tags, uint32_t isn) {
    port.send(frame(tags).ipv4(src, Sandbox::kGwV4).tcp(sport, 25, sgtest::SYN, isn).bytes());
    auto reply = port.await([&](const std::vector<uint8_t>& f) { return tcp_to(f, src, sport).has_value(); }, 1000);
    if (!reply) return std::nullopt;
    return tcp_to(*reply, src, sport);
  }

  void ack(RawPort& port, const char* src, uint16_t sport, unsigned tags, uint32_t seq, uint32_t ack_no) {
    port.send(frame(tags).ipv4(src, Sandbox::kGwV4).tcp(sport, 25, sgtest::ACK, seq, 0, 0, ack_no).bytes());
  }

  Sandbox box;
  std::string gw_mac_, tx_mac_;
};

// The review's attack: a stranger behind three or four priority tags. No
// SYN-ACK comes back, and a completing ACK (guessing the gateway's sequence
// number) opens nothing: under drop nothing answers the SYN, under reject a
// reset answers it, carrying the SYN's own tags.
TEST_F(WireE2E, StrangerBehindPriorityTagsCompletesNoHandshake) {
  sgtest::Listener listener(box.gateway(), 25);
  for (const char* action : {"drop", "reject"}) {
    SCOPED_TRACE(action);
    auto d = start(action);
    RawPort port(box.sender());
    for (unsigned tags : {3u, 4u}) {
      SCOPED_TRACE(std::to_string(tags) + " tags");
      uint16_t sport = static_cast<uint16_t>(41000 + tags + (action[0] == 'r' ? 10 : 0));
      auto answer = syn(port, kStranger, sport, tags, 7000);
      if (std::string(action) == "drop") {
        EXPECT_FALSE(answer.has_value()) << "flags " << int(answer ? answer->flags : 0);
      } else {
        ASSERT_TRUE(answer.has_value()) << "no reset came back";
        EXPECT_EQ(answer->flags, sgtest::RST | sgtest::ACK);
        auto sent = frame(tags).ipv4(kStranger, Sandbox::kGwV4).tcp(sport, 25, sgtest::SYN, 7000).bytes();
        EXPECT_EQ(answer->tags, std::vector<uint8_t>(sent.begin() + 12, sent.begin() + 12 + 4 * tags))
            << "the reset carries the SYN's tags";
      }
      ack(port, kStranger, sport, tags, 7001, 12345);
    }
    EXPECT_EQ(listener.accepted_when(1, 1000), 0u);
    d->stop();
  }
  auto stats = json::parse(ctl({"-j", "stats"}).out);
  EXPECT_GE(stats["default_rule"]["counters"]["refuse_packets"].get<int>(), 4);
}

// The same frames from EOP's address connect: SYN-ACK back (untagged: the
// gateway has no VLAN device, so it answers plainly), the ACK completes the
// handshake, the listener accepts.
TEST_F(WireE2E, EopBehindPriorityTagsStillConnects) {
  sgtest::Listener listener(box.gateway(), 25);
  unsigned expected = 0;
  for (const char* action : {"drop", "reject"}) {
    SCOPED_TRACE(action);
    auto d = start(action);
    RawPort port(box.sender());
    for (unsigned tags : {3u, 4u}) {
      SCOPED_TRACE(std::to_string(tags) + " tags");
      uint16_t sport = static_cast<uint16_t>(42000 + tags + (action[0] == 'r' ? 10 : 0));
      auto answer = syn(port, kEop, sport, tags, 9000);
      ASSERT_TRUE(answer.has_value()) << "no SYN-ACK";
      EXPECT_EQ(answer->flags, sgtest::SYN | sgtest::ACK);
      ack(port, kEop, sport, tags, 9001, answer->seq + 1);
      expected++;
      EXPECT_EQ(listener.accepted_when(expected, 2000), expected);
    }
    d->stop();
  }
}

}  // namespace

namespace {

// A tunnel device on the gateway hands on what it decapsulates: the gate on
// the NIC sees only the outer headers. status names such a device while it
// is up and unguarded, and guarding it (--interface) silences that. A tun
// device has no Ethernet header: its program copy reads from the IP header.
TEST_F(WireE2E, UnguardedTunnelDevicesAreNamedUntilGuarded) {
  sgtest::sh("ip -n " + box.gateway().name() + " link add vx25 type vxlan id 25 dstport 4789 local 192.0.2.1");
  sgtest::sh("ip -n " + box.gateway().name() + " link set vx25 up");
  sgtest::sh("ip -n " + box.gateway().name() + " tuntap add tn25 mode tun");
  sgtest::sh("ip -n " + box.gateway().name() + " link set tn25 up");
  auto d = start("drop");
  json st = json::parse(ctl({"-j", "status"}).out);
  std::map<std::string, std::string> named;
  for (const auto& t : st["unguarded_tunnels"]) named[t["name"]] = t["kind"];
  EXPECT_EQ(named["vx25"], "vxlan");
  EXPECT_EQ(named["tn25"], "tun/wireguard");
  EXPECT_EQ(named.count(Sandbox::kGwIf), 0u);
  std::string text = ctl({"status"}).out;
  EXPECT_NE(text.find("vx25 (vxlan tunnel) is up and not guarded"), std::string::npos) << text;
  EXPECT_NE(text.find("smtpgated --interface vx25"), std::string::npos) << text;
  d->stop();
  EXPECT_NE(d->stderr_text().find("tn25 (tun/wireguard tunnel) is up and not guarded"), std::string::npos)
      << d->stderr_text();

  sgtest::Daemon guarded(box.gateway(), {sgtest::binary("smtpgated"), "--interface", Sandbox::kGwIf, "--interface",
                                         "vx25", "--interface", "tn25", "--pin-dir", box.pin_dir(), "--state-dir",
                                         box.state_dir(), "--action", "drop", "--no-feed"});
  ASSERT_TRUE(guarded.ready()) << guarded.stderr_text();
  st = json::parse(ctl({"-j", "status"}).out);
  EXPECT_TRUE(st["unguarded_tunnels"].empty()) << st["unguarded_tunnels"].dump();
  EXPECT_EQ(st["interfaces"].size(), 3u);
  guarded.stop();
  ctl({"detach", "vx25"});
  ctl({"detach", "tn25"});
}

}  // namespace
