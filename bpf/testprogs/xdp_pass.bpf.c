// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The floor: an XDP program that passes every packet. The benchmark's
 * baseline, and what the sender side of a veth pair runs so that the gate's
 * XDP_TX replies (resets) are received there (veth delivers XDP_TX frames only
 * to a peer with NAPI, which an XDP program turns on). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
