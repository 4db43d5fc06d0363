#include "links.hpp"

#include <linux/ethtool.h>
#include <net/if_arp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "gate_program.hpp"

namespace smtpgate {

namespace {

// glibc's <net/if_arp.h> lacks it; <linux/if_arp.h> conflicts with <net/if.h>.
constexpr unsigned kArphrdIp6Gre = 823;

struct Socket {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ~Socket() {
    if (fd >= 0) ::close(fd);
  }
};

struct Link {
  unsigned type = 0;   // ARPHRD_*
  bool up = false;
  std::string driver;  // ethtool's, "" when the device has none
};

Link read_link(const Socket& s, const std::string& ifname) {
  Link l;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(s.fd, SIOCGIFHWADDR, &ifr) != 0) throw SystemError("read the link type of " + ifname, errno);
  l.type = ifr.ifr_hwaddr.sa_family;
  if (::ioctl(s.fd, SIOCGIFFLAGS, &ifr) == 0) l.up = ifr.ifr_flags & IFF_UP;
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifr.ifr_data = reinterpret_cast<char*>(&info);
  if (::ioctl(s.fd, SIOCETHTOOL, &ifr) == 0) l.driver = info.driver;
  return l;
}

// The link types whose packets reach XDP from the IP header on: the tunnel
// receive paths reset the MAC header to the network header, so generic XDP
// has nothing before it (mac_len 0).
bool ip_link(unsigned type) {
  switch (type) {
    case ARPHRD_TUNNEL:   // ipip
    case ARPHRD_TUNNEL6:  // ip6tnl
    case ARPHRD_SIT:
    case ARPHRD_IPGRE:    // gre
    case kArphrdIp6Gre:
    case ARPHRD_NONE:     // wireguard, tun
      return true;
    default:
      return false;
  }
}

std::string tunnel_kind(const Link& l) {
  switch (l.type) {
    case ARPHRD_TUNNEL: return "ipip";
    case ARPHRD_TUNNEL6: return "ip6tnl";
    case ARPHRD_SIT: return "sit";
    case ARPHRD_IPGRE: return "gre";
    case kArphrdIp6Gre: return "ip6gre";
    case ARPHRD_NONE: return "tun/wireguard";
    case ARPHRD_ETHER:
      if (l.driver == "vxlan" || l.driver == "geneve") return l.driver;
      if (l.driver == "tun") return "tap";
      if (l.driver == "ip_gre" || l.driver == "ip6_gre") return "gretap";
      return "";
    default:
      return "";
  }
}

}  // namespace

bool link_without_ethernet(const std::string& ifname) {
  Socket s;
  if (s.fd < 0) throw SystemError("open a socket to read " + ifname + "'s link type", errno);
  Link l = read_link(s, ifname);
  if (l.type == ARPHRD_ETHER) return false;
  if (ip_link(l.type)) return true;
  throw InputError(ifname + " has link type " + std::to_string(l.type) +
                   ", neither Ethernet nor an IP tunnel, so the gate cannot tell where its IP header starts; "
                   "guard the Ethernet device below it");
}

std::vector<UnguardedTunnel> unguarded_tunnels() {
  std::vector<UnguardedTunnel> out;
  Socket s;
  if (s.fd < 0) return out;
  struct if_nameindex* list = if_nameindex();
  if (!list) return out;
  for (struct if_nameindex* i = list; i->if_index; i++) {
    try {
      Link l = read_link(s, i->if_name);
      std::string kind = tunnel_kind(l);
      if (kind.empty() || !l.up || query_attached(i->if_name).attached) continue;
      out.push_back({i->if_name, kind});
    } catch (...) {
      continue;  // gone since the listing
    }
  }
  if_freenameindex(list);
  return out;
}

std::string tunnel_advice(const UnguardedTunnel& t) {
  return t.ifname + " (" + t.kind + " tunnel) is up and not guarded: a port-25 SYN it decapsulates reaches the "
         "mail server without the gate seeing it; guard it too (smtpgated --interface " + t.ifname +
         ", or add it to interfaces in smtpgate.toml)";
}

}  // namespace smtpgate
