// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The bare-trie baseline for the benchmark: an IPv4 TCP SYN to port 25 is
 * looked up in one LPM trie and dropped if no prefix holds its source; no
 * counters, no stride table. What "an LPM-trie allowlist" costs alone. */
#include "../parsing.h"
#include "../smtpgate_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 4 * 1024 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sg_lpm_v4_key);
	__type(value, __u32);
} lpm_v4 SEC(".maps");

SEC("xdp")
int lpm_only(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor nh = {.pos = data};
	struct sg_lpm_v4_key key = {.prefixlen = 32};
	struct iphdr *iph;
	struct tcphdr *th;

	if (parse_ethhdr(&nh, data_end) != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	iph = nh.pos;
	if ((void *)(iph + 1) > data_end || iph->protocol != IPPROTO_TCP)
		return XDP_PASS;
	th = (void *)iph + iph->ihl * 4;
	if ((void *)(th + 1) > data_end || th->dest != bpf_htons(25) || !th->syn || th->ack)
		return XDP_PASS;
	__builtin_memcpy(key.addr, &iph->saddr, 4);
	return bpf_map_lookup_elem(&lpm_v4, &key) ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
