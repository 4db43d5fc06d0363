/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing in the xdp-tools style: a bounds check against data_end
 * before every read, the next protocol or -1. */
#ifndef SMTPGATE_PARSING_H
#define SMTPGATE_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1FFF

/* Not in every UAPI: the IPv6 extension headers we walk. */
#define NEXTHDR_HOP_ 0
#define NEXTHDR_ROUTING_ 43
#define NEXTHDR_FRAGMENT_ 44
#define NEXTHDR_AUTH_ 51
#define NEXTHDR_DEST_ 60

struct vlan_hdr_ {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_opt_hdr_ {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct frag_hdr_ {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

static __always_inline int proto_is_vlan(__u16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q_) || h_proto == bpf_htons(ETH_P_8021AD_);
}

/* Ethernet and at most two VLAN tags (802.1Q, 802.1ad). Returns the
 * ethertype after the tags (network order) and sets *l3 to what follows
 * them, or returns -1 if the frame is cut. */
static __always_inline int parse_ethhdr(void *data, void *data_end, void **l3)
{
	void *pos = data + sizeof(struct ethhdr);
	__u16 h_proto;

	if (pos > data_end)
		return -1;
	/* struct ethhdr is packed: read the type as the 16-bit word it is
	 * (frames start 2-byte aligned), not byte by byte. */
	h_proto = *(__u16 *)(data + 12);

#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr_ *vlh = pos;

		if (!proto_is_vlan(h_proto))
			break;
		if ((void *)(vlh + 1) > data_end)
			return -1;
		h_proto = vlh->encap_proto;
		pos = vlh + 1;
	}
	*l3 = pos;
	return h_proto;
}

#endif /* SMTPGATE_PARSING_H */
