// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * smtpgate: admit TCP SYNs to the guarded ports (25) only from the sources an
 * LPM-trie allowlist names; refuse the rest by drop, reset or monitor. Every
 * other packet passes untouched. See docs/design.md.
 */
#include "parsing.h"
#include "smtpgate_abi.h"

#include <xdp/xdp_helpers.h>

/* ---- maps (layouts in smtpgate_abi.h) ---------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sg_config);
} gate_config SEC(".maps");

/* Inner tries: userspace creates them with their own sizes (kernel >= 5.10
 * allows inner LPM maps of differing max_entries). Sizes, not __type: clang
 * emits the key and value structs of a template no variable instantiates only
 * as forward declarations, which libbpf cannot size. */
struct allow_v4_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct sg_lpm_v4_key));
	__uint(value_size, sizeof(struct sg_rule_ref));
};

struct allow_v6_trie {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct sg_lpm_v6_key));
	__uint(value_size, sizeof(struct sg_rule_ref));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, SG_SLOTS);
	__type(key, __u32);
	__array(values, struct allow_v4_trie);
} allow_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, SG_SLOTS);
	__type(key, __u32);
	__array(values, struct allow_v6_trie);
} allow_v6 SEC(".maps");

/* The stride tables (layout in smtpgate_abi.h): sized by the loader, written
 * by userspace through mmap. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SG_TABLE_FIRST_CHUNK + SG_DEFAULT_TABLE_CHUNKS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sg_chunk);
} table_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SG_TABLE_FIRST_CHUNK + SG_DEFAULT_TABLE_CHUNKS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sg_chunk);
} table_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SG_PREFILTER_ELEMENTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sg_chunk);
} prefilter_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SG_SUMMARY_ELEMENTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sg_chunk);
} summary SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SG_DEFAULT_MAX_RULES);
	__type(key, __u32);
	__type(value, struct sg_rule_counters);
} rule_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SG_PACKET_COUNTERS);
	__type(key, __u32);
	__type(value, struct sg_counter);
} packet_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SG_DEFAULT_RECENT_SOURCES / SG_RECENT_WAYS);
	__type(key, __u32);
	__type(value, struct sg_recent_set);
} recent_refused SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sg_cpu_state);
} cpu_state SEC(".maps");

/* Set by the loader for each attachment before load (each interface runs its
 * own copy of the program): 1 where the device has no Ethernet header (an
 * IPIP, GRE, SIT or ip6tnl tunnel, WireGuard), so the packet starts at the IP
 * header. */
const volatile __u8 no_ethernet = 0;

/* 1 (see classify()), in a data section of its own: a global the program may
 * write, so the verifier cannot know its value. Any loader gets the 1 from
 * the object; smtpgate's puts a map of its own in the section's place,
 * filled and frozen before load, so that no one can change it afterwards
 * (by writing the program's maps, as anyone could with .data). Nothing in
 * the program writes it. */
volatile __u32 verifier_one SEC(".data.verifier_one") = 1;

/* Under libxdp's dispatcher: run early, and let the next program see what we
 * pass. */
struct {
	__uint(priority, 20);
	__uint(XDP_PASS, 1);
} XDP_RUN_CONFIG(smtpgate_xdp);

/* ---- what the classifier learns about a packet -------------------------- */

struct pkt {
	__u32 family; /* 4 or 6 */
	void *l3; /* the IP header */
	struct sg_config *cfg; /* looked up once a TCP header is found, else 0 */
	/* Only for a packet to judge: */
	__u8 saddr[16]; /* copy_source(): IPv4 in the first 4 bytes, rest zero */
	__u32 l3_len; /* bytes from the IP header to TCP: a reset reads it again */
	__u16 dport;
	__u8 can_reset; /* a complete, unfragmented TCP header was seen */
	__u8 judged_as; /* enum sg_judged_as */
};

/* The IP header on the way to the upper layer: what classify_tcp() and
 * judge_source() copy into a packet to judge. */
struct ip_seen {
	void *l3; /* the IP header */
	__u32 family; /* 4 or 6 */
	__u32 l3_len; /* bytes from the IP header to the upper layer */
	int first_frag; /* offset 0 with more fragments to come */
};

/* Internal: "judge this packet", beside the pass reasons of enum sg_reason.
 * SG_REASON_TAG_LIMIT is the other verdict the classifier hands on: refuse a
 * frame it could not read to its end. */
#define JUDGE SG_REASON_MAX

/* gate_config[0]. Looked up only for TCP: the packets that are not TCP
 * leave without it. */
static __always_inline struct sg_config *gate_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&gate_config, &zero);
}

/* port: the destination port, host byte order. One load and a bit test;
 * the index is below SG_PORT_WORDS for any 16-bit value. The bits of ports
 * below 320 share the configuration's first line with the state. */
static __always_inline int port_guarded(const struct sg_config *cfg, __u16 port)
{
	if (!cfg)
		return 0;
	return (cfg->port_bits[port >> 5] >> (port & 31)) & 1;
}

/* Bytes the IP header(s) say follow them, for the reset's acknowledgment
 * number: read only for a SYN that may be reset. */
static __always_inline __u32 ip_payload_len(const struct pkt *p, void *data_end, __u32 l3_len)
{
	__u32 total;

	if (p->family == 4) {
		struct iphdr *iph = p->l3;

		if ((void *)(iph + 1) > data_end)
			return 0;
		total = bpf_ntohs(iph->tot_len);
	} else {
		struct ipv6hdr *ip6h = p->l3;

		if ((void *)(ip6h + 1) > data_end)
			return 0;
		total = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
	}
	return total > l3_len ? total - l3_len : 0;
}

/* A packet to judge on its source alone, with no port to name (judged_as
 * says why): no configuration was read, and no reset can be built. */
static __always_inline __u32 judge_source(struct pkt *p, const struct ip_seen *ip, __u8 judged_as)
{
	p->family = ip->family;
	p->l3 = ip->l3;
	p->judged_as = judged_as;
	p->cfg = 0;
	p->can_reset = 0;
	p->dport = 0;
	return JUDGE;
}

/* The TCP header at the cursor, behind the IP header ip. Fields of p are
 * filled only on the way to JUDGE: the packets that pass do not pay for them. */
static __always_inline __u32 classify_tcp(struct hdr_cursor *nh, void *data_end,
					  const struct ip_seen *ip, struct pkt *p)
{
	struct tcphdr *th;
	struct sg_config *cfg;

	if (ip->first_frag) {
		/* Reassembly would hand the stack a SYN we never saw whole:
		 * judge every first fragment to a guarded port, and one too
		 * short to name its port as if it named one. */
		if (parse_tcp_ports(nh, data_end, &th) < 0)
			return judge_source(p, ip, SG_JUDGED_TINY_FRAGMENT);
		cfg = p->cfg = gate_config_get();
		p->dport = bpf_ntohs(th->dest);
		if (!port_guarded(cfg, p->dport))
			return SG_REASON_OTHER_PORT;
		p->family = ip->family;
		p->l3 = ip->l3;
		p->can_reset = 0;
		p->judged_as = SG_JUDGED_FIRST_FRAGMENT;
		return JUDGE;
	}

	if (parse_tcphdr(nh, data_end, &th) < 0)
		return SG_REASON_MALFORMED;
	/* The flags first: most TCP is not a SYN, and then passes without the
	 * configuration being read at all. */
	if (!th->syn || th->ack)
		return SG_REASON_NOT_SYN;
	cfg = p->cfg = gate_config_get();
	p->dport = bpf_ntohs(th->dest);
	if (!port_guarded(cfg, p->dport))
		return SG_REASON_OTHER_PORT;

	/* What the reset needs it reads from the packet itself: a SYN that is
	 * admitted, or dropped, pays for none of it. */
	p->family = ip->family;
	p->l3 = ip->l3;
	p->l3_len = ip->l3_len;
	p->can_reset = 1;
	p->judged_as = SG_JUDGED_SYN;
	return JUDGE;
}

static __always_inline __u32 classify_ipv4(struct hdr_cursor *nh, void *data_end, struct pkt *p)
{
	struct ip_seen ip = {.l3 = nh->pos, .family = 4};
	struct iphdr *iph;
	__u16 frag;
	int proto;

	proto = parse_iphdr(nh, data_end, &iph);
	if (proto < 0)
		return SG_REASON_MALFORMED;
	if (proto != IPPROTO_TCP)
		return SG_REASON_NOT_TCP;

	frag = bpf_ntohs(iph->frag_off);
	if (frag & IP_OFFSET_)
		return SG_REASON_LATER_FRAGMENT;
	/* The header's size as the compiler knows it (20, or IHL * 4): a
	 * bounded number to the verifier, which the reset needs. */
	ip.l3_len = nh->pos - ip.l3;
	ip.first_frag = frag & IP_MF_;
	return classify_tcp(nh, data_end, &ip, p);
}

/* An IPv6 extension header chain the walk could not take to its end
 * (stop: a negative PARSE_* of parse_ip6_exthdrs()). */
static __always_inline __u32 classify_ext_stop(struct pkt *p, const struct ip_seen *ip, int stop)
{
	if (stop == PARSE_LATER_FRAGMENT)
		return SG_REASON_LATER_FRAGMENT;
	/* A chain longer than we walk: judge on the source alone rather than
	 * let a padded SYN walk around the gate. */
	if (stop == PARSE_TOO_DEEP)
		return judge_source(p, ip, SG_JUDGED_EXT_LIMIT);
	/* A header cut short: the stack drops such a packet, unless it is a
	 * first fragment. Then reassembly completes the headers from later
	 * fragments (which pass), and Linux keeps a first fragment whose
	 * extension headers it cannot walk (ipv6frag_thdr_truncated() only
	 * drops one whose chain it reads to a short upper-layer header):
	 * judged on its source, as a tiny fragment. */
	if (!ip->first_frag)
		return SG_REASON_MALFORMED;
	return judge_source(p, ip, SG_JUDGED_TINY_FRAGMENT);
}

static __always_inline __u32 classify_ipv6(struct hdr_cursor *nh, void *data_end, struct pkt *p)
{
	struct ip_seen ip = {.l3 = nh->pos, .family = 6, .l3_len = sizeof(struct ipv6hdr)};
	struct ip6_exthdrs ext = {};
	struct ipv6hdr *ip6h;
	int proto;

	proto = parse_ip6hdr(nh, data_end, &ip6h);
	if (proto < 0)
		return SG_REASON_MALFORMED;
	/* No extension header, nearly every packet: straight to TCP. */
	if (proto != IPPROTO_TCP) {
		proto = parse_ip6_exthdrs(nh, data_end, proto, &ext);
		ip.l3_len += ext.len;
		ip.first_frag = ext.first_frag;
		if (proto < 0)
			return classify_ext_stop(p, &ip, proto);
		if (proto != IPPROTO_TCP)
			return SG_REASON_NOT_TCP;
	}
	return classify_tcp(nh, data_end, &ip, p);
}

/* A frame, as far as the verdict needs: a pass reason, JUDGE with p filled
 * for a packet to judge, or SG_REASON_TAG_LIMIT for one to refuse unread. */
static __always_inline __u32 classify(void *data, void *data_end, struct pkt *p)
{
	struct hdr_cursor nh = {.pos = data};
	int proto;

	if (no_ethernet) {
		/* The device says which protocol the packet is; the program
		 * sees only the packet, whose version nibble says it too. */
		if (data + 1 > data_end)
			return SG_REASON_MALFORMED;
		if ((*(__u8 *)data >> 4) == 4)
			return classify_ipv4(&nh, data_end, p);
		if ((*(__u8 *)data >> 4) == 6)
			return classify_ipv6(&nh, data_end, p);
		return SG_REASON_NOT_IP;
	}
	proto = parse_ethhdr(&nh, data_end);
	if (nh.pos != data + sizeof(struct ethhdr)) {
		/* Each number of tags is a path of its own to the verifier,
		 * which would check the rest of the program once per number,
		 * past its limit. A tagged frame's IP header offset goes on as
		 * a value it cannot know (times verifier_one), so that the rest
		 * is checked once for every tagged frame. */
		__u32 off = (__u32)(nh.pos - data) * verifier_one;

		if (off > sizeof(struct ethhdr) + SG_MAX_VLAN_TAGS * sizeof(struct vlan_hdr_))
			return SG_REASON_MALFORMED;
		nh.pos = data + off;
	}
	if (proto == bpf_htons(ETH_P_IP))
		return classify_ipv4(&nh, data_end, p);
	if (proto == bpf_htons(ETH_P_IPV6))
		return classify_ipv6(&nh, data_end, p);
	if (proto < 0)
		return SG_REASON_MALFORMED;
	/* Still a tag after SG_MAX_VLAN_TAGS: Linux would strip on and might
	 * deliver a SYN behind them, so the frame cannot pass. */
	return proto_is_vlan(proto) ? SG_REASON_TAG_LIMIT : SG_REASON_NOT_IP;
}

/* The source of a packet to judge, where it lies in its IP header: the
 * table walk reads it there. 0 when the header is cut short. */
static __always_inline const __u8 *packet_source(const struct pkt *p, void *data_end)
{
	if (p->family == 4) {
		struct iphdr *iph = p->l3;

		if ((void *)(iph + 1) > data_end)
			return 0;
		return (const __u8 *)&iph->saddr;
	} else {
		struct ipv6hdr *ip6h = p->l3;

		if ((void *)(ip6h + 1) > data_end)
			return 0;
		return (const __u8 *)&ip6h->saddr;
	}
}

/* p->saddr from the packet, IPv4 zero-padded to 16 bytes: only for a
 * refused source (its record, and the reset, which overwrites the packet).
 * An admitted SYN never pays for it. */
static __always_inline void copy_source(struct pkt *p, const __u8 *src)
{
	if (p->family == 4) {
		__u32 *s = (__u32 *)p->saddr;

		s[0] = *(const __u32 *)src;
		s[1] = s[2] = s[3] = 0;
	} else {
		__builtin_memcpy(p->saddr, src, 16);
	}
}

/* ---- the lookup ----------------------------------------------------------- */

/* True when bit `block` of a bitmap held in a map of 8192-bit chunks, from
 * element `first`, is clear: no prefix overlaps that block (the summary's /16
 * blocks). */
static __always_inline int block_clear(void *bits, __u32 first, __u32 block)
{
	__u32 idx = first + block / SG_SUMMARY_BITS_PER_CHUNK;
	struct sg_chunk *c = bpf_map_lookup_elem(bits, &idx);

	if (!c)
		return 0;
	return !(c->entry[(block >> 5) & (SG_CHUNK_ENTRIES - 1)] & (1u << (block & 31)));
}

/* The chunk of table_v4's pool that holds pool entry n, or NULL. */
static __always_inline struct sg_chunk *pool_chunk(__u32 n)
{
	__u32 idx = SG_TABLE_FIRST_CHUNK + n / SG_CHUNK_ENTRIES;

	return bpf_map_lookup_elem(&table_v4, &idx);
}

/* The leaf of a node below a /24 block for the source's last byte x: the
 * node's number is in the /24 entry e (layout in smtpgate_abi.h). */
static __always_inline __u32 node_leaf(__u32 e, __u32 x)
{
	__u32 n = e & SG_ENTRY_NODE_MASK, o = n & (SG_CHUNK_ENTRIES - 1), k;
	struct sg_chunk *c = pool_chunk(n);

	if (!c)
		return SG_ENTRY_TRIE;
	if (e & SG_ENTRY_NODE_BITMAP) {
		/* Run starts at or below x: the words below x's word whole,
		 * x's word up to x. */
		__u32 word = x >> 6;
		__u64 upto = (2ull << (x & 63)) - 1;

		o &= SG_CHUNK_ENTRIES - SG_NODE_BITMAP_WORDS; /* at a multiple of 8 */
		k = 0;
#pragma unroll
		for (__u32 w = 0; w < 4; w++) {
			__u64 bits = *(__u64 *)&c->entry[o + 2 * w];

			if (w < word)
				k += __builtin_popcountll(bits);
			else if (w == word)
				k += __builtin_popcountll(bits & upto);
		}
		return c->entry[(o + SG_NODE_BITMAP_WORDS - 1 + k) & (SG_CHUNK_ENTRIES - 1)];
	}
	/* A small node: the run is the number of boundaries at or below x. */
	{
		__u32 h = c->entry[o];

		k = (x >= (h & 0x1ff)) + (x >= ((h >> 9) & 0x1ff)) + (x >= ((h >> 18) & 0x1ff));
	}
	return c->entry[(o + 1 + k) & (SG_CHUNK_ENTRIES - 1)];
}

/* The IPv4 lookup (layout in smtpgate_abi.h): the /20 directory word gives
 * the block's bit and the number of set /20 blocks before it; the group of
 * that number gives the /24 block's bit and the number of its entry; the
 * entry is a leaf, or a node for the last byte. A source in empty space stops
 * after the directory or the group. */
static __always_inline __u32 lookup_v4(__u32 slot, const __u8 *addr)
{
	__u32 b20 = (__u32)addr[0] << 12 | (__u32)addr[1] << 4 | addr[2] >> 4;
	__u32 idx = SG_DIR_INDEX(slot) + (b20 >> 6) / SG_DIR_WORDS_PER_CHUNK;
	__u32 pos = b20 & 63, n20, gn, p, e, n;
	struct sg_dir_word *d;
	struct sg_group *g;
	struct sg_chunk *c;
	__u64 below, bits, k;

	c = bpf_map_lookup_elem(&prefilter_v4, &idx);
	if (!c)
		return SG_ENTRY_TRIE;
	d = (struct sg_dir_word *)c + ((b20 >> 6) & (SG_DIR_WORDS_PER_CHUNK - 1));
	bits = d->bits;
	if (!((bits >> pos) & 1))
		return 0;
	/* The rank is loaded after the bits, never before (a patch relies on
	 * it: see SG_DIR_TRIE); the barrier keeps the compiler to that order. */
	asm volatile("" ::: "memory");
	n20 = d->rank + __builtin_popcountll(bits & ((1ull << pos) - 1));
	if (n20 >= SG_GROUPS * SG_GROUP_MASKS)
		return SG_ENTRY_TRIE;
	/* n20 / 6 without a division: exact for n20 < 2^20. */
	gn = (__u32)(((__u64)n20 * SG_GROUP_DIV_MUL) >> SG_GROUP_DIV_SHIFT);
	idx = SG_GROUP_INDEX(slot) + gn / SG_GROUPS_PER_CHUNK;
	c = bpf_map_lookup_elem(&prefilter_v4, &idx);
	if (!c)
		return SG_ENTRY_TRIE;
	g = (struct sg_group *)c + (gn & (SG_GROUPS_PER_CHUNK - 1));
	p = (n20 - gn * SG_GROUP_MASKS) * 16 + (addr[2] & 15);
	if (p < 64) {
		if (!((g->masks >> p) & 1))
			return 0;
		below = (1ull << p) - 1;
		k = __builtin_popcountll(g->masks & below);
	} else {
		if (!((g->masks_hi >> (p - 64)) & 1))
			return 0;
		below = (1ull << (p - 64)) - 1;
		k = __builtin_popcountll(g->masks) + __builtin_popcountll(g->masks_hi & below);
	}
	/* The entry's number: the group's base plus the set /24 bits before
	 * this one (k < 96), summed in 64 bits. One compare refuses both a
	 * base of SG_GROUP_TRIE and a sum past 32 bits (a corrupt group),
	 * which a 32-bit entry number would wrap to another block's entry. */
	k += g->base;
	if (k >= SG_GROUP_TRIE)
		return SG_ENTRY_TRIE;
	n = (__u32)k;
	c = pool_chunk(n);
	if (!c)
		return SG_ENTRY_TRIE;
	e = c->entry[n & (SG_CHUNK_ENTRIES - 1)];
	if (!(e & SG_ENTRY_CHUNK))
		return e;
	return node_leaf(e, addr[3]);
}

/* Walks the IPv6 stride table: past the summary, the root entry by the
 * first two bytes of the source, then at most SG_TABLE_V6_LEVELS chunks by
 * one byte each. Returns the entry where the walk stops; SG_ENTRY_TRIE when
 * the table cannot answer. */
static __always_inline __u32 table_walk_v6(__u32 slot, const __u8 *addr)
{
	struct sg_chunk *c;
	__u32 idx = slot * 256 + addr[0];
	__u32 e;

	c = bpf_map_lookup_elem(&table_v6, &idx);
	if (!c)
		return SG_ENTRY_TRIE;
	e = c->entry[addr[1]];
#pragma unroll
	for (int i = 0; i < SG_TABLE_V6_LEVELS; i++) {
		if (!(e & SG_ENTRY_CHUNK))
			return e;
		idx = SG_TABLE_FIRST_CHUNK + (e & ~SG_ENTRY_CHUNK);
		c = bpf_map_lookup_elem(&table_v6, &idx);
		if (!c)
			return SG_ENTRY_TRIE;
		e = c->entry[addr[2 + i]];
	}
	/* A chunk pointer below the last level is a corrupt table: the trie
	 * decides. */
	return e & SG_ENTRY_CHUNK ? SG_ENTRY_TRIE : e;
}

/* The table's entry for a source: the summary's /16 bit first (a clear one:
 * the default rule's, from 8 KiB of bits that stay in cache), then the
 * family's lookup. */
static __always_inline __u32 table_walk(__u32 slot, const __u8 *addr, const int family)
{
	if (block_clear(&summary, SG_SUMMARY_INDEX(slot, family), (__u32)addr[0] << 8 | addr[1]))
		return 0;
	return family == 4 ? lookup_v4(slot, addr) : table_walk_v6(slot, addr);
}

/* The slow path, for what the table hands on: the LPM trie of the slot, keyed
 * by the source where it lies in the packet. */
static __always_inline __u32 trie_lookup(__u32 slot, __u32 family, const __u8 *src)
{
	struct sg_rule_ref *ref = 0;

	if (family == 4) {
		struct sg_lpm_v4_key key = {.prefixlen = 32};
		void *trie = bpf_map_lookup_elem(&allow_v4, &slot);

		if (trie) {
			__builtin_memcpy(key.addr, src, 4);
			ref = bpf_map_lookup_elem(trie, &key);
		}
	} else {
		struct sg_lpm_v6_key key = {.prefixlen = 128};
		void *trie = bpf_map_lookup_elem(&allow_v6, &slot);

		if (trie) {
			__builtin_memcpy(key.addr, src, 16);
			ref = bpf_map_lookup_elem(trie, &key);
		}
	}
	if (!ref)
		return 0;
	return ((ref->kind & SG_ENTRY_KIND_MASK) << SG_ENTRY_KIND_SHIFT) |
	       (ref->rule_id & SG_ENTRY_RULE_MASK);
}

/* ---- the reset ---------------------------------------------------------- */

/* IPv4 addresses no host sends from or answers for: 0/8 ("this network"),
 * 127/8 (loopback), 224/4 (multicast), 240/4 (reserved, and the limited
 * broadcast). */
static __always_inline int v4_special(const __u8 *a)
{
	return a[0] == 0 || a[0] == 127 || a[0] >= 224;
}

/* IPv6: :: (unspecified), ::1 (loopback), ::ffff:0:0/96 (IPv4-mapped, never on
 * the wire), ff00::/8 (multicast). */
static __always_inline int v6_special(const __u8 *a)
{
	__u32 w[4];

	if (a[0] == 0xff)
		return 1;
	__builtin_memcpy(w, a, 16);
	if (w[0] | w[1])
		return 0;
	return w[2] == bpf_htonl(0xffff) || (!w[2] && (!w[3] || w[3] == bpf_htonl(1)));
}

/* A reset means something only between two hosts: not from an address no
 * host answers for (the SYN's destination, which becomes the reset's
 * source), not to one no host sends from, and not for a frame that was not
 * sent by one station to one station (a group bit, broadcast or multicast,
 * in either MAC: the reset would go to the source MAC, and a forged group
 * source would make one SYN a reset to every station of the segment). Such
 * SYNs are dropped instead; private addresses are ordinary (NAT). */
static __always_inline int reset_allowed(void *data, void *data_end, const struct pkt *p)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end || ((eth->h_dest[0] | eth->h_source[0]) & 1))
		return 0;
	if (p->family == 4) {
		struct iphdr *iph = p->l3;

		if ((void *)(iph + 1) > data_end)
			return 0;
		return !v4_special((const __u8 *)&iph->saddr) &&
		       !v4_special((const __u8 *)&iph->daddr);
	} else {
		struct ipv6hdr *ip6h = p->l3;

		if ((void *)(ip6h + 1) > data_end)
			return 0;
		return !v6_special((const __u8 *)&ip6h->saddr) &&
		       !v6_special((const __u8 *)&ip6h->daddr);
	}
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline __u32 csum_words(const void *buf, int words)
{
	const __u16 *w = buf;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < words; i++)
		sum += w[i];
	return sum;
}

/* The reset's acknowledgment number (RFC 9293 3.10.7.1): the SYN's
 * sequence number past the SYN itself, any payload and a FIN. */
static __always_inline __u32 reset_ack(const struct pkt *p, const struct tcphdr *syn,
				       void *data_end)
{
	__u32 l4_len = ip_payload_len(p, data_end, p->l3_len);
	__u32 ack = bpf_ntohl(syn->seq) + 1 + syn->fin;

	if (l4_len > (__u32)syn->doff * 4)
		ack += l4_len - (__u32)syn->doff * 4;
	return ack;
}

/* Rewrites the SYN in place into RST+ACK (RFC 9293 3.10.7.1: seq 0, ack =
 * seq + segment length), addresses, ports and MACs swapped, VLAN tags kept,
 * IPv4 options and IPv6 extension headers dropped. The frame keeps the SYN's
 * length: the IP header's length ends the reset, and what follows is link
 * padding that every receiver trims. Trimming it (bpf_xdp_adjust_tail) would
 * make the program one that changes packet data, and kernels since 6.13 (and
 * Debian's 6.12) refuse such a program in a slot of libxdp's dispatcher older
 * than 1.5.5 (Debian 12 ships 1.3.1): smtpgate could then share no NIC. */
static __always_inline int build_reset(struct xdp_md *ctx, const struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tcphdr th = {};
	__u8 mac[ETH_ALEN];
	void *at = p->l3; /* the IP header: the reset is written from here */
	struct tcphdr *syn = at + p->l3_len;
	__u8 daddr[16]; /* the SYN's destination, read before it is overwritten */
	__u32 sum, ack;

	if ((void *)(eth + 1) > data_end || (void *)(syn + 1) > data_end)
		return -1;
	ack = reset_ack(p, syn, data_end);
	th.source = syn->dest;
	th.dest = syn->source;
	if (p->family == 4) {
		struct iphdr *iph = at;

		if ((void *)(iph + 1) > data_end)
			return -1;
		__builtin_memcpy(daddr, &iph->daddr, 4);
	} else {
		struct ipv6hdr *ip6h = at;

		if ((void *)(ip6h + 1) > data_end)
			return -1;
		__builtin_memcpy(daddr, &ip6h->daddr, 16);
	}

	/* Headers are built and checksummed on the stack, then copied in. */
	th.ack_seq = bpf_htonl(ack);
	th.doff = 5;
	th.rst = 1;
	th.ack = 1;
	sum = csum_words(&th, sizeof(th) / 2) + bpf_htons(IPPROTO_TCP) + bpf_htons(sizeof(th));

	if (p->family == 4) {
		struct iphdr ip = {
			.version = 4,
			.ihl = 5,
			.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct tcphdr)),
			.frag_off = bpf_htons(0x4000), /* DF */
			.ttl = 64,
			.protocol = IPPROTO_TCP,
		};
		__builtin_memcpy(&ip.saddr, daddr, 4);
		__builtin_memcpy(&ip.daddr, p->saddr, 4);
		ip.check = csum_fold(csum_words(&ip, sizeof(ip) / 2));
		sum += csum_words(daddr, 2) + csum_words(p->saddr, 2);
		th.check = csum_fold(sum);
		if (at + sizeof(ip) + sizeof(th) > data_end)
			return -1;
		__builtin_memcpy(at, &ip, sizeof(ip));
		__builtin_memcpy(at + sizeof(ip), &th, sizeof(th));
	} else {
		struct ipv6hdr ip6 = {
			.version = 6,
			.payload_len = bpf_htons(sizeof(struct tcphdr)),
			.nexthdr = IPPROTO_TCP,
			.hop_limit = 64,
		};
		__builtin_memcpy(&ip6.saddr, daddr, 16);
		__builtin_memcpy(&ip6.daddr, p->saddr, 16);
		sum += csum_words(daddr, 8) + csum_words(p->saddr, 8);
		th.check = csum_fold(sum);
		if (at + sizeof(ip6) + sizeof(th) > data_end)
			return -1;
		__builtin_memcpy(at, &ip6, sizeof(ip6));
		__builtin_memcpy(at + sizeof(ip6), &th, sizeof(th));
	}

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	return 0;
}

/* ---- bookkeeping --------------------------------------------------------- */

static __always_inline void count(void *map, __u32 key, __u64 bytes)
{
	struct sg_counter *c = bpf_map_lookup_elem(map, &key);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* CLOCK_MONOTONIC_COARSE, read once per tick per CPU: the coarse clock only
 * moves on a tick anyway, and jiffies (j) are a plain load (the verifier
 * inlines bpf_jiffies64), while the clock helper would cost more than the
 * lookup. Each reading within a tick is one nanosecond later than the last,
 * so that the times of one CPU are strictly ordered: the recently-refused
 * table evicts the way seen least recently, and with equal times within a
 * tick it would evict the same way again and again, keeping the tick's oldest
 * sources and dropping its newest (and a hot source in way 0). A reading
 * never goes back: a new tick starts from the coarse clock or, if that has
 * not moved yet, from where the last one ended. */
static __always_inline __u64 coarse_now(struct sg_cpu_state *cpu, __u64 j)
{
	if (j != cpu->tick_jiffies) {
		__u64 coarse = bpf_ktime_get_coarse_ns();

		cpu->tick_jiffies = j;
		/* jiffies move before the coarse clock does (the timekeeper
		 * updates it just after): read in between, it still gives the
		 * last tick's time, behind the readings counted since. */
		if (coarse > cpu->tick_ns)
			cpu->tick_ns = coarse;
	}
	return cpu->tick_ns++;
}

static __always_inline __u32 source_hash(const struct pkt *p)
{
	__u32 w[4];

	__builtin_memcpy(w, p->saddr, 16);
	return (w[0] ^ w[1] ^ w[2] ^ w[3]) * SG_RECENT_HASH_MUL;
}

static __always_inline int same_source(const struct sg_recent_source *s, const struct pkt *p)
{
	__u64 a[2], b[2];

	__builtin_memcpy(a, s->addr, 16);
	__builtin_memcpy(b, p->saddr, 16);
	return s->family == p->family && a[0] == b[0] && a[1] == b[1];
}

/* The refused source's way in its set of the recently-refused table: the
 * way already holding it, or for a new source the way seen least recently
 * (or an empty one), claimed for it. */
static __always_inline struct sg_recent_source *source_way(struct sg_recent_set *set,
							   const struct pkt *p, __u64 now)
{
	struct sg_recent_source *victim = &set->way[0];

#pragma unroll
	for (int i = 0; i < SG_RECENT_WAYS; i++) {
		struct sg_recent_source *w = &set->way[i];

		if (w->count && same_source(w, p))
			return w;
		if (w->last_seen_ns < victim->last_seen_ns || !w->count)
			victim = w;
	}
	__builtin_memcpy(victim->addr, p->saddr, 16);
	victim->family = p->family;
	victim->count = 0;
	victim->first_seen_ns = now;
	return victim;
}

static __always_inline void record_source(struct sg_recent_set *set, const struct pkt *p, __u64 now,
					  __u32 rule_id, __u32 verdict)
{
	struct sg_recent_source *w = source_way(set, p, now);

	w->count++;
	w->last_seen_ns = now;
	w->rule_id = rule_id;
	w->last_port = p->dport;
	w->last_verdict = verdict;
}

/* One record of a refusal to the events ring buffer: 0, or -1 when it is
 * full. */
static __always_inline int send_event(struct xdp_md *ctx, const struct pkt *p, __u64 now,
				      __u32 rule_id, __u32 verdict, __u32 reason)
{
	struct sg_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);

	if (!ev)
		return -1;
	ev->ts_ns = now;
	__builtin_memcpy(ev->addr, p->saddr, 16);
	ev->rule_id = rule_id;
	ev->ifindex = ctx->ingress_ifindex;
	ev->dport = p->dport;
	ev->family = p->family;
	ev->verdict = verdict;
	ev->reason = reason;
	ev->judged_as = p->judged_as;
	ev->pad[0] = ev->pad[1] = 0;
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

static __always_inline struct sg_cpu_state *cpu_state_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&cpu_state, &zero);
}

/* True when a refusal earlier in this tick (of the default rule, or of a
 * range: `range`) found both budgets spent, so that this one would only be
 * counted: the quiet path. The clock does not move within a tick, and a
 * window that opens in it (on the whole path) ends the quiet tick, so the
 * budgets of recorded sources are still spent; the event budget is tested
 * again (on the same line), so that a raised events_per_sec takes effect at
 * once. A fresh map's zero never matches jiffies. */
static __always_inline int quiet_tick(const struct sg_cpu_state *cpu, const struct sg_config *cfg,
				      __u64 j, int range)
{
	return j == (range ? cpu->range_quiet_jiffies : cpu->quiet_jiffies) &&
	       (!cfg->events_per_sec || cpu->sent >= cfg->events_per_sec);
}

/* A refusal on the quiet path: counted as not recorded and, when events
 * are on, as suppressed; nothing else. */
static __always_inline void note_quiet(struct sg_cpu_state *cpu, const struct sg_config *cfg,
				       int range)
{
	if (range)
		cpu->range_skipped++;
	else
		cpu->default_skipped++;
	if (cfg->events_per_sec)
		cpu->suppressed++;
}

/* A refused source: the recently-refused table if its budget (the default
 * rule's, or the ranges') allows, then an event if the per-CPU budget of its
 * one-second window allows (a flood of SYNs must not flood userspace). A
 * refusal that finds both spent marks its tick quiet (quiet_tick()), and the
 * rest of the tick's refusals of its kind are only counted. */
static __always_inline void note_refusal(struct xdp_md *ctx, const struct sg_config *cfg,
					 struct sg_cpu_state *cpu, __u64 j, const struct pkt *p,
					 __u32 rule_id, __u32 verdict, __u32 reason)
{
	struct sg_recent_set *set = 0;
	int range = rule_id != SG_RULE_DEFAULT;
	__u32 idx;
	__u64 now;
	int spent = 0;

	if (quiet_tick(cpu, cfg, j, range)) {
		note_quiet(cpu, cfg, range);
		return;
	}
	now = coarse_now(cpu, j);
	if (now - cpu->window_start_ns >= 1000000000ULL) {
		cpu->window_start_ns = now;
		cpu->sent = 0;
		cpu->default_noted = 0;
		cpu->range_noted = 0;
		cpu->quiet_jiffies = 0;
		cpu->range_quiet_jiffies = 0;
	}

	if (range ? cpu->range_noted >= SG_RECENT_RANGE_PER_SEC
		  : cpu->default_noted >= SG_RECENT_DEFAULT_PER_SEC) {
		if (range)
			cpu->range_skipped++;
		else
			cpu->default_skipped++;
		spent = 1;
	} else {
		if (range)
			cpu->range_noted++;
		else
			cpu->default_noted++;
		/* The set by the hash's top bits (recent_sets is a power of two). */
		idx = ((__u64)source_hash(p) * cfg->recent_sets) >> 32;
		set = bpf_map_lookup_elem(&recent_refused, &idx);
	}
	if (set)
		record_source(set, p, now, rule_id, verdict);

	if (cfg->events_per_sec && cpu->sent < cfg->events_per_sec) {
		if (send_event(ctx, p, now, rule_id, verdict, reason) < 0)
			cpu->suppressed++;
		else
			cpu->sent++;
		return;
	}
	if (cfg->events_per_sec)
		cpu->suppressed++;
	if (spent) {
		if (range)
			cpu->range_quiet_jiffies = j;
		else
			cpu->quiet_jiffies = j;
	}
}

/* ---- the program ---------------------------------------------------------- */

static __always_inline __u64 frame_len(const struct xdp_md *ctx)
{
	return (__u64)(long)ctx->data_end - (__u64)(long)ctx->data;
}

/* The one exit: every packet leaves through here and is counted once, per
 * verdict and reason, and a judged one also against its rule. Inlined at the
 * two returns of the program, so a packet that passes unjudged carries none
 * of the judged path's state. */
static __always_inline int leave(int action, __u32 verdict, __u32 reason, __u32 rule_id,
				 __u64 bytes)
{
	count(&packet_counters, SG_COUNTER_INDEX(verdict, reason), bytes);
	if (verdict != SG_VERDICT_PASS) {
		struct sg_rule_counters *rc = bpf_map_lookup_elem(&rule_counters, &rule_id);

		if (rc) {
			if (verdict == SG_VERDICT_ADMIT) {
				rc->admit_packets++;
				rc->admit_bytes += bytes;
			} else {
				rc->refuse_packets++;
				rc->refuse_bytes += bytes;
			}
		}
	}
	return action;
}

/* The entry that decides for the source src in allowlist slot `slot`: the
 * stride table's, or the trie's where the table hands on. */
static __always_inline __u32 allowlist_entry(const struct pkt *p, const __u8 *src, __u32 slot)
{
	__u32 e = p->family == 4 ? table_walk(slot, src, 4) : table_walk(slot, src, 6);

	if (e & SG_ENTRY_TRIE)
		e = trie_lookup(slot, p->family, src);
	return e;
}

/* A packet the classifier hands on: the verdict of the allowlist in force. */
static __always_inline int judge(struct xdp_md *ctx, struct pkt *p, void *data_end, __u64 bytes)
{
	struct sg_config *cfg;
	struct sg_cpu_state *cpu;
	struct sg_state st;
	const __u8 *src;
	__u32 rule_id = SG_RULE_DEFAULT, reason, verdict;
	int action;
	__u64 j;

	src = packet_source(p, data_end);
	if (!src)
		return leave(XDP_PASS, SG_VERDICT_PASS, SG_REASON_MALFORMED, 0, bytes);
	cfg = p->cfg ? p->cfg : gate_config_get();
	if (!cfg) /* never: a one-entry array */
		return leave(XDP_PASS, SG_VERDICT_PASS, SG_REASON_NO_ALLOWLIST, 0, bytes);

	/* One read of the state, both fields in one load: the packet sees one
	 * whole allowlist. */
	*(__u64 *)&st = *(volatile __u64 *)&cfg->state;
	if (!st.generation) {
		reason = SG_REASON_NO_ALLOWLIST;
	} else {
		__u32 e = allowlist_entry(p, src, st.active_slot & 1);
		__u32 kind;

		rule_id = e & SG_ENTRY_RULE_MASK;
		kind = (e >> SG_ENTRY_KIND_SHIFT) & SG_ENTRY_KIND_MASK;
		if (kind == SG_KIND_ADMIT)
			return leave(XDP_PASS, SG_VERDICT_ADMIT, SG_REASON_RULE_ADMIT, rule_id,
				     bytes);
		reason = kind == SG_KIND_DENY	 ? SG_REASON_RULE_DENY
			 : kind == SG_KIND_WATCH ? SG_REASON_RULE_WATCH
						 : SG_REASON_DEFAULT;
	}

	/* Refused. A quiet drop of the default rule is counted on the CPU's
	 * state line alone, before the source is even copied: what a flood of
	 * sources no range explains costs per SYN. */
	j = bpf_jiffies64();
	cpu = cpu_state_get();
	if (cpu && reason == SG_REASON_DEFAULT && cfg->action == SG_ACTION_DROP &&
	    quiet_tick(cpu, cfg, j, 0)) {
		if (cfg->events_per_sec)
			cpu->suppressed++;
		cpu->quiet_packets++;
		cpu->quiet_bytes += bytes;
		return XDP_DROP;
	}
	/* The source is copied before a reset overwrites it. */
	copy_source(p, src);
	switch (cfg->action) {
	case SG_ACTION_MONITOR:
		verdict = SG_VERDICT_MONITOR;
		action = XDP_PASS;
		break;
	case SG_ACTION_REJECT:
		/* The verifier drops the reset's code where no_ethernet is set:
		 * a reset needs an Ethernet header to send back. */
		if (!no_ethernet && p->can_reset &&
		    reset_allowed((void *)(long)ctx->data, data_end, p) &&
		    build_reset(ctx, p) == 0) {
			verdict = SG_VERDICT_REJECT;
			action = XDP_TX;
			break;
		}
		/* No reset can be built from a fragment, nor may one be sent
		 * from or to a special-purpose address: drop it. */
		reason = SG_REASON_REJECT_AS_DROP;
		verdict = SG_VERDICT_DROP;
		action = XDP_DROP;
		break;
	default:
		verdict = SG_VERDICT_DROP;
		action = XDP_DROP;
		break;
	}
	if (cpu) /* always: a one-entry array */
		note_refusal(ctx, cfg, cpu, j, p, rule_id, verdict, reason);
	return leave(action, verdict, reason, rule_id, bytes);
}

/* A frame with more VLAN tags than the walk: a SYN from a source no range
 * explains, for all the program can tell. Refused by the action in force,
 * against the default rule, without a lookup (there is no source to look
 * up, nor to record or to send a reset to): under reject it is dropped. */
static __always_inline int refuse_unread(__u64 bytes)
{
	struct sg_config *cfg = gate_config_get();

	if (cfg && cfg->action == SG_ACTION_MONITOR)
		return leave(XDP_PASS, SG_VERDICT_MONITOR, SG_REASON_TAG_LIMIT, SG_RULE_DEFAULT,
			     bytes);
	return leave(XDP_DROP, SG_VERDICT_DROP, SG_REASON_TAG_LIMIT, SG_RULE_DEFAULT, bytes);
}

SEC("xdp")
int smtpgate_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pkt p;
	__u32 reason = classify(data, data_end, &p);

#ifdef SG_CODE_TEST_VARIANT
	/* Another program on the same maps, judging as this one does: a test
	 * never taken (verifier_one is 1), for the test of an upgrade that
	 * changes code only (vm-tests/e2e_upgrade.cpp). */
	if (verifier_one == 0)
		return XDP_DROP;
#endif
	/* The length is read again from ctx rather than kept live across the
	 * classifier: one register more for the classifier, no stack traffic. */
	if (reason == JUDGE)
		return judge(ctx, &p, data_end, frame_len(ctx));
	if (reason == SG_REASON_TAG_LIMIT)
		return refuse_unread(frame_len(ctx));
	return leave(XDP_PASS, SG_VERDICT_PASS, reason, 0, frame_len(ctx));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
