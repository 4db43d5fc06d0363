/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Which bit every yardstick probe (read_probe.h, read_direct_2048.bpf.c)
 * reads for a frame. */
#include <linux/bpf.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

/* The bit of a bitmap of nbits bits (at most 2^32) that the frame's IPv4
 * source selects, or -1 for a frame too short to hold an IPv4 header. The
 * source is mixed by a multiplication with an odd constant (a bijection of
 * the 32-bit sources) and mapped onto [0, nbits) by the high half of a
 * 32x32-bit product, so that spread sources read every part of the bitmap
 * alike, whatever its size: a bitmap of S bytes is read over all S bytes. */
static __always_inline long probe_bit(struct xdp_md *ctx, __u64 nbits)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + 14;
	__u32 h;

	if ((void *)(ip + 1) > data_end)
		return -1;
	h = __builtin_bswap32(ip->saddr) * 0x9e3779b1u;
	return (long)(((__u64)h * nbits) >> 32);
}
