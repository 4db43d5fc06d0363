#include "links.hpp"

#include <linux/ethtool.h>
#include <linux/fou.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "fd.hpp"
#include "gate_program.hpp"

namespace smtpgate {

namespace {

// glibc's <net/if_arp.h> lacks it; <linux/if_arp.h> conflicts with <net/if.h>.
constexpr unsigned kArphrdIp6Gre = 823;
// <linux/if_tunnel.h> conflicts with <net/if.h> too: its SIOCGETTUNNEL and
// struct ip_tunnel_parm (a fixed ABI).
constexpr unsigned long kSiocGetTunnel = SIOCDEVPRIVATE + 0;
struct IpTunnelParm {
  char name[IFNAMSIZ];
  int link;
  uint16_t i_flags, o_flags;
  uint32_t i_key, o_key;
  struct iphdr iph;
};

LinkFacts read_link(int sock, const std::string& ifname) {
  LinkFacts l;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock, SIOCGIFHWADDR, &ifr) != 0) throw SystemError("read the link type of " + ifname, errno);
  l.type = ifr.ifr_hwaddr.sa_family;
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) == 0) l.up = ifr.ifr_flags & IFF_UP;
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifr.ifr_data = reinterpret_cast<char*>(&info);
  if (::ioctl(sock, SIOCETHTOOL, &ifr) == 0) l.driver = info.driver;
  if (l.type == ARPHRD_IPGRE) {
    // ip_gre gives a device without a unicast remote link-layer header
    // operations, and its receive path then leaves the MAC header at the
    // outer IP header (for ipgre_header_parse()). Unreadable: assumed so.
    IpTunnelParm p{};
    ifr.ifr_data = reinterpret_cast<char*>(&p);
    l.gre_fixed_remote =
        ::ioctl(sock, kSiocGetTunnel, &ifr) == 0 && p.iph.daddr != 0 && !IN_MULTICAST(ntohl(p.iph.daddr));
  }
  return l;
}

// The link types whose packets reach XDP from the IP header on: the tunnel
// receive paths reset the MAC header to the network header, so generic XDP
// has nothing before it (mac_len 0); so does PPP's, after it takes off the
// PPP protocol field.
bool ip_link(unsigned type) {
  switch (type) {
    case ARPHRD_TUNNEL:   // ipip
    case ARPHRD_TUNNEL6:  // ip6tnl
    case ARPHRD_SIT:
    case ARPHRD_IPGRE:  // gre, with a fixed remote
    case kArphrdIp6Gre:
    case ARPHRD_NONE:  // wireguard, tun
    case ARPHRD_PPP:   // pppoe, pptp, l2tp
      return true;
    default: return false;
  }
}

}  // namespace

LinkFacts read_link_facts(const std::string& ifname) {
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (s.fd < 0) throw SystemError("open a socket to read " + ifname + "'s link type", errno);
  return read_link(s.fd, ifname);
}

bool link_without_ethernet(const LinkFacts& l, const std::string& ifname) {
  if (l.type == ARPHRD_ETHER) return false;
  if (l.type == ARPHRD_IPGRE && !l.gre_fixed_remote)
    throw InputError(ifname +
                     " is a GRE tunnel without a fixed unicast remote, so its packets start at the outer "
                     "IP header and the gate cannot read the inner one; give it a remote (ip tunnel change " +
                     ifname + " remote ADDRESS) or carry the traffic another way");
  if (ip_link(l.type)) return true;
  throw InputError(ifname + " has link type " + std::to_string(l.type) +
                   ", neither Ethernet nor an IP tunnel, so the gate cannot tell where its IP header starts; "
                   "guard the Ethernet device below it");
}

bool link_without_ethernet(const std::string& ifname) { return link_without_ethernet(read_link_facts(ifname), ifname); }

std::string tunnel_kind(const LinkFacts& l) {
  switch (l.type) {
    case ARPHRD_TUNNEL: return "ipip";
    case ARPHRD_TUNNEL6: return "ip6tnl";
    case ARPHRD_SIT: return "sit";
    case ARPHRD_IPGRE: return l.gre_fixed_remote ? "gre" : "gre without a fixed remote";
    case kArphrdIp6Gre: return "ip6gre";
    case ARPHRD_NONE: return "tun/wireguard";
    case ARPHRD_PPP: return "ppp";
    case ARPHRD_ETHER:
      if (l.driver == "vxlan" || l.driver == "geneve") return l.driver;
      if (l.driver == "tun") return "tap";
      if (l.driver == "ip_gre" || l.driver == "ip6_gre") return "gretap";
      return "";
    default: return "";
  }
}

namespace {

// Walks the netlink messages in buf: FOU ports into out; true once the dump
// is done. An error message throws.
bool walk_fou_messages(const uint8_t* buf, size_t len, std::vector<FouPort>& out) {
  while (len >= sizeof(nlmsghdr)) {
    nlmsghdr h;
    std::memcpy(&h, buf, sizeof(h));
    if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len)
      throw SystemError("read the FOU ports: a cut netlink message", EBADMSG);
    if (h.nlmsg_type == NLMSG_DONE) return true;
    if (h.nlmsg_type == NLMSG_ERROR) {
      nlmsgerr e{};
      if (h.nlmsg_len < NLMSG_LENGTH(sizeof(e))) throw SystemError("read the FOU ports: a cut netlink error", EBADMSG);
      std::memcpy(&e, buf + NLMSG_HDRLEN, sizeof(e));
      if (e.error) throw SystemError("read the FOU ports", -e.error);
    } else if (h.nlmsg_len >= NLMSG_LENGTH(GENL_HDRLEN)) {
      FouPort p;
      bool has_port = false;
      size_t at = NLMSG_LENGTH(GENL_HDRLEN);
      while (at + NLA_HDRLEN <= h.nlmsg_len) {
        nlattr a;
        std::memcpy(&a, buf + at, sizeof(a));
        if (a.nla_len < NLA_HDRLEN || at + a.nla_len > h.nlmsg_len) break;
        const uint8_t* v = buf + at + NLA_HDRLEN;
        size_t vlen = a.nla_len - NLA_HDRLEN;
        switch (a.nla_type & NLA_TYPE_MASK) {
          case FOU_ATTR_PORT:
            if (vlen >= 2) p.port = static_cast<uint16_t>(v[0] << 8 | v[1]), has_port = true;  // big-endian
            break;
          case FOU_ATTR_AF:
            if (vlen >= 1) p.family = v[0];
            break;
          case FOU_ATTR_TYPE:
            if (vlen >= 1) p.gue = v[0] == FOU_ENCAP_GUE;
            break;
        }
        at += NLA_ALIGN(a.nla_len);
      }
      if (has_port) out.push_back(p);
    }
    size_t step = NLMSG_ALIGN(h.nlmsg_len);
    if (step >= len) break;
    buf += step;
    len -= step;
  }
  return false;
}

// Sends one generic netlink request with an optional string attribute.
void genl_send(int fd, uint16_t type, uint16_t flags, uint8_t cmd, uint8_t version, uint16_t attr,
               const std::string& value) {
  uint8_t msg[256] = {};
  size_t alen = attr ? NLA_HDRLEN + value.size() + 1 : 0;
  nlmsghdr h{};
  h.nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(GENL_HDRLEN) + NLA_ALIGN(alen));
  h.nlmsg_type = type;
  h.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  h.nlmsg_seq = 1;
  genlmsghdr g{};
  g.cmd = cmd;
  g.version = version;
  std::memcpy(msg, &h, sizeof(h));
  std::memcpy(msg + NLMSG_HDRLEN, &g, sizeof(g));
  if (attr) {
    nlattr a{static_cast<uint16_t>(alen), attr};
    std::memcpy(msg + NLMSG_LENGTH(GENL_HDRLEN), &a, sizeof(a));
    std::memcpy(msg + NLMSG_LENGTH(GENL_HDRLEN) + NLA_HDRLEN, value.c_str(), value.size() + 1);
  }
  if (::send(fd, msg, h.nlmsg_len, 0) < 0) throw SystemError("ask the kernel for its FOU ports", errno);
}

}  // namespace

std::vector<FouPort> parse_fou_dump(const uint8_t* buf, size_t len) {
  std::vector<FouPort> out;
  walk_fou_messages(buf, len, out);
  return out;
}

std::vector<FouPort> fou_ports() {
  Fd s(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC));
  if (s.fd < 0) throw SystemError("open a generic netlink socket to read the FOU ports", errno);
  timeval tv{1, 0};  // every answer within a second
  ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::vector<uint8_t> rx(32768);

  // The family's id; none without the fou module.
  genl_send(s.fd, GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY, 1, CTRL_ATTR_FAMILY_NAME, FOU_GENL_NAME);
  ssize_t n = ::recv(s.fd, rx.data(), rx.size(), 0);
  if (n < 0) throw SystemError("read the generic netlink families", errno);
  uint16_t family = 0;
  {
    nlmsghdr h;
    if (size_t(n) < sizeof(h)) throw SystemError("read the generic netlink families: a cut message", EBADMSG);
    std::memcpy(&h, rx.data(), sizeof(h));
    if (h.nlmsg_type == NLMSG_ERROR) return {};  // ENOENT: no FOU in this kernel
    size_t end = std::min<size_t>(h.nlmsg_len, size_t(n));
    for (size_t at = NLMSG_LENGTH(GENL_HDRLEN); at + NLA_HDRLEN <= end;) {
      nlattr a;
      std::memcpy(&a, rx.data() + at, sizeof(a));
      if (a.nla_len < NLA_HDRLEN || at + a.nla_len > end) break;
      if (a.nla_type == CTRL_ATTR_FAMILY_ID && a.nla_len >= NLA_HDRLEN + 2)
        std::memcpy(&family, rx.data() + at + NLA_HDRLEN, 2);
      at += NLA_ALIGN(a.nla_len);
    }
  }
  if (!family) return {};

  std::vector<FouPort> out;
  genl_send(s.fd, family, NLM_F_DUMP, FOU_CMD_GET, FOU_GENL_VERSION, 0, "");
  for (int reads = 0; reads < 64; reads++) {  // 64 reads of 32 KiB: far more ports than any host has
    n = ::recv(s.fd, rx.data(), rx.size(), 0);
    if (n < 0) throw SystemError("read the FOU ports", errno);
    if (walk_fou_messages(rx.data(), size_t(n), out)) return out;
  }
  throw SystemError("read the FOU ports: the kernel's list did not end", E2BIG);
}

std::vector<UnguardedTunnel> unguarded_tunnels() {
  std::vector<UnguardedTunnel> out;
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (s.fd < 0) return out;
  struct if_nameindex* list = if_nameindex();
  if (!list) return out;
  for (struct if_nameindex* i = list; i->if_index; i++) {
    try {
      LinkFacts l = read_link(s.fd, i->if_name);
      std::string kind = tunnel_kind(l);
      if (kind.empty() || !l.up || query_attached(i->if_name).attached) continue;
      out.push_back({i->if_name, kind, !(l.type == ARPHRD_IPGRE && !l.gre_fixed_remote)});
    } catch (...) {
      continue;  // gone since the listing
    }
  }
  if_freenameindex(list);
  try {
    for (const FouPort& p : fou_ports())
      out.push_back({"udp port " + std::to_string(p.port) + (p.family == AF_INET6 ? " (IPv6)" : ""),
                     p.gue ? "gue" : "fou", false, p.port});
  } catch (const std::exception& e) {
    out.push_back({"udp ports", std::string("fou, unreadable: ") + e.what(), false, 0});
  }
  return out;
}

std::string tunnel_advice(const UnguardedTunnel& t) {
  if (t.kind == "gre without a fixed remote")
    return t.ifname +
           " (GRE tunnel without a fixed remote) is up: a port-25 SYN it decapsulates reaches the mail "
           "server ungated, and the gate cannot guard it (its packets start at the outer IP header); give it a "
           "remote (ip tunnel change " +
           t.ifname + " remote ADDRESS) or remove it";
  if (!t.guardable && t.udp_port)
    return t.ifname + " (" + t.kind +
           ") is a UDP port the kernel decapsulates: a port-25 SYN sent inside reaches "
           "the mail server without the gate seeing it, and no device carries it to guard; remove it (ip fou del "
           "port " +
           std::to_string(t.udp_port) + ") unless the mail server must be reached that way";
  if (!t.guardable)
    return "the FOU/GUE receive ports could not be read (" + t.kind +
           "): a UDP port the kernel decapsulates "
           "would hand port-25 SYNs to the mail server ungated; check ip fou show";
  return t.ifname + " (" + t.kind +
         " tunnel) is up and not guarded: a port-25 SYN it decapsulates reaches the "
         "mail server without the gate seeing it; guard it too (smtpgated --interface " +
         t.ifname + ", or add it to interfaces in smtpgate.toml)";
}

}  // namespace smtpgate
