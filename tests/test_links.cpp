// Where a device's packets start for the program, and which devices and
// UDP ports decapsulate what the gate on the NIC cannot see: the link
// classification as a table over the kernel's link types, and the FOU/GUE
// port list as the kernel's generic netlink answers carry it.
#include <gtest/gtest.h>
#include <linux/fou.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <net/if_arp.h>
#include <sys/socket.h>

#include <cstring>

#include "error.hpp"
#include "links.hpp"

using namespace smtpgate;

namespace {

LinkFacts facts(unsigned type, std::string driver = "", bool fixed_remote = true) {
  LinkFacts l;
  l.type = type;
  l.up = true;
  l.driver = std::move(driver);
  l.gre_fixed_remote = fixed_remote;
  return l;
}

enum class Head { Ethernet, Ip, Refused };

Head head(const LinkFacts& l, std::string* why = nullptr) {
  try {
    return link_without_ethernet(l, "dev0") ? Head::Ip : Head::Ethernet;
  } catch (const InputError& e) {
    if (why) *why = e.what();
    return Head::Refused;
  }
}

// ARPHRD_* values glibc's <net/if_arp.h> may lack.
constexpr unsigned kIp6Gre = 823, kCan = 280, kInfiniband = 32, kLoopback = 772;

TEST(Links, EachLinkTypeIsReadFromWhereXdpSeesItsPacketsStart) {
  struct Row {
    const char* name;
    LinkFacts link;
    Head head;
    const char* kind;
  } rows[] = {
      {"ethernet", facts(ARPHRD_ETHER), Head::Ethernet, ""},
      {"veth", facts(ARPHRD_ETHER, "veth"), Head::Ethernet, ""},
      {"vxlan", facts(ARPHRD_ETHER, "vxlan"), Head::Ethernet, "vxlan"},
      {"geneve", facts(ARPHRD_ETHER, "geneve"), Head::Ethernet, "geneve"},
      {"gretap", facts(ARPHRD_ETHER, "ip_gre"), Head::Ethernet, "gretap"},
      {"tap", facts(ARPHRD_ETHER, "tun"), Head::Ethernet, "tap"},
      {"ipip", facts(ARPHRD_TUNNEL), Head::Ip, "ipip"},
      {"ip6tnl", facts(ARPHRD_TUNNEL6), Head::Ip, "ip6tnl"},
      {"sit", facts(ARPHRD_SIT), Head::Ip, "sit"},
      {"gre with a remote", facts(ARPHRD_IPGRE), Head::Ip, "gre"},
      {"ip6gre (no link header even without a remote)", facts(kIp6Gre), Head::Ip, "ip6gre"},
      {"wireguard, tun", facts(ARPHRD_NONE), Head::Ip, "tun/wireguard"},
      // ppp_receive_nonmp_frame() takes off the PPP protocol field and
      // resets the MAC header there: the packet starts at the IP header.
      {"ppp (pppoe, l2tp, pptp)", facts(ARPHRD_PPP), Head::Ip, "ppp"},
      // ip_gre gives a GRE device without a unicast remote header_ops and
      // leaves its MAC header at the outer IP header: XDP would read the
      // outer header, and pass every inner SYN.
      {"gre without a remote (NBMA)", facts(ARPHRD_IPGRE, "", false), Head::Refused, "gre without a fixed remote"},
      {"loopback", facts(kLoopback), Head::Refused, ""},
      {"infiniband", facts(kInfiniband), Head::Refused, ""},
      {"can", facts(kCan), Head::Refused, ""},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.name);
    EXPECT_EQ(head(row.link), row.head);
    EXPECT_EQ(tunnel_kind(row.link), row.kind);
  }
}

TEST(Links, ANbmaGreDeviceIsRefusedInOneLineThatSaysWhatToDo) {
  std::string why;
  ASSERT_EQ(head(facts(ARPHRD_IPGRE, "", false), &why), Head::Refused);
  EXPECT_EQ(why.find('\n'), std::string::npos);
  EXPECT_NE(why.find("dev0 is a GRE tunnel without a fixed unicast remote"), std::string::npos) << why;
  EXPECT_NE(why.find("ip tunnel change dev0 remote"), std::string::npos) << why;

  // Listed as unguarded, and the advice does not say to guard it.
  std::string advice = tunnel_advice({"gre9", "gre without a fixed remote", false, 0});
  EXPECT_EQ(advice.find("--interface"), std::string::npos) << advice;
  EXPECT_NE(advice.find("ip tunnel change gre9 remote"), std::string::npos) << advice;
  advice = tunnel_advice({"gre1", "gre", true, 0});
  EXPECT_NE(advice.find("smtpgated --interface gre1"), std::string::npos) << advice;
}

// The kernel's answer to FOU_CMD_GET, message by message, as fou_nl_dump()
// writes it: a genetlink header, then PORT (be16), AF, IPPROTO, TYPE.
void put_attr(std::vector<uint8_t>& m, uint16_t type, const void* v, size_t n) {
  nlattr a{static_cast<uint16_t>(NLA_HDRLEN + n), type};
  size_t at = m.size();
  m.resize(at + NLA_ALIGN(a.nla_len));
  std::memcpy(m.data() + at, &a, sizeof(a));
  std::memcpy(m.data() + at + NLA_HDRLEN, v, n);
}

std::vector<uint8_t> fou_message(uint16_t port, uint8_t af, uint8_t type, uint16_t nl_type = 30) {
  std::vector<uint8_t> m(NLMSG_LENGTH(GENL_HDRLEN));
  uint8_t be[2] = {uint8_t(port >> 8), uint8_t(port)}, proto = 4;
  put_attr(m, FOU_ATTR_PORT, be, 2);
  put_attr(m, FOU_ATTR_AF, &af, 1);
  put_attr(m, FOU_ATTR_IPPROTO, &proto, 1);
  put_attr(m, FOU_ATTR_TYPE, &type, 1);
  nlmsghdr h{uint32_t(m.size()), nl_type, NLM_F_MULTI, 1, 0};
  std::memcpy(m.data(), &h, sizeof(h));
  genlmsghdr g{FOU_CMD_GET, FOU_GENL_VERSION, 0};
  std::memcpy(m.data() + NLMSG_HDRLEN, &g, sizeof(g));
  return m;
}

TEST(Links, FouAndGuePortsAreReadFromTheKernelsDump) {
  std::vector<uint8_t> buf;
  for (auto m : {fou_message(5555, AF_INET, FOU_ENCAP_DIRECT), fou_message(6080, AF_INET6, FOU_ENCAP_GUE)})
    buf.insert(buf.end(), m.begin(), m.end());
  nlmsghdr done{NLMSG_HDRLEN + 4, NLMSG_DONE, NLM_F_MULTI, 1, 0};
  size_t at = buf.size();
  buf.resize(at + done.nlmsg_len);
  std::memcpy(buf.data() + at, &done, sizeof(done));
  auto ports = parse_fou_dump(buf.data(), buf.size());
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(ports[0].port, 5555);
  EXPECT_EQ(ports[0].family, AF_INET);
  EXPECT_FALSE(ports[0].gue);
  EXPECT_EQ(ports[1].port, 6080);
  EXPECT_EQ(ports[1].family, AF_INET6);
  EXPECT_TRUE(ports[1].gue);

  // A message longer than the buffer is refused, not read past.
  auto cut = fou_message(25, AF_INET, FOU_ENCAP_DIRECT);
  EXPECT_THROW(parse_fou_dump(cut.data(), cut.size() - 4), SystemError);
  // An error answer is an error.
  std::vector<uint8_t> err(NLMSG_LENGTH(sizeof(nlmsgerr)));
  nlmsghdr eh{uint32_t(err.size()), NLMSG_ERROR, 0, 1, 0};
  nlmsgerr e{};
  e.error = -EPERM;
  std::memcpy(err.data(), &eh, sizeof(eh));
  std::memcpy(err.data() + NLMSG_HDRLEN, &e, sizeof(e));
  EXPECT_THROW(parse_fou_dump(err.data(), err.size()), SystemError);

  std::string advice = tunnel_advice({"udp port 5555", "fou", false, 5555});
  EXPECT_NE(advice.find("ip fou del port 5555"), std::string::npos) << advice;
  EXPECT_EQ(advice.find("--interface"), std::string::npos) << advice;
}

// The real query: the kernel answers (no fou module: no family, no ports).
TEST(Links, TheKernelIsAskedForItsFouPortsWithinADeadline) {
  std::vector<FouPort> ports;
  EXPECT_NO_THROW(ports = fou_ports());
  for (const auto& p : ports) EXPECT_NE(p.port, 0);
}

}  // namespace
