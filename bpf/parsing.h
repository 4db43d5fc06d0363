/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing in the xdp-tools style: a cursor that each parser moves
 * past the header it read, a bounds check against data_end before every read,
 * and the next protocol, or a negative PARSE_* when the header cannot be
 * read. The parsers only read headers; what a packet is worth to the gate is
 * decided in smtpgate.bpf.c. */
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

#include "smtpgate_abi.h"

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

/* Where parsing has got to in the frame. */
struct hdr_cursor {
	void *pos;
};

/* What a parser returns instead of a protocol. */
#define PARSE_CUT -1 /* the header runs past the frame, or is invalid */
#define PARSE_LATER_FRAGMENT -2 /* an IPv6 fragment header of nonzero offset */
#define PARSE_TOO_DEEP -3 /* more IPv6 extension headers than walked */

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

/* The tag protocol ids Linux strips on receive (eth_type_vlan(): 802.1Q and
 * 802.1ad, whatever the VLAN id; 0x9100 and the like are not tags to it). */
static __always_inline int proto_is_vlan(__u16 h_proto)
{
	return h_proto == bpf_htons(ETH_P_8021Q_) || h_proto == bpf_htons(ETH_P_8021AD_);
}

/* Ethernet and up to SG_MAX_VLAN_TAGS VLAN tags. Returns the ethertype after
 * the tags walked (network order) with the cursor on what follows it, or
 * PARSE_CUT if the frame is cut. A tag protocol id returned means more tags follow
 * than were walked: the caller cannot know what the frame carries. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end)
{
	struct ethhdr *eth = nh->pos;
	__u16 h_proto;

	if ((void *)(eth + 1) > data_end)
		return PARSE_CUT;
	nh->pos = eth + 1;
	/* struct ethhdr is packed: read the type as the 16-bit word it is
	 * (frames start 2-byte aligned), not byte by byte. */
	h_proto = *(__u16 *)((void *)eth + 12);

#pragma unroll
	for (int i = 0; i < SG_MAX_VLAN_TAGS; i++) {
		struct vlan_hdr_ *vlh = nh->pos;

		if (!proto_is_vlan(h_proto))
			break;
		if ((void *)(vlh + 1) > data_end)
			return PARSE_CUT;
		h_proto = vlh->encap_proto;
		nh->pos = vlh + 1;
	}
	return h_proto;
}

/* An IPv4 header: version 4, IHL of at least 5, and all of it in the frame
 * (options included). Returns the protocol with the cursor past the header
 * and *iphdr on it, or PARSE_CUT. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end, struct iphdr **iphdr)
{
	struct iphdr *iph = nh->pos;
	__u32 hdrsize;

	if ((void *)(iph + 1) > data_end)
		return PARSE_CUT;
	/* Version 4 and no options, nearly every packet: one compare. */
	if (*(__u8 *)iph == 0x45) {
		hdrsize = sizeof(*iph);
	} else {
		if (iph->version != 4 || iph->ihl < 5)
			return PARSE_CUT;
		hdrsize = iph->ihl * 4;
		if (nh->pos + hdrsize > data_end)
			return PARSE_CUT;
	}
	nh->pos += hdrsize;
	*iphdr = iph;
	return iph->protocol;
}

/* The fixed IPv6 header, of version 6. Returns the type of the header after
 * it with the cursor on that header and *ip6hdr on this one, or PARSE_CUT. */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end,
					struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = nh->pos;

	if ((void *)(ip6h + 1) > data_end)
		return PARSE_CUT;
	if (ip6h->version != 6)
		return PARSE_CUT;
	nh->pos = ip6h + 1;
	*ip6hdr = ip6h;
	return ip6h->nexthdr;
}

/* What parse_ip6_exthdrs() learns on its way; zero before the walk. */
struct ip6_exthdrs {
	__u32 len; /* bytes of the headers walked */
	int first_frag; /* the last fragment header walked says offset 0
			   and more fragments; also when PARSE_CUT */
};

/* The IPv6 extension headers from the cursor, nexthdr the type of the first:
 * at most SG_MAX_EXT_HEADERS of them. Returns the upper-layer protocol with
 * the cursor on its header; PARSE_CUT when a header runs past the frame;
 * PARSE_LATER_FRAGMENT at a fragment header of nonzero offset; PARSE_TOO_DEEP
 * when the chain goes on past the walk. */
static __always_inline int parse_ip6_exthdrs(struct hdr_cursor *nh, void *data_end, __u8 nexthdr,
					     struct ip6_exthdrs *ext)
{
	for (int i = 0; i < SG_MAX_EXT_HEADERS; i++) {
		struct ipv6_opt_hdr_ *oh = nh->pos;
		struct frag_hdr_ *fh = nh->pos;
		__u32 len;

		switch (nexthdr) {
		case NEXTHDR_HOP_:
		case NEXTHDR_ROUTING_:
		case NEXTHDR_DEST_:
			if ((void *)(oh + 1) > data_end)
				return PARSE_CUT;
			len = ((__u32)oh->hdrlen + 1) * 8;
			break;
		case NEXTHDR_AUTH_:
			if ((void *)(oh + 1) > data_end)
				return PARSE_CUT;
			len = ((__u32)oh->hdrlen + 2) * 4;
			break;
		case NEXTHDR_FRAGMENT_:
			if ((void *)(fh + 1) > data_end)
				return PARSE_CUT;
			if (bpf_ntohs(fh->frag_off) & 0xFFF8)
				return PARSE_LATER_FRAGMENT;
			ext->first_frag = bpf_ntohs(fh->frag_off) & 1;
			len = sizeof(*fh);
			break;
		default:
			return nexthdr;
		}
		nexthdr = oh->nexthdr;
		nh->pos += len;
		ext->len += len;
	}
	if (nexthdr == NEXTHDR_HOP_ || nexthdr == NEXTHDR_ROUTING_ || nexthdr == NEXTHDR_DEST_ ||
	    nexthdr == NEXTHDR_AUTH_ || nexthdr == NEXTHDR_FRAGMENT_)
		return PARSE_TOO_DEEP;
	return nexthdr;
}

/* A TCP header whose fixed part is in the frame and whose data offset is at
 * least 5. Its options are not read, and not required to be in the frame.
 * Returns the header's length with the cursor past it and *tcphdr on it, or
 * PARSE_CUT. */
static __always_inline int parse_tcphdr(struct hdr_cursor *nh, void *data_end,
					struct tcphdr **tcphdr)
{
	struct tcphdr *th = nh->pos;
	int len;

	if ((void *)(th + 1) > data_end)
		return PARSE_CUT;
	len = th->doff * 4;
	if (len < (int)sizeof(*th))
		return PARSE_CUT;
	nh->pos += len;
	*tcphdr = th;
	return len;
}

/* The ports of a TCP header: its first four bytes, all that a first fragment
 * is sure to hold. Only th->source and th->dest may be read through *tcphdr.
 * Returns 0, or PARSE_CUT; the cursor stays on the header, which is not
 * known to be whole. */
static __always_inline int parse_tcp_ports(struct hdr_cursor *nh, void *data_end,
					   struct tcphdr **tcphdr)
{
	if (nh->pos + 4 > data_end)
		return PARSE_CUT;
	*tcphdr = nh->pos;
	return 0;
}

#endif /* SMTPGATE_PARSING_H */
