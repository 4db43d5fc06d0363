// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The floor of the end-to-end flood benchmark: an XDP program that drops
 * every packet. What a SYN costs with it attached is what the sender, the
 * veth pair and the XDP hook cost anyway; any filter's cost is measured above
 * it. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
