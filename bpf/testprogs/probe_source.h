/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What every yardstick probe (read_probe.h, read_direct_2048.bpf.c) indexes
 * its bitmap by: the /24 block of an Ethernet/IPv4 frame's source. */
#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

/* The source's /24 block (its first 24 bits), or -1 for a frame too short
 * to hold an IPv4 header. */
static __always_inline long probe_block(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + 14;

	if ((void *)(ip + 1) > data_end)
		return -1;
	return __builtin_bswap32(ip->saddr) >> 8;
}
