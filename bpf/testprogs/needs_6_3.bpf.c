// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* A deliberately too-new program: it calls the kfunc bpf_dynptr_from_xdp(),
 * which Linux 6.3 added. The kernel matrix must catch it on Debian 12's 6.1
 * (tests/test_kernel_features.cpp), and the loader must say so in one line. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern int bpf_dynptr_from_xdp(struct xdp_md *xdp, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;

SEC("xdp")
int needs_6_3(struct xdp_md *ctx)
{
	struct bpf_dynptr ptr;

	if (bpf_dynptr_from_xdp(ctx, 0, &ptr))
		return XDP_ABORTED;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
