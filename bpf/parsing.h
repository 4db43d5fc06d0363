/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header parsing in the xdp-tools style: a cursor, a bounds check against
 * data_end before every read, the next protocol or -1. */
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
 * the tags walked (network order) with the cursor on what follows it, or -1
 * if the frame is cut. A tag protocol id returned means more tags follow
 * than were walked: the caller cannot know what the frame carries. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end)
{
	struct ethhdr *eth = nh->pos;
	__u16 h_proto;

	if ((void *)(eth + 1) > data_end)
		return -1;
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
			return -1;
		h_proto = vlh->encap_proto;
		nh->pos = vlh + 1;
	}
	return h_proto;
}

#endif /* SMTPGATE_PARSING_H */
