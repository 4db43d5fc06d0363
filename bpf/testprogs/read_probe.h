/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A yardstick for bench/flood.sh: the least a lookup structure of a given
 * size costs under a SYN flood from spread sources. The program reads one bit
 * of a PROBE_KIB KiB bitmap at the source's /24 block (wrapped to the
 * bitmap's size) and drops the packet, nothing else. Included by
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
	long b = probe_block(ctx);
	struct probe_chunk *c;
	__u32 block, key;

	if (b < 0)
		return XDP_DROP;
	block = b;
	key = (block >> 13) % PROBE_KIB;
	c = bpf_map_lookup_elem(&probe_bits, &key);
	if (c && (c->word[(block >> 5) & 255] & (1u << (block & 31))))
		return XDP_PASS;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
