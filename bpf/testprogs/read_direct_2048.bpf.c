// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The 2048 KiB yardstick of read_probe.h with its bitmap in other memory: 128
 * inner arrays of 16 KiB each, which the kernel allocates with kmalloc in its
 * direct map (2 MiB pages), where an array larger than 32 KiB, like
 * read_2048's, lives in 4 KiB vmalloc pages. If the pages were what makes a
 * random read of 2 MiB cost what it does under the flood, this probe would
 * cost less than read_2048; `flood_gen attach-probe` loads it (the inner
 * arrays are created at run time). */
#include "probe_source.h"

#define PROBE_KIB 2048
#define INNER_KIB 16
#define INNER_WORDS (INNER_KIB * 256)

struct probe_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, INNER_KIB * 1024);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PROBE_KIB / INNER_KIB);
	__type(key, __u32);
	__array(values, struct probe_inner);
} probe_outer SEC(".maps");

SEC("xdp")
int read_direct(struct xdp_md *ctx)
{
	long bit = probe_bit(ctx, PROBE_KIB * 8192);
	__u32 key, zero = 0;
	__u32 *words;
	void *inner;

	if (bit < 0)
		return XDP_DROP;
	key = (__u32)bit / (INNER_KIB * 8192);
	inner = bpf_map_lookup_elem(&probe_outer, &key);
	if (!inner)
		return XDP_DROP;
	words = bpf_map_lookup_elem(inner, &zero);
	if (words && (words[((__u32)bit >> 5) & (INNER_WORDS - 1)] & (1u << (bit & 31))))
		return XDP_PASS;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
