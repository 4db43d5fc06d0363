/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A yardstick for bench/flood.sh: the least a lookup structure of a given
 * size costs under a flood from spread sources. The program reads one bit of
 * a PROBE_KIB KiB bitmap, the bit probe_source.h picks for the frame's
 * source, and drops the packet, nothing else. The bitmap is PROBE_KIB
 * elements of 1 KiB, and the bit's element (bit / 8192) is below PROBE_KIB
 * for every bit below PROBE_KIB * 8192: all of it is read.
 * bench/yardstick_check.cpp checks that on the loaded programs. Included by
 * read_<size>.bpf.c, which defines PROBE_KIB. */
#include "probe_source.h"

struct probe_chunk {
	__u32 word[256]; /* 8192 bits */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PROBE_KIB);
	__type(key, __u32);
	__type(value, struct probe_chunk);
} probe_bits SEC(".maps");

SEC("xdp")
int read_probe(struct xdp_md *ctx)
{
	long bit = probe_bit(ctx, (__u64)PROBE_KIB * 8192);
	struct probe_chunk *c;
	__u32 key;

	if (bit < 0)
		return XDP_DROP;
	key = (__u32)bit >> 13;
	c = bpf_map_lookup_elem(&probe_bits, &key);
	if (c && (c->word[((__u32)bit >> 5) & 255] & (1u << (bit & 31))))
		return XDP_PASS;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
